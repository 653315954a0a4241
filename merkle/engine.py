"""The one place with threads: read files in chunks and hash their leaves.

Work is cut into units: a small file is one unit, a large file is split into
runs of chunks (about UNIT_BYTES each).  A fixed set of long-lived worker
threads pulls units from a shared iterator (one thread-pool future per file
costs more than hashing a small file).  Each worker owns one reusable,
page-aligned read buffer (an anonymous mmap: a plain bytearray starts 16 bytes
into a page and reads into it are several times slower) and reads with
`os.preadv`, so memory stays at workers x buffer whatever the file sizes, and a
file truncated under us is a short read, not a SIGBUS.  Hashing releases the
GIL, so the threads keep every core busy.

Every byte is counted: a short read, a file that grows, or a file whose
identity (device, inode, size, mtime) changes between listing and hashing is
an error for that file, never a smaller chunk.
"""

from __future__ import annotations

import mmap
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from . import tree
from .errors import SourceError
from .hashing import DIGEST_SIZE, TreeHasher
from .manifest import chunk_count
from .sources.local import open_regular
from .walk import WalkedFile, identity

UNIT_BYTES = 8 << 20
MAX_BUFFER = 4 << 20


def default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class FileDigest:
    """The result of hashing one file: its root and leaf hashes, or an error."""

    path: str
    size: int
    root: bytes = b""
    leaves: bytes = b""
    error: SourceError | None = None


class Progress:
    """Counters the workers bump and a display may read (approximate: a
    progress bar needs no lock)."""

    def __init__(self, total_bytes: int = 0, total_files: int = 0) -> None:
        self.total_bytes = total_bytes
        self.total_files = total_files
        self.bytes = 0
        self.files = 0

    def tick(self) -> None:
        """Called from the main thread about ten times a second."""


@dataclass
class _File:
    source: WalkedFile
    chunks: int
    leaves: bytearray
    pending: int
    error: SourceError | None = None


def hash_files(
    files: Sequence[WalkedFile],
    hasher: TreeHasher,
    chunk_size: int,
    jobs: int | None = None,
    progress: Progress | None = None,
    follow_symlinks: bool = True,
) -> list[FileDigest]:
    """Hash every file into chunk leaves and a root, in parallel.

    Per-file problems come back as FileDigest.error; only bugs raise."""
    jobs = jobs or default_jobs()
    progress = progress or Progress()
    group = max(1, UNIT_BYTES // chunk_size)
    state = []
    units: list[tuple[_File, int, int]] = []
    for f in files:
        n = chunk_count(f.size, chunk_size)
        entry = _File(f, n, bytearray(n * DIGEST_SIZE), 0)
        state.append(entry)
        if n <= group:
            units.append((entry, 0, n))
        else:
            units.extend((entry, first, min(group, n - first)) for first in range(0, n, group))
    for entry, _, _ in units:
        entry.pending += 1
    progress.total_bytes = sum(f.size for f in files)
    progress.total_files = len(files)

    feed = iter(units)
    lock = threading.Lock()
    stop = threading.Event()
    crashed: list[BaseException] = []
    buffer_size = min(chunk_size, MAX_BUFFER)

    def next_unit() -> tuple[_File, int, int] | None:
        with lock:
            return next(feed, None)

    def worker() -> None:
        buffer = mmap.mmap(-1, buffer_size)
        view = memoryview(buffer)
        try:
            while not stop.is_set():
                unit = next_unit()
                if unit is None:
                    return
                entry, first, count = unit
                if entry.error is None:
                    try:
                        _hash_unit(entry, first, count, hasher, chunk_size, view, progress, follow_symlinks)
                    except SourceError as e:
                        entry.error = e
                with lock:
                    entry.pending -= 1
                    if entry.pending == 0:
                        progress.files += 1
        except BaseException as e:  # a bug: hand it to the main thread
            crashed.append(e)
            stop.set()
        finally:
            view.release()
            buffer.close()

    _run(worker, min(jobs, max(1, len(units))), stop, progress)
    if crashed:
        raise crashed[0]
    return [_finish(entry, hasher) for entry in state]


def _run(worker: Callable[[], None], count: int, stop: threading.Event, progress: Progress) -> None:
    threads = [threading.Thread(target=worker, name=f"merkle-hash-{i}", daemon=True) for i in range(count)]
    for t in threads:
        t.start()
    try:
        for t in threads:
            while t.is_alive():
                t.join(0.1)
                progress.tick()
    except BaseException:
        stop.set()
        for t in threads:
            t.join()
        raise


def _hash_unit(
    entry: _File,
    first: int,
    count: int,
    hasher: TreeHasher,
    chunk_size: int,
    view: memoryview,
    progress: Progress,
    follow_symlinks: bool,
) -> None:
    src = entry.source
    fd, st = open_regular(src.abspath, follow_symlinks)
    try:
        if identity(st) != src.identity:
            raise SourceError("changed between listing and hashing", src.path)
        size = src.size
        offset = first * chunk_size
        buffer_size = len(view)
        leaves = entry.leaves
        new_leaf = hasher.leaf_hasher
        for index in range(first, first + count):
            h = new_leaf()
            remaining = min(chunk_size, size - offset)
            while remaining:
                got = os.preadv(fd, [view[: min(buffer_size, remaining)]], offset)
                if got == 0:
                    raise SourceError(f"short read: end of file at byte {offset}, expected {size} bytes", src.path)
                h.update(view[:got])
                offset += got
                remaining -= got
            leaves[index * DIGEST_SIZE : (index + 1) * DIGEST_SIZE] = h.digest()
        progress.bytes += offset - first * chunk_size
        # A size or mtime change shows here; growth after our last read
        # changes st_size, so no extra read past the end is needed.
        if identity(os.fstat(fd)) != src.identity:
            raise SourceError("changed while hashing", src.path)
    except OSError as e:
        raise SourceError(f"read error: {e.strerror or e}", src.path) from e
    finally:
        os.close(fd)


def _finish(entry: _File, hasher: TreeHasher) -> FileDigest:
    src = entry.source
    if entry.error is not None:
        return FileDigest(src.path, src.size, error=entry.error)
    leaves = bytes(entry.leaves)
    if entry.chunks == 0:
        root = hasher.empty()
    elif entry.chunks == 1:
        root = leaves
    else:
        root = tree.root(hasher, tree.split_leaves(leaves))
    return FileDigest(src.path, src.size, root, leaves)

