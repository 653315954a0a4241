"""The manifest: a typed, immutable, strictly parsed commitment to a tree.

A manifest lists every file (canonical path, size, Merkle root of its chunks)
and the dataset root: the Merkle root over one leaf per file, in path order,
each leaf encoding (path, size, chunk size, file root) unambiguously
(docs/format.md, rules D1-D2).  Construction validates everything, including
that the dataset root matches the entries, so a Manifest object is always
consistent.

Upward import: `Manifest.load` and `Manifest.save` read and write through
merkle.source.local (capped reads, atomic writes: the one place files are
opened), which imports nothing above merkle.errors.

The records of a v2 manifest (format/origin.py, hub.py, zarr.py) and the
leaf sidecar (leaves.py) are imported where a manifest has them: every
`merkle hash` imports this module (for the chunk-size rule), and a plain
manifest needs none of them.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Final

from merkle._gc import paused
from merkle._native import native
from merkle.errors import FormatError, SidecarWarning, SourceError, UnsupportedError
from merkle.format import strictjson
from merkle.format.parameters import DEFAULT_CHUNK_SIZE as DEFAULT_CHUNK_SIZE  # re-exported: imported from here
from merkle.format.parameters import DEFAULT_EXCLUDES as DEFAULT_EXCLUDES
from merkle.format.parameters import check_chunk_size as check_chunk_size
from merkle.format.paths import _PLAIN_PATH, MAX_PATH_BYTES, case_collision, path_problem
from merkle.format.strictjson import exact_keys
from merkle.source.local import check_output, open_regular, read_capped, write_atomic
from merkle.tree import rfc6962
from merkle.tree.hasher import (
    ALGORITHMS,
    DEFAULT_ALGORITHM,
    DIGEST_SIZE,
    LEAF_PREFIX,
    Algorithm,
    TreeHasher,
    tree_hasher,
)

if TYPE_CHECKING:
    from merkle.format.hub import HubId
    from merkle.format.leaves import LeafLayers
    from merkle.format.origin import AnyOrigin
    from merkle.format.zarr import ZarrLayout

FORMAT: Final = "merkle-manifest-v1"
FORMAT_V2: Final = "merkle-manifest-v2"  # v1 + `origin` and per-file `hub` (rules M6-M8)
FORMATS: Final = (FORMAT, FORMAT_V2)
MAX_MANIFEST_BYTES: Final = 256 << 20  # about two million entries; JSON decoding needs ~10x this
MAX_EXCLUDES: Final = 1024
MAX_PATTERN_LENGTH: Final = 4096
MAX_FILE_SIZE: Final = (1 << 63) - 1
SIDECAR_SUFFIX: Final = ".leaves"
MANIFEST_SUFFIX: Final = ".manifest"  # beside a compact bundle
METADATA_SUFFIX: Final = ".objects.json"  # object-store metadata, for audit --fast

_KEYS: Final = ("format", "algorithm", "chunk_size", "exclude", "root", "files")
_KEYS_V2: Final = ("format", "algorithm", "chunk_size", "exclude", "origin", "root", "files")
_ENTRY_KEYS: Final = ("path", "size", "root")
_ENTRY_KEYS_HUB: Final = ("path", "size", "root", "hub")


@dataclass(frozen=True, slots=True)  # slots: a million of them are held at once
class FileEntry:
    """One file: canonical relative path, byte size, Merkle root of its chunks."""

    path: str
    size: int
    root: bytes
    hub: HubId | None = None
    """(kind, lower-case hex) from HUB_KINDS: the file's Hugging Face Hub
    identity, signed with the manifest (rule M7) but not part of the
    dataset root."""

    def leaf_data(self, chunk_size: int) -> bytes:
        """The dataset-tree leaf: u32 len(path) | path | u64 size | u64 chunk_size | root."""
        p = self.path.encode("utf-8")
        return len(p).to_bytes(4, "big") + p + self.size.to_bytes(8, "big") + chunk_size.to_bytes(8, "big") + self.root

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "size": self.size, "root": self.root.hex()}
        if self.hub is not None:
            out["hub"] = {self.hub[0]: self.hub[1]}
        return out


def dataset_root(hasher: TreeHasher, chunk_size: int, files: Sequence[FileEntry]) -> bytes:
    """The root over the files' dataset leaves (D1-D2); native when the C
    extension is built (ext/_merkle.c dataset_root)."""
    if native is not None:
        root: bytes = native.dataset_root(hasher.code, chunk_size, files)
        return root
    return dataset_root_pure(hasher, chunk_size, files)


def dataset_leaves_bytes(hasher: TreeHasher, chunk_size: int, files: Sequence[FileEntry]) -> bytes:
    """Each file's dataset leaf hash (D1), in order, concatenated (no object
    per file)."""
    if native is not None:
        leaves: bytes = native.dataset_leaves(hasher.code, chunk_size, files)
        return leaves
    return b"".join(hasher.leaf(f.leaf_data(chunk_size)) for f in files)


def dataset_root_pure(hasher: TreeHasher, chunk_size: int, files: Sequence[FileEntry]) -> bytes:
    builder = rfc6962.RootBuilder(hasher)
    add, new = builder.add, hasher.new
    for f in files:  # hasher.leaf(f.leaf_data(chunk_size)), inlined: this runs per file
        add(new(LEAF_PREFIX + f.leaf_data(chunk_size)).digest())
    return builder.root()


NO_CAPITALS: Final = 2
"""ext plain_entries: plain entries, and no path holds a capital letter."""


def _check_entries(files: Sequence[FileEntry]) -> None:
    """FormatError naming the first entry that breaks a rule (and paths that
    differ only in case).  The common case, plain ASCII paths and no hub, is
    checked in one C pass (ext plain_entries); anything else, or a failure
    there, entry by entry here, which names the problem."""
    plain = native.plain_entries(files, MAX_PATH_BYTES, MAX_FILE_SIZE) if native is not None else 0
    if not plain:
        _check_each_entry(files)
    clash = None if plain == NO_CAPITALS else case_collision(f.path for f in files)
    if clash:
        raise FormatError(f"paths {clash[0]!r} and {clash[1]!r} differ only in case")


def _check_each_entry(files: Sequence[FileEntry]) -> None:
    previous = None
    plain = _PLAIN_PATH.fullmatch  # path_problem's fast path, bound once: this runs per file
    for f in files:
        path = f.path
        if not (type(path) is str and plain(path) and len(path) <= MAX_PATH_BYTES):
            problem = path_problem(path) if isinstance(path, str) else "path is not a string"
            if problem:
                raise FormatError(f"file path {path!r}: {problem}")
        size = f.size
        if type(size) is not int or not 0 <= size <= MAX_FILE_SIZE:
            raise FormatError(f"file {path!r}: size {size!r} is not a byte count")
        if type(f.root) is not bytes or len(f.root) != DIGEST_SIZE:
            raise FormatError(f"file {path!r}: root is not a {DIGEST_SIZE}-byte digest")
        if f.hub is not None and _check_hub(f.hub, f"file {path!r}") != f.hub:
            raise FormatError(f"file {path!r}: hub identity is not a (kind, hex) pair")
        if previous is not None and path <= previous:
            what = "duplicate path" if path == previous else "paths not in sorted order at"
            raise FormatError(f"{what} {path!r}")
        previous = path


def _check_hub(value: Any, where: str) -> HubId:
    from merkle.format.hub import check_hub

    return check_hub(value, where)


def _origin(doc: Any) -> AnyOrigin:
    from merkle.format.origin import origin_from_doc

    return origin_from_doc(doc)


@dataclass(frozen=True)
class Summary:
    """What a compact signed statement commits to: the dataset root and the
    parameters a file proof is checked with (docs/partial.md, rule C1), and
    the origin when there is one (per-file Hub identities are not in it)."""

    algorithm: Algorithm
    chunk_size: int
    exclude: tuple[str, ...]
    root: bytes
    files: int
    total_size: int
    origin: AnyOrigin | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format": FORMAT if self.origin is None else FORMAT_V2,
            "algorithm": self.algorithm,
            "chunk_size": self.chunk_size,
            "exclude": list(self.exclude),
        }
        if self.origin is not None:
            out["origin"] = self.origin.to_dict()
        return {**out, "root": self.root.hex(), "files": self.files, "total_size": self.total_size}

    @classmethod
    def from_doc(cls, doc: Any) -> Summary:
        if not isinstance(doc, dict):
            raise FormatError("summary is not an object")
        if doc.get("format") not in FORMATS:
            raise UnsupportedError(f"unsupported manifest format {doc.get('format')!r}")
        keys = ["format", "algorithm", "chunk_size", "exclude", "root", "files", "total_size"]
        if doc["format"] == FORMAT_V2:
            keys.insert(4, "origin")
        exact_keys(doc, keys, "summary")
        if doc["algorithm"] not in ALGORITHMS:
            raise UnsupportedError(f"unsupported algorithm {doc['algorithm']!r}")
        counts = (doc["files"], doc["total_size"])
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts):
            raise FormatError("summary files and total_size must be counts")
        exclude = doc["exclude"]
        if not isinstance(exclude, list) or not all(isinstance(p, str) for p in exclude):
            raise FormatError("summary exclude must be a list of strings")
        origin = _origin(doc["origin"]) if doc["format"] == FORMAT_V2 else None
        return cls(
            doc["algorithm"],
            check_chunk_size(doc["chunk_size"]),
            tuple(exclude),
            _hex_digest(doc["root"], "summary root"),
            doc["files"],
            doc["total_size"],
            origin,
        )


@dataclass(frozen=True)
class Manifest:
    """A validated manifest.  Build one with `Manifest.create`, `merkle.build`,
    `Manifest.from_json` or `Manifest.load`; each checks every rule.  The
    constructor recomputes the dataset root and refuses a `root` that differs
    (an empty `root` asks it to fill in the computed one)."""

    algorithm: Algorithm
    chunk_size: int
    files: tuple[FileEntry, ...]
    root: bytes
    exclude: tuple[str, ...] = DEFAULT_EXCLUDES
    layers: LeafLayers | None = field(default=None, compare=False, repr=False)
    metadata: Mapping[str, Mapping[str, Any]] | None = field(default=None, compare=False, repr=False)
    """Object-store metadata seen at build time (size, ETag, VersionId) by
    path: unsigned, for `audit --fast` only (MANIFEST.objects.json)."""
    origin: AnyOrigin | None = None
    """The Hugging Face repository and commit the files come from (M6)."""
    zarr: ZarrLayout | None = None
    """The groups and arrays of a zarr store, each array with its own
    subtree root (docs/zarr.md, Z1-Z2)."""
    _leaves: bytes = field(default=b"", init=False, compare=False, repr=False)
    """The files' dataset leaves (D1), concatenated: computed once for the
    root, kept for proofs (32 bytes a file)."""

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise UnsupportedError(f"unsupported algorithm {self.algorithm!r}")
        check_chunk_size(self.chunk_size)
        if len(self.exclude) > MAX_EXCLUDES:
            raise FormatError(f"more than {MAX_EXCLUDES} exclude patterns")
        if not all(isinstance(p, str) and 0 < len(p) <= MAX_PATTERN_LENGTH and "\x00" not in p for p in self.exclude):
            raise FormatError(f"exclude patterns must be non-empty strings of at most {MAX_PATTERN_LENGTH} characters")
        _check_entries(self.files)
        leaves = dataset_leaves_bytes(self.hasher, self.chunk_size, self.files)
        object.__setattr__(self, "_leaves", leaves)
        computed = rfc6962.root_of_bytes(self.hasher, leaves)
        if self.root == b"":  # Manifest.create: the root is ours to compute
            object.__setattr__(self, "root", computed)
        elif computed != self.root:
            raise FormatError("dataset root does not match the file entries")
        if self.layers is not None:
            self.layers.check(self)
        if self.origin is not None:
            from merkle.format.origin import GitOrigin, Origin

            if not isinstance(self.origin, Origin | GitOrigin):
                raise FormatError("origin is not an Origin")
        if self.zarr is not None:
            from merkle.format.zarr import ZarrLayout, check_ranges

            if not isinstance(self.zarr, ZarrLayout):
                raise FormatError("zarr is not a ZarrLayout")
            check_ranges(self.zarr, [f.path for f in self.files], self._subtree_root)

    def dataset_leaves(self) -> bytes:
        """Each file's dataset leaf hash (D1), in order, concatenated."""
        return self._leaves

    @classmethod
    def create(
        cls,
        files: Iterable[FileEntry],
        algorithm: Algorithm = DEFAULT_ALGORITHM,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        exclude: Sequence[str] = DEFAULT_EXCLUDES,
        layers: LeafLayers | None = None,
        origin: AnyOrigin | None = None,
        zarr: ZarrLayout | None = None,
    ) -> Manifest:
        """A manifest over `files` (any order), computing the dataset root
        (and, for a zarr store, each array's range and root)."""
        ordered = tuple(sorted(files, key=lambda f: f.path))
        if zarr is not None:
            from merkle.format.zarr import with_ranges

            hasher = tree_hasher(algorithm)
            zarr = with_ranges(
                zarr,
                [f.path for f in ordered],
                lambda first, n: dataset_root(hasher, chunk_size, ordered[first : first + n]),
            )
        return cls(algorithm, chunk_size, ordered, b"", tuple(exclude), layers, origin=origin, zarr=zarr)

    def _subtree_root(self, first: int, count: int) -> bytes:
        """The dataset-tree root of files[first : first + count] alone."""
        return dataset_root(self.hasher, self.chunk_size, self.files[first : first + count])

    @cached_property
    def hasher(self) -> TreeHasher:
        return tree_hasher(self.algorithm)

    @cached_property
    def _by_path(self) -> dict[str, FileEntry]:
        return {f.path: f for f in self.files}

    def entry(self, path: str) -> FileEntry | None:
        """The entry for `path`, or None when the manifest does not list it."""
        return self._by_path.get(path)

    def index(self, path: str) -> int:
        """Position of `path` in the dataset tree (its leaf index)."""
        import bisect

        i = bisect.bisect_left(self.files, path, key=lambda f: f.path)
        if i == len(self.files) or self.files[i].path != path:
            raise KeyError(path)
        return i

    @property
    def summary(self) -> Summary:
        return Summary(
            self.algorithm, self.chunk_size, self.exclude, self.root, len(self.files), self.total_size, self.origin
        )

    @property
    def format(self) -> str:
        """v1 unless the manifest records an origin, Hub identities (M6) or a
        zarr layout (Z1)."""
        if self.origin is not None or self.zarr is not None or any(f.hub for f in self.files):
            return FORMAT_V2
        return FORMAT

    def without_hub(self) -> Manifest:
        """The same manifest without per-file Hub identities: what a compact
        statement vouches for (the summary does not carry them)."""
        if not any(f.hub for f in self.files):
            return self
        return self._attached(files=tuple(FileEntry(f.path, f.size, f.root) for f in self.files))

    @property
    def total_size(self) -> int:
        """Bytes in all listed files."""
        return sum(f.size for f in self.files)

    # -- JSON ---------------------------------------------------------------

    def to_dict(self, files: bool = True, raw_files: bool = False) -> dict[str, Any]:
        """The manifest as a JSON-ready dict (what a signed statement carries);
        without the "files" list unless `files`; with `raw_files`, the list as
        `strictjson.Raw` (its compact JSON, written once, no dict per entry)."""
        fmt = self.format
        out: dict[str, Any] = {
            "format": fmt,
            "algorithm": self.algorithm,
            "chunk_size": self.chunk_size,
            "exclude": list(self.exclude),
        }
        if fmt == FORMAT_V2:
            out["origin"] = None if self.origin is None else self.origin.to_dict()
            if self.zarr is not None:
                out["zarr"] = self.zarr.to_dict()
        out["root"] = self.root.hex()
        if raw_files:
            text = "[" + _entries_json(self.files, ",") + "]"
            out["files"] = strictjson.Raw(text, lambda: [f.to_dict() for f in self.files])
        elif files:
            out["files"] = [f.to_dict() for f in self.files]
        return out

    def to_json(self) -> bytes:
        """Canonical bytes: fixed key order, one file entry per line."""
        head = self.to_dict(files=False)
        lines = _entries_json(self.files, ",\n")
        body = strictjson.dumps(head)[:-1] + ',"files":[' + ("\n" + lines + "\n" if lines else "") + "]}\n"
        return body.encode("utf-8")

    @classmethod
    @paused()
    def from_json(cls, data: bytes, source: str = "manifest") -> Manifest:
        """Parse and validate; FormatError (naming `source`) on any problem."""
        doc = strictjson.loads(data, source, MAX_MANIFEST_BYTES, MANIFEST_FIELDS)
        try:
            return cls.from_doc(doc)
        except FormatError as e:
            raise type(e)(e.message, source) from e

    @classmethod
    def from_doc(cls, doc: Any) -> Manifest:
        """Validate an already parsed JSON document (see `from_json`)."""
        if not isinstance(doc, dict):
            raise FormatError("top level is not a JSON object")
        fmt = doc.get("format")
        if fmt not in FORMATS:
            raise UnsupportedError(f"unsupported manifest format {fmt!r} (expected {FORMAT!r} or {FORMAT_V2!r})")
        v2 = fmt == FORMAT_V2
        exact_keys(doc, (_KEYS_V2 + ("zarr",) if "zarr" in doc else _KEYS_V2) if v2 else _KEYS, "manifest")
        algorithm = doc["algorithm"]
        if algorithm not in ALGORITHMS:
            raise UnsupportedError(f"unsupported algorithm {algorithm!r}")
        exclude = doc["exclude"]
        if not isinstance(exclude, list) or not all(isinstance(p, str) for p in exclude):
            raise FormatError("'exclude' must be a list of strings")
        files = doc["files"]
        if not isinstance(files, list):
            raise FormatError("'files' must be a list")
        entries: Sequence[Any]
        if isinstance(files, ParsedFiles) and not files.others:  # read by files_at: every entry canonical
            entries = files
        elif isinstance(files, ParsedFiles):  # entries already made where they were canonical
            entries = [f if type(f) is FileEntry else _entry(f, i, v2) for i, f in enumerate(files)]
        else:
            entries = [_entry(item, i, v2) for i, item in enumerate(files)]
        origin = _origin(doc["origin"]) if v2 and doc["origin"] is not None else None
        zarr = None
        if v2 and "zarr" in doc:
            from merkle.format.zarr import ZarrLayout

            zarr = ZarrLayout.from_doc(doc["zarr"])
        manifest = cls(
            algorithm=algorithm,
            chunk_size=doc["chunk_size"],
            files=tuple(entries),
            root=_hex_digest(doc["root"], "root"),
            exclude=tuple(exclude),
            origin=origin,
            zarr=zarr,
        )
        if v2 and manifest.format != FORMAT_V2:
            raise FormatError(f"{FORMAT_V2} without an origin, a zarr layout or any hub identity: write it as {FORMAT}")
        return manifest

    # -- files --------------------------------------------------------------

    @classmethod
    def load(cls, path: str | os.PathLike[str], layers: bool = True) -> Manifest:
        """Read a manifest file and, if present beside it, its leaf sidecar
        (which must authenticate against the manifest's roots)."""
        name = os.fspath(path)
        manifest = cls.from_json(read_capped(name, MAX_MANIFEST_BYTES), name)
        return manifest.with_sidecar(name + SIDECAR_SUFFIX).with_metadata_from(name) if layers else manifest

    def with_metadata_from(self, path: str) -> Manifest:
        """This manifest with the object metadata kept beside `path`, if any
        (unsigned: used only by `audit --fast`, which says so).  Like the leaf
        sidecar (S3), a file that does not parse is ignored with a
        SidecarWarning: unsigned derived data never decides a verdict."""
        sidecar = path + METADATA_SUFFIX
        if not os.path.lexists(sidecar):
            return self
        try:
            doc = strictjson.loads(read_capped(sidecar, MAX_MANIFEST_BYTES), sidecar, MAX_MANIFEST_BYTES)
            if not isinstance(doc, dict) or not all(isinstance(v, dict) for v in doc.values()):
                raise FormatError("object metadata must map paths to objects", sidecar)
        except (FormatError, SourceError) as e:
            warnings.warn(SidecarWarning(f"{e} (ignored)"), stacklevel=2)
            return self
        return self.with_metadata(doc)

    def with_metadata(self, metadata: Mapping[str, Mapping[str, Any]] | None) -> Manifest:
        return self._attached(metadata=metadata)

    def _attached(self, **derived: Any) -> Manifest:
        """A copy with derived data (layers, metadata) attached.  The entries
        and root are this manifest's, already validated, so the constructor's
        checks (a full recomputation of the dataset root) are not run again;
        leaf layers are checked by LeafLayers.from_bytes before they get here."""
        import copy

        twin = copy.copy(self)
        for name, value in derived.items():
            object.__setattr__(twin, name, value)
        if "files" in derived:
            twin.__dict__.pop("_by_path", None)
        return twin

    def with_sidecar(self, sidecar: str) -> Manifest:
        """This manifest with the leaf layers read from `sidecar`, if that
        file exists and authenticates; a sidecar that does not is ignored
        with a SidecarWarning (format rule S3)."""
        if not os.path.exists(sidecar):
            return self
        from merkle.format.leaves import LeafLayers

        try:
            fd, st = open_regular(sidecar)
            try:
                loaded = LeafLayers.read(fd, st.st_size, self, sidecar)
            except OSError as e:
                raise SourceError(os.strerror(e.errno or 0), sidecar) from e
            finally:
                os.close(fd)
        except (FormatError, SourceError) as e:
            # Derived data: a stale or damaged sidecar costs detail, not the check.
            warnings.warn(SidecarWarning(f"{e} (ignored)"), stacklevel=2)
            return self
        return self._attached(layers=loaded)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the manifest (and its sidecar, if it has leaf layers) atomically."""
        name = os.fspath(path)
        check_output(name)
        check_output(name + SIDECAR_SUFFIX)
        write_atomic(name, self.to_json())
        self.save_beside(name)
        if self.layers is None and os.path.exists(name + SIDECAR_SUFFIX):
            os.unlink(name + SIDECAR_SUFFIX)  # a stale sidecar would only be ignored

    def save_beside(self, path: str) -> None:
        """Write, each atomically, the derived files kept beside `path` (this
        manifest, or a bundle that signs it): the object metadata
        (PATH.objects.json) and the leaf sidecar (PATH.leaves), those this
        manifest carries."""
        if self.metadata is not None:
            write_atomic(path + METADATA_SUFFIX, (strictjson.dumps(dict(self.metadata)) + "\n").encode())
        if self.layers is not None:
            write_atomic(path + SIDECAR_SUFFIX, self.layers.to_bytes(self))


def _entry_json(f: FileEntry) -> str:
    """One entry exactly as `strictjson.dumps(f.to_dict())` writes it, without a
    dict and a json.dumps call per file (a million-file manifest)."""
    hub = f',"hub":{{"{f.hub[0]}":"{f.hub[1]}"}}' if f.hub is not None else ""
    return f'{{"path":{_encode_string(f.path)},"size":{f.size},"root":"{f.root.hex()}"{hub}}}'


_encode_string: Final = getattr(json.encoder, "c_encode_basestring", None) or json.encoder.encode_basestring


def _entries_json(files: Sequence[FileEntry], separator: str) -> str:
    """The entries as _entry_json writes them, joined: in C when every path
    is plain ASCII and no entry has a hub (ext entries_json), else here."""
    text = native.entries_json(files, separator) if native is not None else None
    return separator.join(map(_entry_json, files)) if text is None else text


def _entry(item: Any, i: int, v2: bool) -> FileEntry:
    """One parsed entry object as a FileEntry; FormatError naming files[i]."""
    if not isinstance(item, dict):
        raise FormatError(f"files[{i}] is not an object")
    keys = item.keys()
    hub = None
    if v2 and keys == _HUB_KEYSET:
        hub = _check_hub(item["hub"], f"files[{i}]")
    elif keys != _KEYSET:
        exact_keys(item, _ENTRY_KEYS, f"files[{i}]")
    if not isinstance(item["path"], str):
        raise FormatError(f"files[{i}].path is not a string")
    return FileEntry(item["path"], item["size"], _hex_digest(item["root"], f"files[{i}].root"), hub)


_KEYSET: Final = frozenset(_ENTRY_KEYS)
_HUB_KEYSET: Final = frozenset(_ENTRY_KEYS_HUB)


class ParsedFiles(list[Any]):
    """A manifest's "files" as `files_at` read it: a FileEntry for each entry
    in the canonical form `to_json` writes, the parsed JSON object for any
    other (which `Manifest.from_doc` then checks as usual), counted in
    `others`."""

    others = 0


# One entry exactly as _entry_json writes it without a hub: a path with no
# escape, a size without sign, leading zero or more than 19 digits, a root of
# lower-case hex.  It matches nothing else, and what it matches means what the
# strict parser would read (tests/format/test_fast_parse.py compares the two).
_CANONICAL_ENTRY: Final = re.compile(
    rf'\{{"path":"([^"\\\x00-\x1f]*)","size":(0|[1-9][0-9]{{0,18}}),"root":"([0-9a-f]{{{2 * DIGEST_SIZE}}})"\}}'
)


def files_at(text: str, pos: int) -> tuple[Any, int]:
    """The "files" member of a manifest at text[pos:] (strictjson.Parser):
    canonical entries read by one regular expression each, anything else by
    the strict parser, so a million-file manifest is not a million dicts
    built and thrown away; not a list: parsed strictly, as anywhere."""
    if not text.startswith("[", pos):
        return strictjson.value_at(text, pos)
    out = ParsedFiles()
    append, entry, after = out.append, _CANONICAL_ENTRY.match, strictjson.after_space
    fromhex = bytes.fromhex
    runs = native.canonical_entries if native is not None else None  # the same entries, read in C
    pos = after(text, pos + 1)
    if text.startswith("]", pos):
        return out, pos + 1
    while True:
        run = runs(text, pos, FileEntry) if runs is not None else None
        if run is None:
            runs = None  # a text of wider characters: the loop below, entry by entry
        if run is not None and run[0]:
            out += run[0]
            pos = run[1]
        elif (m := entry(text, pos)) is not None:
            path, size, root = m.groups()
            append(FileEntry(path, int(size), fromhex(root)))
            pos = m.end()
        else:
            item, pos = strictjson.value_at(text, pos)
            append(item)
            out.others += 1
        if text.startswith(",\n{", pos):  # to_json's separator, then the next entry
            pos += 2
            continue
        pos = after(text, pos)
        if text.startswith(",", pos):
            pos = after(text, pos + 1)
        elif text.startswith("]", pos):
            return out, pos + 1
        else:
            raise json.JSONDecodeError("Expecting ',' delimiter", text, pos)


MANIFEST_FIELDS: Final[Mapping[str, strictjson.Parser]] = {"files": files_at}
"""strictjson.loads(..., fields=MANIFEST_FIELDS) parses a manifest document."""
_HEX_DIGEST: Final = re.compile(f"[0-9a-f]{{{2 * DIGEST_SIZE}}}")


def _hex_digest(value: Any, where: str) -> bytes:
    if not isinstance(value, str) or not _HEX_DIGEST.fullmatch(value):
        raise FormatError(f"{where}: not a {2 * DIGEST_SIZE}-digit lower-case hex digest")
    return bytes.fromhex(value)
