"""The `zarr` record of a v2 manifest: what a zarr store holds, read from
its metadata documents (which nodes are groups and arrays, and how each
array names its chunk keys), and each array's range of entries and subtree
root.  Part of the manifest format, and pure: building, auditing and
describing a store need only the documents, never the zarr library
(merkle.zarr reads stores with it).

Rules (docs/zarr.md, Z1-Z6):
- A store is zarr when its root holds `zarr.json` (format 3) or `.zgroup` /
  `.zarray` (format 2).  Every `zarr.json` (v3) or `.zarray` / `.zgroup` (v2)
  below it is a node; a document that does not parse, or names another
  format, fails the build naming the key.
- An array's keys are every key under its path (its metadata documents and
  its chunk or shard objects, and anything else put there).  They are
  contiguous in the manifest's sorted order, so each array has its own
  subtree root: the RFC 6962 root over the dataset leaves (D1) of exactly
  those entries, recorded with their index range and rechecked on load.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import json
import posixpath
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from merkle.errors import FormatError

V3_DOC = "zarr.json"
V2_ARRAY = ".zarray"
V2_GROUP = ".zgroup"
V2_DOCS = (V2_ARRAY, V2_GROUP, ".zattrs")
ROOT_DOCS = (V3_DOC, V2_GROUP, V2_ARRAY)
MAX_DOC_BYTES = 16 << 20
MAX_NDIM = 64
ZARR_CHUNK_SIZE = 64 << 10
"""The default chunk size of a zarr store's manifest: a range read of a shard
is checked by whole chunks, so small ones keep what is read close to what
was asked."""
SHARDING = "sharding_indexed"


@dataclass(frozen=True)
class ZarrArray:
    """One array of a store, as its metadata document describes it."""

    path: str
    """Node path ('' for an array at the store's root)."""
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    """The grid of stored objects (the shard shape when sharded)."""
    inner_chunks: tuple[int, ...] | None
    """The chunk shape inside each shard, or None when not sharded."""
    dtype: str
    separator: str
    """Between the coordinates of a chunk key ('/' or '.')."""
    prefix_c: bool
    """v3 default encoding: chunk keys start with 'c' + separator."""
    first: int = 0
    count: int = 0
    """The array's entries: manifest files[first : first + count]."""
    root: bytes = b""
    """RFC 6962 root over the dataset leaves of those entries."""

    @property
    def key_prefix(self) -> str:
        return self.path + "/" if self.path else ""

    def owns(self, key: str) -> bool:
        return key.startswith(self.key_prefix)

    def chunk_coords(self, key: str) -> tuple[int, ...] | None:
        """The grid coordinates a key names, or None when it is not one of
        this array's chunk (or shard) keys."""
        if not self.owns(key):
            return None
        rel = key[len(self.key_prefix) :]
        if self.prefix_c:
            if rel == "c" and not self.shape:
                return ()
            if not rel.startswith("c" + self.separator):
                return None
            rel = rel[2:]
        elif not self.shape:
            return () if rel == "0" else None
        parts = rel.split(self.separator)
        if len(parts) != len(self.shape) or not all(p.isdigit() and p == str(int(p)) for p in parts):
            return None
        coords = tuple(int(p) for p in parts)
        grid = self.grid
        return coords if all(c < g for c, g in zip(coords, grid, strict=True)) else None

    @property
    def grid(self) -> tuple[int, ...]:
        """Chunks (or shards) along each dimension."""
        return tuple(-(-s // c) if c else 0 for s, c in zip(self.shape, self.chunks, strict=True))

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "shape": list(self.shape),
            "chunks": list(self.chunks),
            "inner_chunks": None if self.inner_chunks is None else list(self.inner_chunks),
            "dtype": self.dtype,
            "separator": self.separator,
            "prefix_c": self.prefix_c,
            "first": self.first,
            "count": self.count,
            "root": self.root.hex(),
        }

    @classmethod
    def from_doc(cls, doc: Any, where: str) -> ZarrArray:
        keys = ("path", "shape", "chunks", "inner_chunks", "dtype", "separator", "prefix_c", "first", "count", "root")
        if not isinstance(doc, dict) or set(doc) != set(keys):
            raise FormatError(f"{where}: an array needs exactly the keys {', '.join(keys)}")
        path = doc["path"]
        if not isinstance(path, str):
            raise FormatError(f"{where}.path is not a string")
        shape = _ints(doc["shape"], f"{where}.shape", minimum=0)
        chunks = _ints(doc["chunks"], f"{where}.chunks", minimum=1)
        inner = None if doc["inner_chunks"] is None else _ints(doc["inner_chunks"], f"{where}.inner_chunks", 1)
        if len(chunks) != len(shape) or (inner is not None and len(inner) != len(shape)):
            raise FormatError(f"{where}: shape and chunk shapes differ in length")
        if not isinstance(doc["dtype"], str) or len(doc["dtype"]) > 1024:
            raise FormatError(f"{where}.dtype is not a string")
        if doc["separator"] not in ("/", ".") or not isinstance(doc["prefix_c"], bool):
            raise FormatError(f"{where}: chunk key encoding is not '/' or '.' with a boolean prefix_c")
        first, count = doc["first"], doc["count"]
        if not all(type(v) is int and v >= 0 for v in (first, count)):
            raise FormatError(f"{where}: first and count must be non-negative integers")
        root = doc["root"]
        if not isinstance(root, str) or len(root) != 64 or root != root.lower():
            raise FormatError(f"{where}.root is not a lower-case hex digest")
        try:
            digest = bytes.fromhex(root)
        except ValueError:
            raise FormatError(f"{where}.root is not a lower-case hex digest") from None
        return cls(path, shape, chunks, inner, doc["dtype"], doc["separator"], doc["prefix_c"], first, count, digest)


@dataclass(frozen=True)
class ZarrLayout:
    """The nodes of a zarr store (rule Z1): signed with the manifest."""

    zarr_format: int
    groups: tuple[str, ...]
    arrays: tuple[ZarrArray, ...]

    def array_of(self, key: str) -> ZarrArray | None:
        """The array a key belongs to (its metadata or one of its chunks).
        Arrays never nest, so the only candidate is the array with the
        greatest key prefix not above the key (a key with prefix P sorts after
        P, and anything between them also starts with P)."""
        prefixes = self._prefixes
        i = bisect.bisect_right(prefixes, (key, len(prefixes))) - 1
        if i >= 0 and key.startswith(prefixes[i][0]):
            return self.arrays[prefixes[i][1]]
        return None

    @functools.cached_property
    def _prefixes(self) -> list[tuple[str, int]]:
        return sorted((a.key_prefix, i) for i, a in enumerate(self.arrays))

    def array(self, path: str) -> ZarrArray:
        for a in self.arrays:
            if a.path == path:
                return a
        raise KeyError(path)

    def to_dict(self) -> dict[str, Any]:
        return {
            "zarr_format": self.zarr_format,
            "groups": list(self.groups),
            "arrays": [a.to_dict() for a in self.arrays],
        }

    @classmethod
    def from_doc(cls, doc: Any) -> ZarrLayout:
        if not isinstance(doc, dict) or set(doc) != {"zarr_format", "groups", "arrays"}:
            raise FormatError("zarr: needs exactly the keys zarr_format, groups, arrays")
        if doc["zarr_format"] not in (2, 3) or type(doc["zarr_format"]) is not int:
            raise FormatError("zarr.zarr_format must be 2 or 3")
        groups, arrays = doc["groups"], doc["arrays"]
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise FormatError("zarr.groups must be a list of node paths")
        if not isinstance(arrays, list):
            raise FormatError("zarr.arrays must be a list")
        parsed = tuple(ZarrArray.from_doc(a, f"zarr.arrays[{i}]") for i, a in enumerate(arrays))
        return cls(doc["zarr_format"], tuple(groups), parsed)


def is_zarr_root(names: Sequence[str]) -> bool:
    """Whether a store whose root holds `names` is a zarr store."""
    return any(n in names for n in ROOT_DOCS)


def describe(paths: Sequence[str], read: Callable[[str], bytes]) -> ZarrLayout | None:
    """The layout of a store whose keys are `paths` (sorted); `read(key)`
    returns a metadata document's bytes.  None when the root holds no zarr
    metadata; FormatError naming the key for a document that does not parse."""
    at_root = [p for p in paths if "/" not in p]
    if not is_zarr_root(at_root):
        return None
    fmt = 3 if V3_DOC in at_root else 2
    groups: list[str] = []
    arrays: list[ZarrArray] = []
    for key in paths:
        node, name = posixpath.split(key)
        if fmt == 3 and name == V3_DOC:
            doc = _load(key, read)
            if doc.get("zarr_format") != 3:
                raise FormatError(f"zarr_format is {doc.get('zarr_format')!r}, expected 3", key)
            kind = doc.get("node_type")
            if kind == "group":
                groups.append(node)
            elif kind == "array":
                arrays.append(_v3_array(node, doc, key))
            else:
                raise FormatError(f"node_type is {kind!r}, expected 'array' or 'group'", key)
        elif fmt == 2 and name in (V2_ARRAY, V2_GROUP):
            doc = _load(key, read)
            if doc.get("zarr_format") != 2:
                raise FormatError(f"zarr_format is {doc.get('zarr_format')!r}, expected 2", key)
            if name == V2_GROUP:
                groups.append(node)
            else:
                arrays.append(_v2_array(node, doc, key))
    nodes = sorted({*groups, *(a.path for a in arrays)})
    for a in arrays:  # an array is a leaf of the hierarchy: no node below it
        i = bisect.bisect_right(nodes, a.path)
        if a.path == "" and len(nodes) > 1 or i < len(nodes) and a.path and nodes[i].startswith(a.key_prefix):
            inner = nodes[i] if a.path else nodes[1]
            raise FormatError(f"array {a.path or '(root)'} holds another node, {inner!r}", inner)
    return ZarrLayout(fmt, tuple(sorted(groups)), tuple(sorted(arrays, key=lambda a: a.path)))


def with_ranges(layout: ZarrLayout, paths: Sequence[str], root_of: Callable[[int, int], bytes]) -> ZarrLayout:
    """The layout with each array's entry range in `paths` (the manifest's
    sorted file paths) and its subtree root, `root_of(first, count)`."""
    arrays = []
    for a in layout.arrays:
        first, end = _span(paths, a)
        arrays.append(dataclasses.replace(a, first=first, count=end - first, root=root_of(first, end - first)))
    return dataclasses.replace(layout, arrays=tuple(arrays))


def check_ranges(layout: ZarrLayout, paths: Sequence[str], root_of: Callable[[int, int], bytes]) -> None:
    """Rule Z2 on load: every array's range is exactly its keys and its root
    is theirs."""
    seen = set()
    for a in layout.arrays:
        if a.path in seen:
            raise FormatError(f"zarr: array {a.path!r} listed twice")
        seen.add(a.path)
        if (a.first, a.first + a.count) != _span(paths, a):
            raise FormatError(f"zarr: array {a.path!r}: entries {a.first}..{a.first + a.count} are not its keys")
        if root_of(a.first, a.count) != a.root:
            raise FormatError(f"zarr: array {a.path!r}: root does not match its entries")
    if [a.path for a in layout.arrays] != sorted(seen):
        raise FormatError("zarr: arrays not sorted by path")


def _span(paths: Sequence[str], a: ZarrArray) -> tuple[int, int]:
    if not a.path:
        return 0, len(paths)
    first = bisect.bisect_left(paths, a.key_prefix)
    end = bisect.bisect_left(paths, a.path + "0", lo=first)  # '0' follows '/': past every key under the prefix
    return first, end


def _load(key: str, read: Callable[[str], bytes]) -> dict[str, Any]:
    data = read(key)
    if len(data) > MAX_DOC_BYTES:
        raise FormatError(f"metadata document larger than {MAX_DOC_BYTES} bytes", key)
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise FormatError(f"not valid JSON ({e})", key) from None
    if not isinstance(doc, dict):
        raise FormatError("metadata document is not a JSON object", key)
    return doc


def _ints(value: Any, where: str, minimum: int) -> tuple[int, ...]:
    if not isinstance(value, list) or len(value) > MAX_NDIM or not all(type(v) is int and v >= minimum for v in value):
        raise FormatError(f"{where} must be a list of at most {MAX_NDIM} integers >= {minimum}")
    return tuple(value)


def _v3_array(node: str, doc: dict[str, Any], key: str) -> ZarrArray:
    shape = _ints(doc.get("shape"), "shape", 0)
    grid = doc.get("chunk_grid")
    if not (isinstance(grid, dict) and grid.get("name") == "regular" and isinstance(grid.get("configuration"), dict)):
        raise FormatError("chunk_grid is not a regular grid", key)
    chunks = _ints(grid["configuration"].get("chunk_shape"), "chunk_grid chunk_shape", 1)
    encoding = doc.get("chunk_key_encoding", {"name": "default"})
    if not isinstance(encoding, dict) or encoding.get("name") not in ("default", "v2"):
        raise FormatError("chunk_key_encoding is neither 'default' nor 'v2'", key)
    default = encoding["name"] == "default"
    config = encoding.get("configuration") or {}
    separator = config.get("separator", "/" if default else ".") if isinstance(config, dict) else None
    if separator not in ("/", "."):
        raise FormatError(f"chunk key separator {separator!r} is neither '/' nor '.'", key)
    inner = None
    codecs = doc.get("codecs")
    if not isinstance(codecs, list):
        raise FormatError("codecs is not a list", key)
    for codec in codecs:
        if isinstance(codec, dict) and codec.get("name") == SHARDING:
            cfg = codec.get("configuration")
            inner = _ints(cfg.get("chunk_shape") if isinstance(cfg, dict) else None, "sharding chunk_shape", 1)
    dtype = doc.get("data_type")
    if not isinstance(dtype, (str, dict)):
        raise FormatError("data_type is missing", key)
    if len(chunks) != len(shape) or (inner is not None and len(inner) != len(shape)):
        raise FormatError("shape and chunk shape differ in length", key)
    return ZarrArray(
        node,
        shape,
        chunks,
        inner,
        dtype if isinstance(dtype, str) else json.dumps(dtype, sort_keys=True),
        separator,
        default,
    )


def _v2_array(node: str, doc: dict[str, Any], key: str) -> ZarrArray:
    shape = _ints(doc.get("shape"), "shape", 0)
    chunks = _ints(doc.get("chunks"), "chunks", 1)
    if len(chunks) != len(shape):
        raise FormatError("shape and chunks differ in length", key)
    separator = doc.get("dimension_separator", ".")
    if separator not in ("/", "."):
        raise FormatError(f"dimension_separator {separator!r} is neither '/' nor '.'", key)
    dtype = doc.get("dtype")
    if not isinstance(dtype, (str, list)):
        raise FormatError("dtype is missing", key)
    return ZarrArray(
        node, shape, chunks, None, dtype if isinstance(dtype, str) else json.dumps(dtype), separator, False
    )
