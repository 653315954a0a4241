"""Holding a signed tree's files for a loader: each file opened once, below
the root and never through a link, hashed from that open file (or from a
sealed copy of it), and kept open so that what is handed out later is what
was hashed, not whatever the name points to by then.

Two modes (docs/deploy.md, "In-process: merkle.guard"):

- "sealed": the file's bytes are copied (in the kernel, `sendfile`) into an
  anonymous memory file (`memfd_create`), which is then sealed against
  writing, shrinking and growing (F_SEAL_WRITE|SHRINK|GROW|SEAL), and only
  then hashed.  What verified can never change: not through the model
  folder, not through the memory file itself.  Costs a copy of the file in
  memory (shared memory, not reclaimable without swap) while held.
- "pinned": the open file itself is hashed and held.  A rename, a link or
  another file put at the name after the open never reaches the loader; a
  write into the same file (the same inode) does: it is detected by the
  file's identity (size, mtime, ctime) when the file is handed out and
  when the guard closes, not prevented.  No copy.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

from merkle.errors import SourceError, UnsupportedError
from merkle.format.manifest import FileEntry, Manifest
from merkle.hashing.engine import hash_files
from merkle.report import Outcome, Status
from merkle.source.local import NotFound, Root
from merkle.source.readers import LocalFile, Reader
from merkle.source.walk import identity

Mode = Literal["sealed", "pinned"]
MODES: Final = ("sealed", "pinned")
SEALS: Final = fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL
_COPY_STEP: Final = 1 << 30


@dataclass(frozen=True)
class Held:
    """One file, hashed and kept open: `fd` is the sealed memory file or the
    pinned file; `identity` is the descriptor's (device, inode, size, mtime,
    ctime) once hashing ended."""

    path: str
    fd: int
    size: int
    identity: tuple[int, int, int, int, int]
    sealed: bool

    @property
    def proc(self) -> str:
        """A name for this open file: opening it reaches the held file (or
        memory file), never a lookup in the model folder."""
        return f"/proc/self/fd/{self.fd}"

    def changed(self) -> bool:
        """Whether the held file is not as it was hashed (never for a sealed one)."""
        return not self.sealed and identity(os.fstat(self.fd)) != self.identity


@dataclass(frozen=True)
class _Listed:
    """What the engine hashes: one held descriptor, by its signed path."""

    path: str
    abspath: str
    size: int
    fd: int


def _read_held(src: object) -> Reader:
    assert isinstance(src, _Listed)
    fd = os.dup(src.fd)  # preadv only: the shared offset is never used
    return LocalFile(src.abspath, (fd, os.fstat(fd)))


def hold(
    root_path: str,
    entries: Sequence[FileEntry],
    manifest: Manifest,
    mode: Mode,
    jobs: int | None,
    shown_root: str | None = None,
) -> tuple[dict[str, Held], list[Outcome], int]:
    """Open, (copy and seal,) hash and compare every entry; return what
    verified (held open: the caller closes them), every outcome, and the
    bytes hashed.  Nothing that failed stays open.  `shown_root`: the root
    as messages name it (default `root_path`)."""
    if mode not in MODES:
        raise UnsupportedError(f"unknown guard mode {mode!r} (known: {', '.join(MODES)})")
    root_fd, root = Root.open(root_path)
    root_path = shown_root or root_path
    os.close(root_fd)
    opened: dict[str, tuple[int, tuple[int, int, int, int, int]]] = {}
    outcomes: list[Outcome] = []
    try:
        for entry in entries:
            shown = _shown(root_path, entry.path)
            try:
                fd, st = root.open_file(entry.path)  # O_NOFOLLOW all the way down from the pinned root
            except NotFound:
                outcomes.append(Outcome(entry.path, Status.MISSING))
                continue
            except SourceError as e:
                outcomes.append(Outcome(entry.path, Status.ERROR, e.message))
                continue
            if st.st_size != entry.size:
                os.close(fd)
                outcomes.append(Outcome(entry.path, Status.MISMATCH, f"size {st.st_size}, expected {entry.size}"))
                continue
            if mode == "sealed":
                try:
                    fd = _sealed_copy(fd, entry, shown)
                except SourceError as e:
                    outcomes.append(Outcome(entry.path, Status.ERROR, e.message))
                    continue
                st = os.fstat(fd)
            opened[entry.path] = fd, identity(st)
        listed = [
            _Listed(e.path, _shown(root_path, e.path), e.size, opened[e.path][0]) for e in entries if e.path in opened
        ]
        digests = hash_files(listed, manifest.hasher, manifest.chunk_size, jobs, opener=_read_held)
        held: dict[str, Held] = {}
        hashed = 0
        by_path = {e.path: e for e in entries}
        for digest in digests:
            entry = by_path[digest.path]
            fd, before = opened[digest.path]
            if digest.error is not None:
                outcomes.append(Outcome(entry.path, Status.ERROR, digest.error.message))
                continue
            hashed += entry.size
            after = identity(os.fstat(fd))
            if after != before:  # pinned: written while hashed; the digest is of no one version
                outcomes.append(Outcome(entry.path, Status.ERROR, "changed while hashing"))
            elif digest.root != entry.root:
                outcomes.append(Outcome(entry.path, Status.MISMATCH, "content differs"))
            else:
                outcomes.append(Outcome(entry.path, Status.OK))
                held[entry.path] = Held(entry.path, fd, entry.size, after, mode == "sealed")
        for path, (fd, _) in opened.items():
            if path not in held:
                os.close(fd)
        opened = {}
        return held, outcomes, hashed
    finally:
        for fd, _ in opened.values():
            os.close(fd)


def _shown(root_path: str, path: str) -> str:
    return os.path.join(root_path, *path.split("/"))


def _sealed_copy(fd: int, entry: FileEntry, shown: str) -> int:
    """A sealed memory file holding the `entry.size` bytes of `fd` (closed
    here); SourceError if the file ends early or holds more."""
    try:
        mem = os.memfd_create(entry.path.replace("/", "|"), os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    except OSError as e:
        os.close(fd)
        raise SourceError(f"cannot make a sealed copy: {e.strerror or e}", shown) from e
    try:
        done = 0
        while done < entry.size:
            got = os.sendfile(mem, fd, done, min(_COPY_STEP, entry.size - done))
            if got == 0:
                raise SourceError(f"short read: end of data at byte {done}, expected {entry.size} bytes", shown)
            done += got
        if os.pread(fd, 1, entry.size):
            raise SourceError(f"has bytes past its listed size of {entry.size}", shown)
        fcntl.fcntl(mem, fcntl.F_ADD_SEALS, SEALS)
    except OSError as e:
        os.close(mem)
        raise SourceError(f"cannot make a sealed copy: {e.strerror or e}", shown) from e
    except BaseException:
        os.close(mem)
        raise
    finally:
        os.close(fd)
    return mem
