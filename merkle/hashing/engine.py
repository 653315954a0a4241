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

With the extension, whole small local files go to it in batches, and a large
local file's units are hashed from the page cache through a mapping, with no
copy (`MAPPED_BLAKE3_TIERS` says when): one unit mapped per worker at a time,
and a file truncated under the mapping is "changed while hashing", caught in
the extension, never a signal.

Every byte is counted: a short read, a file that grows, or a file whose
identity (device, inode, size, mtime) changes between listing and hashing is
an error for that file, never a smaller chunk.
"""

from __future__ import annotations

import mmap
import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Final, TypeVar

from merkle._native import bulk, native
from merkle.errors import SourceError
from merkle.report import Progress
from merkle.source.local import Root
from merkle.source.readers import Listed, Opener, Reader, directory_cache, local_opener
from merkle.source.walk import WalkedFile
from merkle.tree import rfc6962
from merkle.tree.hasher import DIGEST_SIZE, Hasher, TreeHasher

UNIT_BYTES = 8 << 20
NATIVE_BATCH_FILES = 64
MAPPED_BLAKE3_TIERS = frozenset({"avx512"})
"""Large local files are hashed from the page cache through the extension's
mapping (no copy into a buffer) where that is no slower than reading them:
SHA-256 is OpenSSL either way, so always; BLAKE3 on the extension's tiers
named here.  On the AVX2 tier large files stay with the blake3 package on a
copy: simulated on an AVX-512 machine (MERKLE_NO_AVX512=1) the package, which
cannot be masked, kept AVX-512 and won (4 GiB on one core, 1.4 s read
against 2.4 s mapped); on a real AVX2 machine the estimate is a tie (the
extension's AVX2 kernel is 0.87x the official assembly's in-process, the copy
costs about 0.08 core-seconds per GB), so the safer path stays."""
T = TypeVar("T")
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
    head: bytes | None = field(default=None, compare=False, repr=False)
    """With `head=N` asked of the engine: the file's first min(N, size)
    bytes, as they were read and hashed (None where the run did not keep
    them: a mapped large file, a checkpoint's)."""


def hash_files(
    files: Sequence[Listed],
    hasher: TreeHasher,
    chunk_size: int,
    jobs: int | None = None,
    progress: Progress | None = None,
    follow_symlinks: bool = False,
    opener: Opener | None = None,
    on_done: Callable[[FileDigest], None] | None = None,
    head: int = 0,
) -> list[FileDigest]:
    """Hash every file into chunk leaves and a root, in parallel.

    Per-file problems come back as FileDigest.error; only bugs raise.
    `opener` reads one listed object (default: local files, refusing
    symlinks unless `follow_symlinks`).  `head`: keep each file's first
    bytes as they are hashed (FileDigest.head), up to this many."""
    job = _Job(hasher, chunk_size, opener or local_opener(follow_symlinks), progress or Progress(), on_done, head)
    items = job.plan(files)
    job.progress.total_bytes = sum(f.size for f in files)
    job.progress.total_files = len(files)
    _parallel(items, len(items), job.handle, jobs or default_jobs(), min(chunk_size, MAX_BUFFER), job.progress)
    return job.done()


def hash_stream(
    groups: Iterable[Sequence[Listed]],
    hasher: TreeHasher,
    chunk_size: int,
    jobs: int | None = None,
    progress: Progress | None = None,
    follow_symlinks: bool = False,
    on_done: Callable[[FileDigest], None] | None = None,
) -> list[FileDigest]:
    """`hash_files` over files that are still being listed (a walk's
    directories, as `walk_stream` yields them): workers hash what is listed
    while the listing goes on, which hides the walk behind the hashing.  The
    digests come back sorted by path."""
    job = _Job(hasher, chunk_size, local_opener(follow_symlinks), progress or Progress(), on_done)

    def items() -> Iterator[Item]:
        for group in groups:  # runs in whichever worker needs more work, under the feed's lock
            job.progress.total_bytes += sum(f.size for f in group)
            job.progress.total_files += len(group)
            yield from job.plan(group)

    _parallel(items(), None, job.handle, jobs or default_jobs(), min(chunk_size, MAX_BUFFER), job.progress)
    return sorted(job.done(), key=lambda d: d.path)


_NO_LEAVES: Final = bytearray()
"""self.leaves of a file hashed in one unit: shared, never written."""

Item = tuple[int, int, int] | list[int]
"""A unit of work: (file index, first chunk, chunk count), or a list of
whole small files for the extension."""


class _Job:
    """The files of one hashing run, their partial results, and how units of
    work are cut from them (`plan`) and handled on the workers (`handle`)."""

    def __init__(
        self,
        hasher: TreeHasher,
        chunk_size: int,
        opener: Opener,
        progress: Progress,
        on_done: Callable[[FileDigest], None] | None,
        head: int = 0,
    ) -> None:
        self.head = head
        self.heads: dict[int, bytes] = {}
        self.hasher = hasher
        self.chunk_size = chunk_size
        self.opener = opener
        self.progress = progress
        self.on_done = on_done
        self.group = max(1, UNIT_BYTES // chunk_size)
        # Whole small files go to the extension in batches: open, read and
        # hash with the GIL released for the batch, not per file.
        # Not where the extension's BLAKE3 is portable C (merkle._native.bulk).
        self.local_follow: bool | None = (
            getattr(opener, "local_follow", None) if bulk(hasher.code) is not None else None
        )
        self.mapped = self.local_follow is not None and mapped_is_faster(hasher)
        self.files: list[Listed] = []
        self.counts: list[int] = []
        self.pending: list[int] = []
        self.leaves: list[bytearray] = []
        self.results: list[FileDigest | None] = []
        self.errors: dict[int, SourceError] = {}
        self.lock = threading.Lock()

    def plan(self, files: Sequence[Listed]) -> list[Item]:
        """Take on more files; return their units of work."""
        base = len(self.files)
        units: list[tuple[int, int, int]] = []
        whole: list[int] = []
        cs, group, batched = self.chunk_size, self.group, self.local_follow is not None
        count, pend, keep = self.counts.append, self.pending.append, self.leaves.append
        for k, f in enumerate(files):  # per file: a million of them
            i = base + k
            n = -(-f.size // cs)  # chunk_count
            count(n)
            if n <= group:  # one unit: its leaves come back whole, never gathered in self.leaves
                pend(1)
                keep(_NO_LEAVES)
                if batched:
                    whole.append(i)
                else:
                    units.append((i, 0, n))
            else:
                pend(-(-n // group))
                keep(bytearray(n * DIGEST_SIZE))
                units.extend((i, first, min(group, n - first)) for first in range(0, n, group))
        self.files.extend(files)
        self.results.extend([None] * len(files))
        items: list[Item] = [*units]
        batch: list[int] = []
        batch_bytes = 0
        for i in whole:
            batch.append(i)
            batch_bytes += self.files[i].size
            if len(batch) >= NATIVE_BATCH_FILES or batch_bytes >= UNIT_BYTES:
                items.append(batch)
                batch, batch_bytes = [], 0
        if batch:
            items.append(batch)
        return items

    def done(self) -> list[FileDigest]:
        done = [r for r in self.results if r is not None]
        assert len(done) == len(self.files), "engine lost a file"
        return done

    def finish(self, i: int, data: bytes) -> None:
        src = self.files[i]
        error = self.errors.get(i)
        if error is not None:
            result = FileDigest(src.path, src.size, error=error)
        else:
            root = data if self.counts[i] == 1 else rfc6962.root_of_bytes(self.hasher, data)
            result = FileDigest(src.path, src.size, root, data, head=self.heads.pop(i, None) if self.head else None)
        self.results[i] = result
        self.progress.files += 1
        if self.on_done is not None:
            self.on_done(result)

    def handle_batch(self, batch: list[int]) -> None:
        assert native is not None and self.local_follow is not None  # batches are of local files only
        files: list[WalkedFile] = self.files  # type: ignore[assignment]  # local_follow is set for local files only
        # Each directory of the batch is opened once, down from its root and
        # never through a link; the extension opens each file relative to it.
        opened: list[int] = []
        args = []
        todo = []
        last: tuple[Root | None, str, int | SourceError] = (None, "", -1)
        try:
            for i in batch:
                f = files[i]
                base = f.base
                if base is None:  # named by the user: opened as named
                    args.append((-1, os.fsencode(f.abspath), f.size, f.identity))
                    todo.append(i)
                    continue
                directory, _, name = f.target.rpartition("/")
                if base is not last[0] or directory != last[1]:  # a batch is mostly one directory
                    try:
                        opened.append(base.open_dir(directory))
                        last = (base, directory, opened[-1])
                    except SourceError as e:
                        last = (base, directory, e)
                fd = last[2]
                if isinstance(fd, SourceError):
                    self.errors[i] = SourceError(fd.message, f.path)
                    self.finish(i, b"")
                    continue
                args.append((fd, os.fsencode(name), f.size, f.identity))
                todo.append(i)
            got_all = native.hash_files(self.hasher.code, self.chunk_size, self.local_follow, args, self.head)
        finally:
            for fd in opened:
                os.close(fd)
        if self.head:
            got_all, firsts = [g for g, _ in got_all], [h for _, h in got_all]
            self.heads.update((i, h) for i, h in zip(todo, firsts, strict=True) if h is not None)
        for i, got in zip(todo, got_all, strict=True):
            if isinstance(got, str):
                self.errors[i] = SourceError(got, files[i].path)
                self.finish(i, b"")
            else:
                self.progress.bytes += files[i].size
                self.finish(i, got)

    def handle(self, unit: Item, view: memoryview) -> None:
        if isinstance(unit, list):
            self.handle_batch(unit)
            return
        i, first, count = unit
        if count == self.counts[i]:  # the whole file in one unit
            try:
                data = self.run(i, first, count, view)
            except SourceError as e:
                self.errors[i] = e
                data = b""
            self.finish(i, data)
            return
        if i not in self.errors:
            try:
                part = self.run(i, first, count, view)
                self.leaves[i][first * DIGEST_SIZE : first * DIGEST_SIZE + len(part)] = part
            except SourceError as e:
                self.errors.setdefault(i, e)
        with self.lock:
            self.pending[i] -= 1
            last = self.pending[i] == 0
        if last:
            data = bytes(self.leaves[i])
            self.leaves[i] = bytearray()  # one copy, not two
            self.finish(i, data)

    def run(self, i: int, first: int, count: int, view: memoryview) -> bytes:
        """Leaf hashes of chunks [first, first + count) of file i: a local
        file's through the extension's mapping, else (or where it cannot
        map the file) read through the opener into `view`."""
        src = self.files[i]
        if self.mapped:
            mapped = self.run_mapped(src, first, count)
            if mapped is not None:
                return mapped
        kept: list[bytes] | None = [] if self.head and first == 0 else None
        got = hash_run(
            self.opener(src), src, first, count, self.counts[i], self.hasher, self.chunk_size, view, self.progress, kept
        )
        if kept:
            self.heads[i] = kept[0][: self.head]
        elif kept is not None and src.size == 0:
            self.heads[i] = b""
        return got

    def run_mapped(self, src: Listed, first: int, count: int) -> bytes | None:
        """hash_run's twin in the extension: the file opened relative to its
        directory (opened down from the root, never through a link) and the
        range hashed from the page cache, no copy; None if it cannot be mapped."""
        assert native is not None and self.local_follow is not None and isinstance(src, WalkedFile)
        if src.base is None:  # named by the user: opened as named
            dirfd, name = -1, src.abspath
        else:
            directory, _, name = src.target.rpartition("/")
            try:
                dirfd = src.base.open_dir(directory)
            except SourceError as e:
                raise SourceError(e.message, src.path) from e
        try:
            got = native.hash_range(
                self.hasher.code,
                self.chunk_size,
                self.local_follow,
                dirfd,
                os.fsencode(name),
                src.size,
                src.identity,
                first,
                count,
            )
        finally:
            if dirfd >= 0:
                os.close(dirfd)
        if isinstance(got, str):
            raise SourceError(got, src.path)
        if got is not None:
            self.progress.bytes += min(count * self.chunk_size, src.size - first * self.chunk_size)
        return got


def mapped_is_faster(hasher: TreeHasher) -> bool:
    """See MAPPED_BLAKE3_TIERS."""
    return native is not None and (hasher.name != "blake3" or native.BLAKE3_TIER in MAPPED_BLAKE3_TIERS)


def _parallel(
    items: Iterable[T],
    count: int | None,
    handle: Callable[[T, memoryview], None],
    jobs: int,
    buffer_size: int,
    progress: Progress,
) -> None:
    """Run `handle(item, buffer)` over `items` (`count` of them, None when
    not known yet) on long-lived worker threads, each with its own
    page-aligned buffer.  A bug in a worker (or in `items`) stops the
    others and is raised here; Ctrl-C stops them too."""
    feed = iter(items)
    lock = threading.Lock()
    stop = threading.Event()
    crashed: list[BaseException] = []

    def worker() -> None:
        buffer = mmap.mmap(-1, buffer_size)
        view = memoryview(buffer)
        try:
            with directory_cache():
                while not stop.is_set():
                    with lock:
                        item = next(feed, None)
                    if item is None:
                        return
                    handle(item, view)
        except BaseException as e:  # a bug: hand it to the main thread
            crashed.append(e)
            stop.set()
        finally:
            view.release()
            try:
                buffer.close()
            except BufferError:  # an error kept for its report may still hold a slice; GC frees it
                pass

    _run(worker, jobs if count is None else min(jobs, max(1, count)), stop, progress)
    if crashed:
        raise crashed[0]


SWITCH_INTERVAL = 0.0005


def _run(worker: Callable[[], None], count: int, stop: threading.Event, progress: Progress) -> None:
    threads = [threading.Thread(target=worker, name=f"merkle-hash-{i}", daemon=True) for i in range(count)]
    # Workers hold the GIL only between syscalls and hash calls; a short
    # switch interval hands it over sooner when one waits (about 5% on many
    # small files).  Restored afterwards: it is process-wide.
    interval = sys.getswitchinterval()
    if count > 1:
        sys.setswitchinterval(min(interval, SWITCH_INTERVAL))
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
    finally:
        sys.setswitchinterval(interval)


def hash_run(
    reader: Reader,
    src: Listed,
    first: int,
    count: int,
    chunks: int,
    hasher: TreeHasher,
    chunk_size: int,
    view: memoryview,
    progress: Progress,
    kept: list[bytes] | None = None,
) -> bytes:
    """Leaf hashes of chunks [first, first + count) of one file; `kept`, when
    given, gets the first chunk's bytes as hashed, up to the buffer's size."""
    with reader:
        offset = first * chunk_size
        out = []
        for _ in range(count):
            h = hasher.leaf_hasher()
            length = min(chunk_size, src.size - offset)
            feed_hasher(reader, src, offset, length, h, view)
            if kept is not None and not kept and length <= len(view):  # the chunk was read into `view` whole
                kept.append(bytes(view[:length]))
            offset += length
            out.append(h.digest())
        if first + count == chunks:
            reader.check_end()
        progress.bytes += offset - first * chunk_size
        return b"".join(out)


def digest_files(
    files: Sequence[Listed],
    new: Callable[[Listed], Hasher],
    jobs: int | None = None,
    progress: Progress | None = None,
    follow_symlinks: bool = False,
    opener: Opener | None = None,
) -> list[FileDigest]:
    """Plain whole-file digests (no tree), one file per unit, in parallel:
    what OpenSSF model-signing's `files` serialization records, or a Hub
    identity.  `new(file)` makes the hasher for one file."""
    progress = progress or Progress()
    opener = opener or local_opener(follow_symlinks)
    progress.total_bytes = sum(f.size for f in files)
    progress.total_files = len(files)
    results: list[FileDigest | None] = [None] * len(files)

    def handle(i: int, view: memoryview) -> None:
        src = files[i]
        try:
            with opener(src) as reader:
                h = new(src)
                feed_hasher(reader, src, 0, src.size, h, view)
                reader.check_end()
                results[i] = FileDigest(src.path, src.size, h.digest())
                progress.bytes += src.size
        except SourceError as e:
            results[i] = FileDigest(src.path, src.size, error=e)
        progress.files += 1

    _parallel(range(len(files)), len(files), handle, jobs or default_jobs(), MAX_BUFFER, progress)
    return [r for r in results if r is not None]


def feed_hasher(reader: Reader, src: Listed, offset: int, length: int, h: Hasher, view: memoryview) -> None:
    """Hash bytes [offset, offset + length) through the aligned buffer; a
    short read is an error, never a shorter chunk."""
    buffer_size = len(view)
    while length:
        got = reader.read_into(offset, view[: min(buffer_size, length)])
        if got == 0:
            raise SourceError(f"short read: end of data at byte {offset}, expected {src.size} bytes", src.path)
        h.update(view[:got])
        offset += got
        length -= got
