"""The files under one path of an image's final file system, read straight
from its layer tars (docs/images.md, I6-I9): layers in order, whiteouts
applied (`.wh.NAME` hides NAME of the layers below, `.wh..wh..opq` the whole
folder's), nothing extracted.  Each layer is read once, as a stream: its
blob is checked against its digest while its tar is read, and every regular
file under the path is hashed as it passes (a file a later layer replaces
was hashed for nothing; the alternative is a second read of every layer).

A path is matched as the tar names it, `./` and `/` removed.  What is not a
plain file under the path (a link, a device, a hard link to a file outside
the path), or a name with `..`, is reported, never followed; a link at the
path or above it is an error for the whole path (its files are elsewhere).
"""

from __future__ import annotations

import gzip
import io
import posixpath
import re
import tarfile
import time
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, Final

from merkle.errors import IntegrityError, SourceError, UnsupportedError
from merkle.image.oci import HashingReader, Image, Layer, layer_problem
from merkle.report import Outcome, Report, Status

if TYPE_CHECKING:
    from merkle.format.manifest import Manifest

MAX_MEMBERS: Final = 10_000_000
"""Entries one layer may hold (a tar of millions of empty entries is read, not kept)."""


@dataclass(frozen=True)
class InImage:
    """A file of the final view: its size and Merkle root, or why it cannot
    be checked, and the layer it comes from."""

    size: int
    root: bytes
    layer: int
    problem: str | None = None


def model_path(path: str) -> str:
    """`path` as the layers name it: no leading `/` or `./`, no trailing `/`;
    ValueError for a path with `..` or an empty one."""
    parts = [p for p in path.strip().split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise ValueError(f"model path {path!r} is not a folder of the image")
    return "/".join(parts)


def _name(raw: str) -> str | None:
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    return None if ".." in parts else "/".join(parts)


def _under(name: str, folder: str) -> bool:
    return name == folder or name.startswith(folder + "/")


class _ZeroTail(io.RawIOBase):
    """`inner`, then one tar record of zeros: a tar need not be padded to
    its record size, which tarfile's stream reader insists on (what the
    zeros complete is still checked: the layer's digest covers the bytes
    read, not the zeros)."""

    def __init__(self, inner: IO[bytes]) -> None:
        self.inner = inner
        self.tail = tarfile.RECORDSIZE

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        got = self.inner.readinto(buffer)  # type: ignore[attr-defined]
        if got:
            return int(got)
        n = min(len(buffer), self.tail)
        buffer[:n] = bytes(n)
        self.tail -= n
        return n


def _open_layer(layer: Layer, reader: HashingReader) -> IO[bytes]:
    if layer.compression is None:
        return _ZeroTail(reader)  # type: ignore[arg-type,return-value]
    if layer.compression == "gzip":
        return _ZeroTail(gzip.GzipFile(fileobj=reader, mode="rb"))  # type: ignore[arg-type,return-value]
    raise UnsupportedError(f"layer {layer.index} ({layer.digest}) is zstd-compressed, which this reader does not read")


class NotOneTar(tarfile.TarError):
    """A layer whose headers tar readers read differently (a container runtime's Go reader and Python's)."""


_NUMERIC: Final = ((100, 108), (108, 116), (116, 124), (124, 136), (136, 148), (148, 156))
_OCTAL: Final = re.compile(rb" *[0-7]*")


def strict_tarinfo() -> type[tarfile.TarInfo]:
    """A TarInfo whose every header block is refused (NotOneTar) where
    Python's reader and Go's (containerd's, docker's) would read it
    differently: a block that is not a valid header before the end of the
    archive (Python would stop there, Go might read on), a number with a NUL
    or another character before its last digit, a ustar prefix under any
    magic but POSIX ustar's, a global PAX header, and one entry named by
    both a PAX header and a GNU long name.  One class per layer: it keeps
    which extension headers came before the entry."""

    class Strict(tarfile.TarInfo):
        pending: set[str] = set()

        @classmethod
        def frombuf(cls, buf: bytes | bytearray, encoding: str, errors: str) -> Strict:
            if len(buf) == tarfile.BLOCKSIZE and buf.count(0) != tarfile.BLOCKSIZE:
                for start, end in _NUMERIC:
                    field = buf[start:end]
                    if field[:1] not in (b"\x80", b"\xff") and not _OCTAL.fullmatch(field.rstrip(b" \x00")):
                        raise NotOneTar(f"a header whose number at byte {start} tar readers read differently")
                if buf[345:500].strip(b"\x00") and buf[257:265] != b"ustar\x0000":
                    raise NotOneTar("a name prefix outside a POSIX ustar header (tar readers read it differently)")
                kind = buf[156:157]
                if kind == tarfile.XGLTYPE:
                    raise NotOneTar("a global PAX header (container runtimes ignore it, Python applies it)")
                pax = kind in (tarfile.XHDTYPE, tarfile.SOLARIS_XHDTYPE)
                gnu = kind in (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK)
                cls.pending.add("pax" if pax else "gnu" if gnu else "entry")
                if {"pax", "gnu"} <= cls.pending:
                    raise NotOneTar("an entry named by both a PAX header and a GNU long name")
                if "entry" in cls.pending:
                    cls.pending = set()
                try:
                    return super().frombuf(buf, encoding, errors)
                except tarfile.InvalidHeaderError as e:  # type: ignore[attr-defined]  # not in the stubs
                    raise NotOneTar(f"an invalid header before the end of the archive: {e}") from e
            return super().frombuf(buf, encoding, errors)

    return Strict


def read_model(
    image: Image, path: str, algorithm: str, chunk_size: int
) -> tuple[dict[str, InImage], list[Outcome], int]:
    """The final view of the files under `path`: relative path -> InImage;
    one outcome per layer whose blob does not match its digest, or that
    holds entries that are refused; and the bytes hashed."""
    from merkle.hashing.files import hash_stream

    prefix = model_path(path)
    view: dict[str, InImage] = {}
    layer_outcomes: list[Outcome] = []
    hashed = 0
    for layer in image.layers:
        name_of_layer = f"layer {layer.index} ({layer.digest})"
        problems: list[str] = []
        with layer.open() as raw:
            reader = HashingReader(raw, layer.digest)
            stream = _open_layer(layer, reader)
            try:
                with tarfile.open(fileobj=stream, mode="r|", tarinfo=strict_tarinfo()) as tar:
                    for count, member in enumerate(tar):
                        if count >= MAX_MEMBERS:
                            raise IntegrityError(f"{name_of_layer} holds more than {MAX_MEMBERS:,} entries")
                        hashed += _apply(tar, member, layer.index, prefix, view, problems, algorithm, chunk_size,
                                         hash_stream)  # fmt: skip
                while rest := stream.read(1 << 20):  # the end-of-archive blocks and padding: the digest covers them
                    if rest.count(0) != len(rest):
                        raise NotOneTar("bytes after the end of the archive (another reader could read them)")
                reader.finish()
            except (tarfile.TarError, EOFError, OSError, gzip.BadGzipFile) as e:
                layer_outcomes.append(Outcome(name_of_layer, Status.ERROR, f"not a readable tar layer: {e}"))
                continue
        problem = layer_problem(layer, reader)
        if problem is not None:
            layer_outcomes.append(Outcome(name_of_layer, Status.MISMATCH, problem))
        elif problems:
            layer_outcomes.append(Outcome(name_of_layer, Status.ERROR, "; ".join(problems[:3])))
    return view, layer_outcomes, hashed


def _apply(
    tar: tarfile.TarFile,
    member: tarfile.TarInfo,
    layer: int,
    prefix: str,
    view: dict[str, InImage],
    problems: list[str],
    algorithm: str,
    chunk_size: int,
    hash_stream: object,
) -> int:
    name = _name(member.name)
    if name is None:
        problems.append(f"entry {member.name[:200]!r} leaves the root")
        return 0
    folder, base = posixpath.split(name)
    if base == ".wh..wh..opq":  # the folder's entries of the layers below are hidden
        _hide(view, folder, prefix, layer, opaque=True)
        return 0
    if base.startswith(".wh."):
        _hide(view, posixpath.join(folder, base[4:]), prefix, layer, opaque=False)
        return 0
    if _under(prefix, name) and name != prefix:  # an ancestor of the model path
        if member.issym() or member.islnk():
            problems.append(f"{name} is a link: the model path {prefix} is not read through it")
            _poison(view, layer, f"/{name} is a link in layer {layer}: not followed")
        elif not member.isdir():
            _clear(view, layer)  # a file where the folder was: what was below it is gone
        return 0
    if name == prefix:
        if member.issym() or member.islnk():
            problems.append(f"the model path {prefix} is a link: not followed")
            _poison(view, layer, f"the model path is a link in layer {layer}: not followed")
        elif not member.isdir():
            _clear(view, layer)
        return 0
    if not _under(name, prefix):
        return 0
    rel = name[len(prefix) + 1 :]
    if member.isreg():
        f = tar.extractfile(member)
        assert f is not None
        root = hash_stream(f, algorithm, chunk_size)  # type: ignore[operator]
        view[rel] = InImage(member.size, root, layer)
        for below in [p for p in view if p.startswith(rel + "/")]:  # a file where a folder was
            del view[below]
        return member.size
    if member.isdir():
        if rel in view and not view[rel].problem:
            del view[rel]
        return 0
    if member.islnk():
        target = _name(member.linkname)
        if target is not None and _under(target, prefix) and target != prefix:
            got = view.get(target[len(prefix) + 1 :])
            if got is not None and got.problem is None:
                view[rel] = InImage(got.size, got.root, layer)
                return 0
        view[rel] = InImage(0, b"", layer, f"a hard link to {member.linkname[:200]!r}, outside the model path")
        return 0
    what = "a symbolic link" if member.issym() else "a special file"
    view[rel] = InImage(0, b"", layer, f"{what} in layer {layer}: not followed")
    return 0


def _hide(view: dict[str, InImage], target: str, prefix: str, layer: int, opaque: bool) -> None:
    """A whiteout of `target` (of its contents only, when `opaque`): the
    files of the layers below it are gone from the view."""
    if _under(prefix, target):  # the model path or a folder above it: all of it, from below
        _clear(view, layer)
        return
    if not _under(target, prefix):
        return
    rel = target[len(prefix) + 1 :]
    for p in [p for p, f in view.items() if f.layer < layer]:
        if p.startswith(rel + "/") or (not opaque and p == rel):
            del view[p]


def _clear(view: dict[str, InImage], layer: int) -> None:
    for p in [p for p, f in view.items() if f.layer < layer]:
        del view[p]


def _poison(view: dict[str, InImage], layer: int, why: str) -> None:
    _clear(view, layer)
    view[""] = InImage(0, b"", layer, why)


def verify_model(image: Image, path: str, manifest: Manifest, allow_extra: bool = False) -> Report:
    """The files under `path` in `image` against `manifest` (which verified
    its own signature): each entry OK, MISMATCH (naming the layer it comes
    from), MISSING or ERROR, each other file EXTRA (unless the manifest's
    exclusions cover it), and each layer that does not match its digest."""
    from merkle.source.walk import Excluder

    started = time.perf_counter()
    try:
        view, layer_outcomes, hashed = read_model(image, path, manifest.algorithm, manifest.chunk_size)
    except ValueError as e:
        raise SourceError(str(e), image.target) from e
    digests = {layer.index: layer.digest for layer in image.layers}
    outcomes = list(layer_outcomes)
    blocked = view.pop("", None)
    for entry in manifest.files:
        got = view.pop(entry.path, None)
        if blocked is not None:
            outcomes.append(Outcome(entry.path, Status.ERROR, blocked.problem or ""))
        elif got is None:
            outcomes.append(Outcome(entry.path, Status.MISSING, f"not under {path} in the image"))
        elif got.problem is not None:
            outcomes.append(Outcome(entry.path, Status.ERROR, got.problem))
        elif got.size != entry.size or got.root != entry.root:
            where = f"layer {got.layer} ({digests[got.layer]})"
            what = f"size {got.size}, signed {entry.size}" if got.size != entry.size else "content differs"
            outcomes.append(Outcome(entry.path, Status.MISMATCH, f"{what}, in {where}"))
        else:
            outcomes.append(Outcome(entry.path, Status.OK))
    skip = Excluder(manifest.exclude)
    for rel, got in sorted(view.items()):
        if not skip.covers(rel):
            outcomes.append(Outcome(rel, Status.EXTRA, got.problem or f"in layer {got.layer}, not signed"))
    return Report(manifest.root, manifest.algorithm, tuple(outcomes), allow_extra, bytes_hashed=hashed,
                  seconds=time.perf_counter() - started)  # fmt: skip
