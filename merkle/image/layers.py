"""The files under one path of an image's final file system, read straight
from its layer tars (docs/images.md, I6-I9): layers in order, whiteouts
applied (merkle.image.view), nothing extracted.

Each layer's blob is checked against its digest, and its tar against the
config's diff_id, over every byte (I7).  An uncompressed layer in place (a
blob file, a member of a docker archive) has its headers read by seeking
over the files' data; its blob is checked on a thread of its own while the
files under the path that the final view keeps are hashed as byte ranges of
the blob by the engine's workers (two reads of the blob, both from the page
cache after the first: docs/benchmarks.md, Images).  A compressed layer is
gunzipped (and checked) on a thread of its own while its tar is read and its
files hashed as they pass.  Nothing is reported before every check is done,
and a file is OK only from a layer that is.

A path is matched as the tar names it, `./` and `/` removed.  What is not a
plain file under the path (a link, a device, a hard link to a file outside
the path), or a name with `..`, is reported, never followed; a link at the
path or above it is an error for the whole path (its files are elsewhere).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import gzip
import io
import os
import posixpath
import tarfile
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO, TYPE_CHECKING, Final, cast

from merkle.errors import IntegrityError, SourceError, UnsupportedError
from merkle.image.oci import HashingReader, Image, Layer, Located, layer_problem
from merkle.image.streams import Produced, Window, ZeroTail, unzstd
from merkle.image.tarheaders import NotOneTar, strict_tarinfo
from merkle.image.view import InImage, View
from merkle.report import Outcome, Report, Status

if TYPE_CHECKING:
    from merkle.format.manifest import Manifest
    from merkle.hashing.spans import Span
    from merkle.tree.hasher import Algorithm

__all__ = ["MAX_MEMBERS", "InImage", "NotOneTar", "model_path", "read_model", "strict_tarinfo", "verify_model"]

MAX_MEMBERS: Final = 10_000_000
TRUNCATED: Final = "a file's data runs past the end of the layer (a runtime's reader fails it)"
"""Entries one layer may hold (a tar of millions of empty entries is read, not kept)."""
READ: Final = 4 << 20


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


class _Reading:
    """One read of an image's layers for the files under `prefix`: the view
    as entries are applied, the byte ranges still to hash, the digest checks
    still running, and one outcome per layer that fails."""

    def __init__(self, prefix: str, algorithm: str, chunk_size: int, stack: contextlib.ExitStack) -> None:
        self.prefix, self.algorithm, self.chunk_size = prefix, algorithm, chunk_size
        self.stack = stack
        self.view = View()
        self.spans: list[Span] = []
        self.checks: list[tuple[Layer, Future[str | None]]] = []
        self.failed: dict[int, Outcome] = {}
        self.hashed = 0
        self.pool = stack.enter_context(ThreadPoolExecutor(1, "merkle-layer-digest"))
        self.links: dict[str, str] = {}
        """Every symbolic link of the layers read so far, by path in the image -> its target: a runtime writes
        an entry below one through it (resolved inside the root, as securejoin does)."""
        self.in_place: list[tuple[Layer, int, tuple[int, ...]]] = []
        """Each blob read in place, its descriptor and identity when first read: read three times (headers,
        digest, spans), it must not change in between."""

    def read(self, layer: Layer) -> None:
        name = f"layer {layer.index} ({layer.digest})"
        if layer.compression not in (None, "gzip", "zstd"):
            raise UnsupportedError(f"{name} is {layer.compression}-compressed, which this reader does not read")
        problems: list[str] = []
        located = layer.locate() if layer.compression is None else None
        try:
            if located is not None:
                self.stack.callback(located.file.close)
                self.in_place.append((layer, located.file.fileno(), _identity(located.file.fileno())))
                self._in_place(layer, located, problems)
                self.checks.append((layer, self.pool.submit(_check_in_place, layer, located)))
                problem = None
            else:
                problem = self._streamed(layer, problems)
        except (tarfile.TarError, EOFError, OSError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
            self.failed[layer.index] = Outcome(name, Status.ERROR, f"not a readable tar layer: {e}")
            return
        if problem is not None:
            self.failed[layer.index] = Outcome(name, Status.MISMATCH, problem)
        elif problems:
            self.failed[layer.index] = Outcome(name, Status.ERROR, "; ".join(problems[:3]))

    def _in_place(self, layer: Layer, located: Located, problems: list[str]) -> None:
        """The headers of an uncompressed layer, read by seeking over its
        files' data; each file under the path becomes a span to hash."""
        window = Window(located.file.fileno(), located.start, located.length, tarfile.RECORDSIZE)
        with tarfile.open(fileobj=window, mode="r:", tarinfo=strict_tarinfo()) as tar:
            if self._entries(tar, layer, problems, located) > located.length:
                raise NotOneTar(TRUNCATED)
            window.seek(tar.offset)
            _zeros_to_the_end(window)

    def _streamed(self, layer: Layer, problems: list[str]) -> str | None:
        """A layer read as a stream (gzip, or not in place): the blob read,
        checked and gunzipped on another thread, the tar read here."""
        readers: list[HashingReader] = []

        @contextlib.contextmanager
        def blob() -> Iterator[IO[bytes]]:  # one thread: the blob read, and checked against its digest
            with layer.open() as raw:
                reader = HashingReader(raw, layer.digest)
                readers.append(reader)
                yield reader  # type: ignore[misc]  # read to its end by Produced

        @contextlib.contextmanager
        def unzipped() -> Iterator[IO[bytes]]:  # another: gunzipped (or zstd-decompressed)
            with contextlib.closing(Produced(blob)) as raw:
                buffered = io.BufferedReader(raw, 1 << 20)
                opened: IO[bytes] = (
                    unzstd(buffered) if layer.compression == "zstd" else gzip.GzipFile(fileobj=buffered, mode="rb")  # type: ignore[assignment]
                )
                with opened as tar:
                    yield tar

        diff = _needs_diff(layer)
        produced = Produced(unzipped if layer.compression is not None else blob)
        try:
            tarred: IO[bytes] = produced  # type: ignore[assignment]
            if diff is not None:
                tarred = HashingReader(tarred, diff)  # type: ignore[assignment]
            stream = ZeroTail(tarred)
            with tarfile.open(fileobj=stream, mode="r|", tarinfo=strict_tarinfo(), bufsize=1 << 20) as tar:
                if self._entries(tar, layer, problems, None) > stream.real:
                    raise NotOneTar(TRUNCATED)
                ahead = getattr(tar.fileobj, "buf", b"")  # what tarfile's stream reader read past the end
                if ahead.count(0) != len(ahead):
                    raise NotOneTar("bytes after the end of the archive (another reader could read them)")
            _zeros_to_the_end(stream)
        finally:
            produced.close()
        (reader,) = readers
        problem = layer_problem(layer, reader)
        if problem is None and diff is not None:
            assert isinstance(tarred, HashingReader)
            problem = _diff_problem(diff, tarred)
        return problem

    def _entries(self, tar: tarfile.TarFile, layer: Layer, problems: list[str], located: Located | None) -> int:
        """Apply every entry; the offset where the last entry's data ends (a
        runtime's reader fails a file whose data ends early, but takes a tar
        that ends there, without the padding and end blocks, as umoci writes
        them)."""
        count = end = 0
        while (member := tar.next()) is not None:
            tar.members.clear()  # type: ignore[attr-defined]  # tarfile keeps every header it reads; none is needed again (I9)
            count += 1
            if count > MAX_MEMBERS:
                raise IntegrityError(f"layer {layer.index} ({layer.digest}) holds more than {MAX_MEMBERS:,} entries")
            end = max(end, member.offset_data + member.size)
            self._apply(tar, member, layer.index, problems, located)
            del problems[3:]  # three are said (read): a bomb of refused entries keeps no more
        return end

    def _apply(
        self, tar: tarfile.TarFile, member: tarfile.TarInfo, layer: int, problems: list[str], located: Located | None
    ) -> None:
        prefix, view = self.prefix, self.view
        name = _name(member.name)
        if name is None:
            problems.append(f"entry {member.name[:200]!r} leaves the root")
            return
        if self.links and (through := self._through_link(name, member)) is not None:
            problems.append(f"{name[:200]} is written to /{through[:200]} through a symbolic link")
            return
        if member.issym():
            self.links[name] = member.linkname
        elif name in self.links:  # replaced (a folder, a file): entries below it are its own again
            del self.links[name]
        folder, base = posixpath.split(name)
        if base.startswith(".wh.") and base != ".wh..wh..opq":
            self.links.pop(posixpath.join(folder, base[4:]), None)
        if base.startswith(".wh."):
            opaque = base == ".wh..wh..opq"  # the folder's entries of the layers below are hidden
            target = folder if opaque else posixpath.join(folder, base[4:])
            if _under(prefix, target):  # the model path or a folder above it: all of it, from below
                conflict = None if opaque else view.hide("", layer)
                if opaque:
                    view.opaque("", layer)
            elif _under(target, prefix):
                rel = target[len(prefix) + 1 :]
                conflict = None if opaque else view.hide(rel, layer)
                if opaque:
                    view.opaque(rel, layer)
            else:
                conflict = None
            if conflict:
                problems.append(conflict)
            return
        if _under(prefix, name):  # the model path, or a folder above it
            if (member.issym() or member.islnk()) and name == prefix:
                problems.append(f"the model path {prefix} is a link: not followed")
                view.block(layer, f"the model path is a link in layer {layer}: not followed")
            elif member.issym() or member.islnk():
                problems.append(f"{name} is a link: the model path {prefix} is not read through it")
                view.block(layer, f"/{name} is a link in layer {layer}: not followed")
            elif not member.isdir():
                conflict = view.clear(layer)  # a file where the folder was: what was below it is gone
                if conflict:
                    problems.append(conflict)
            return
        if not _under(name, prefix):
            return
        rel = name[len(prefix) + 1 :]
        if member.isdir():
            view.folder(rel, layer)
            return
        if member.isreg():
            entry = self._file(tar, member, name, layer, located)
        elif member.islnk():
            linked = _name(member.linkname)
            got: InImage | None = None
            if linked is not None and _under(linked, prefix) and linked != prefix:
                got = view.get(linked[len(prefix) + 1 :])
            if got is not None and got.problem is None:
                entry = dataclasses.replace(got, layer=layer, origin=got.origin if got.origin >= 0 else got.layer)
            else:
                entry = InImage(0, b"", layer, f"a hard link to {member.linkname[:200]!r}, outside the model path")
        else:
            what = "a symbolic link" if member.issym() else "a special file"
            entry = InImage(0, b"", layer, f"{what} in layer {layer}: not followed")
        conflict = view.put(rel, entry)
        if conflict:
            problems.append(conflict)

    def _through_link(self, name: str, member: tarfile.TarInfo) -> str | None:
        """Where a runtime puts `name` (or, for a hard link in the model path,
        finds its target) when a folder above it is a symbolic link of the
        layers so far, if that is the model path, inside it or above it;
        None otherwise (no link on the way, or one that leads elsewhere)."""
        paths = [name]
        if member.islnk() and _under(name, self.prefix) and (target := _name(member.linkname)) is not None:
            paths.append(target)  # the content of a hard link in the model path is its target's
        for path in paths:
            resolved = self._resolve(path)
            if resolved != path and (
                resolved is None or _under(resolved, self.prefix) or _under(self.prefix, resolved)
            ):
                return resolved or "(a loop of links)"
        return None

    def _resolve(self, path: str) -> str | None:
        """`path` with the links among its folders followed inside the root
        (`..` stops at the root, as securejoin does); None for a loop."""
        *folders, last = path.split("/")
        todo = collections.deque(folders)
        out: list[str] = []
        hops = 0
        while todo:
            part = todo.popleft()
            if part in ("", "."):
                continue
            if part == "..":
                if out:
                    out.pop()
                continue
            target = self.links.get("/".join([*out, part]))
            if target is None:
                out.append(part)
                continue
            hops += 1
            if hops > 255:
                return None
            if target.startswith("/"):
                out = []
            todo.extendleft(reversed(target.split("/")))
        return "/".join([*out, last])

    def _file(
        self, tar: tarfile.TarFile, member: tarfile.TarInfo, name: str, layer: int, located: Located | None
    ) -> InImage:
        """A regular file: a span of the blob to hash later (only if the
        final view keeps it), or hashed now as the stream passes."""
        if located is not None and not member.issparse():  # a sparse member's bytes are not its content
            from merkle.hashing.spans import Span

            self.spans.append(Span(f"/{name}", located.file.fileno(), located.start + member.offset_data, member.size))
            return InImage(member.size, b"", layer, job=len(self.spans) - 1)
        from merkle.hashing.files import hash_stream

        f = tar.extractfile(member)
        assert f is not None
        root = hash_stream(f, self.algorithm, self.chunk_size)  # type: ignore[arg-type]
        self.hashed += member.size
        return InImage(member.size, root, layer)

    def finish(self) -> tuple[dict[str, InImage], list[Outcome]]:
        """The spans the final view keeps hashed (while the digest checks
        run), the checks' outcomes, and the view's files, each marked
        `suspect` when a layer it comes from failed."""
        from merkle.hashing.spans import hash_spans

        files = dict(self.view.files())
        jobs = sorted({f.job for f in files.values() if f.job >= 0})
        algorithm = cast("Algorithm", self.algorithm)  # the manifest's, checked when it was parsed
        digests = dict(zip(jobs, hash_spans([self.spans[j] for j in jobs], algorithm, self.chunk_size), strict=True))
        for layer, check in self.checks:
            problem = check.result()
            if problem is not None:
                self.failed[layer.index] = Outcome(f"layer {layer.index} ({layer.digest})", Status.MISMATCH, problem)
        for layer, fd, before in self.in_place:  # after its last read: a write in between moved size, mtime or ctime
            if _identity(fd) != before and layer.index not in self.failed:
                self.failed[layer.index] = Outcome(
                    f"layer {layer.index} ({layer.digest})",
                    Status.ERROR,
                    "written while it was read (its size, mtime or ctime moved): what was hashed may not be what "
                    "its digest covers",
                )
        for rel, f in files.items():
            if f.job >= 0:
                d = digests[f.job]
                if d.error is not None:
                    f = dataclasses.replace(f, problem=f"not readable in layer {f.layer}: {d.error.message}")
                else:
                    f = dataclasses.replace(f, root=d.root)
                    self.hashed += f.size
            bad = [i for i in (f.layer, f.origin) if i in self.failed]
            if bad:
                f = dataclasses.replace(f, suspect=f"from {self.failed[bad[0]].path}, which fails its checks")
            files[rel] = f
        if self.view.blocked is not None:
            files[""] = self.view.blocked
        return files, [self.failed[i] for i in sorted(self.failed)]


def _identity(fd: int) -> tuple[int, ...]:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def _zeros_to_the_end(stream: IO[bytes] | io.RawIOBase) -> None:
    """The end-of-archive blocks and padding: the digest covers them, and another reader could read what is not zero."""
    while rest := stream.read(READ):
        if rest.count(0) != len(rest):
            raise NotOneTar("bytes after the end of the archive (another reader could read them)")


def _needs_diff(layer: Layer) -> str | None:
    """The config's diff_id of `layer`, when its uncompressed tar must be
    hashed for it (not when the blob's own digest is that digest)."""
    if layer.diff_id is None or (layer.compression is None and layer.diff_id == layer.digest):
        return None
    return layer.diff_id


def _diff_problem(diff: str, tarred: HashingReader) -> str | None:
    got = f"{diff.split(':', 1)[0]}:{tarred.hash.hexdigest()}"
    return None if got == diff else f"its tar is {got}, not the config's diff_id {diff}"


def _check_in_place(layer: Layer, located: Located) -> str | None:
    """Every byte of a blob in place against its digest, size and diff_id (on the digest thread)."""
    reader = HashingReader(Window(located.file.fileno(), located.start, located.length), layer.digest)  # type: ignore[arg-type]
    diff = _needs_diff(layer)
    outer = HashingReader(reader, diff) if diff is not None else reader  # type: ignore[arg-type]
    outer.finish()
    return layer_problem(layer, reader) or (_diff_problem(diff, outer) if diff is not None else None)


def read_model(
    image: Image, path: str, algorithm: str, chunk_size: int
) -> tuple[dict[str, InImage], list[Outcome], int]:
    """The final view of the files under `path`: relative path -> InImage
    (the key "" when a link at the path or above it blocks them all); one
    outcome per layer whose blob does not match its digest or its diff_id,
    that cannot be read, or that holds entries that are refused; and the
    bytes hashed."""
    prefix = model_path(path)
    with contextlib.ExitStack() as stack:
        reading = _Reading(prefix, algorithm, chunk_size, stack)
        for layer in image.layers:
            reading.read(layer)
        files, outcomes = reading.finish()
    return files, outcomes, reading.hashed


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
        elif got.suspect is not None:  # never OK from a layer that fails its checks
            outcomes.append(Outcome(entry.path, Status.ERROR, f"matches, but comes {got.suspect}"))
        else:
            outcomes.append(Outcome(entry.path, Status.OK))
    skip = Excluder(manifest.exclude)
    for rel, got in sorted(view.items()):
        if not skip.covers(rel):
            outcomes.append(Outcome(rel, Status.EXTRA, got.problem or f"in layer {got.layer}, not signed"))
    return Report(manifest.root, manifest.algorithm, tuple(outcomes), allow_extra, bytes_hashed=hashed,
                  seconds=time.perf_counter() - started)  # fmt: skip
