"""`merkle sync SOURCE DEST BUNDLE`: make DEST hold the signed version,
fetching from SOURCE only the chunks DEST lacks (docs/sync.md, SY1-SY9).

The caller has made the trust decision (merkle.verifying.signed.open_signed):
`manifest` is signed and its leaf layers authenticated against it.  Then:

1. DEST is walked as verify walks it (plain, the manifest's exclusions), and
   every listed file of the manifest, with the partial file an earlier sync
   left for it, is hashed chunk by chunk: which chunks DEST already holds.
2. Each file that is not already right gets a partial file beside it
   (`.merkle-sync-ID`, created here, never one someone else made), which
   receives the chunks DEST holds (copied by the kernel) and the chunks it
   lacks, fetched from SOURCE in ranged reads, in parallel, each chunk
   checked against its signed leaf hash before it is written.
3. The partial is hashed whole; only if its root is the signed root is it
   renamed over the file.  An interrupted sync leaves partials whose chunks
   the next run checks and keeps.

Nothing SOURCE or DEST holds decides anything: SOURCE's bytes are checked
chunk by chunk, DEST's and the partials' are hashed, and only the signed
manifest's paths are read or written, below DEST, never through a link.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from merkle.errors import IntegrityError, MerkleError, SourceError
from merkle.format.manifest import FileEntry, Manifest
from merkle.hashing.engine import FileDigest, hash_files
from merkle.report import Outcome, Report, Status
from merkle.source.layouts import LayoutOptions
from merkle.source.listing import WalkOptions, list_source
from merkle.source.local import Root, component_reason, kind_of
from merkle.source.walk import WalkedFile, blocked_by, identity
from merkle.syncing.sources import ChunkSource
from merkle.tree import rfc6962
from merkle.tree.hasher import DIGEST_SIZE

PARTIAL_PREFIX = ".merkle-sync-"
MAX_RANGE = 8 << 20
"""Largest ranged read: adjacent missing chunks are fetched together up to
this (or one chunk, when chunks are larger)."""
MAX_IN_FLIGHT = 256 << 20
"""Bytes fetched and not yet written, at most: the workers are as many as
fit, each holding one range."""
DEFAULT_JOBS = 8
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


@dataclass
class SyncStats:
    """What a sync did."""

    in_place: int = 0
    """Files DEST already held, hashed and right."""
    written: int = 0
    """Files written (renamed into place after their check)."""
    fetched_bytes: int = 0
    fetched_chunks: int = 0
    requests: int = 0
    copied_bytes: int = 0
    """Bytes of written files taken from DEST's old copy."""
    resumed_bytes: int = 0
    """Bytes of written files an earlier, interrupted sync had fetched."""
    hashed_bytes: int = 0
    deleted: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "in_place": self.in_place,
            "written": self.written,
            "fetched_bytes": self.fetched_bytes,
            "fetched_chunks": self.fetched_chunks,
            "requests": self.requests,
            "copied_bytes": self.copied_bytes,
            "resumed_bytes": self.resumed_bytes,
            "hashed_bytes": self.hashed_bytes,
            "deleted": list(self.deleted),
        }


@dataclass(frozen=True)
class SyncResult:
    report: Report
    """DEST's verdict at the end: OK for every file in place and checked."""
    stats: SyncStats


def partial_name(path: str) -> str:
    """The partial file of manifest path `path`, in the same directory: a
    fixed name per path, so a later sync finds an earlier one's work."""
    return PARTIAL_PREFIX + hashlib.sha256(path.encode()).hexdigest()[:32]


@dataclass
class _Plan:
    """One file to write: where its chunks come from."""

    entry: FileEntry
    leaves: list[bytes] | None
    """The signed leaf hashes; None for a multi-chunk file without a sidecar
    (fetched whole, checked whole)."""
    dir_fd: int = -1
    fd: int = -1
    """The partial, open for writing."""
    failed: Outcome | None = None
    pending: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def sync(
    source: ChunkSource,
    dest: str,
    manifest: Manifest,
    *,
    jobs: int | None = None,
    allow_extra: bool = False,
    delete: bool = False,
) -> SyncResult:
    """Bring DEST (a local folder, made if absent) to `manifest`, a signed
    manifest the caller trusts, fetching from `source` only what DEST lacks.
    `allow_extra`: files DEST holds that the manifest does not list are not
    a failure; `delete`: they are removed.  Per-file problems are outcomes
    of the report; only a DEST that cannot be opened at all raises."""
    started = time.perf_counter()
    stats = SyncStats()
    if not os.path.lexists(dest):
        try:
            os.makedirs(dest)
        except OSError as e:
            raise SourceError(f"cannot create: {e.strerror or e}", dest) from e
    listing = list_source(dest, manifest.exclude, WalkOptions(), LayoutOptions("plain", bookkeeping=False))
    root_fd, root = Root.open(dest)
    try:
        return _sync(source, dest, manifest, listing, root_fd, root, jobs, allow_extra, delete, stats, started)
    finally:
        os.close(root_fd)


def _sync(
    source: ChunkSource,
    dest: str,
    manifest: Manifest,
    listing: Any,
    root_fd: int,
    root: Root,
    jobs: int | None,
    allow_extra: bool,
    delete: bool,
    stats: SyncStats,
    started: float,
) -> SyncResult:
    outcomes: list[Outcome] = []
    present: dict[str, WalkedFile] = {f.path: f for f in listing.files if isinstance(f, WalkedFile)}
    problems = {p.path: p for p in listing.problems}
    partials: dict[str, WalkedFile] = {}
    wanted: set[str] = set()
    for entry in manifest.files:
        own = _partial_path(entry.path)
        wanted.add(own)
        found = present.get(own)
        if found is not None:
            partials[entry.path] = found
    # What DEST holds of each listed file, and of its partial, hashed chunk by chunk.
    to_hash = [present[e.path] for e in manifest.files if e.path in present] + list(partials.values())
    digests = {(d.path): d for d in hash_files(to_hash, manifest.hasher, manifest.chunk_size, jobs) if d.error is None}
    stats.hashed_bytes += sum(d.size for d in digests.values())
    plans: list[_Plan] = []
    reported: set[str] = set()
    for entry in manifest.files:
        problem = problems.get(entry.path) or blocked_by(entry.path, problems)
        if problem is not None:
            reported.add(problem.path)
            outcomes.append(Outcome(entry.path, Status.ERROR, f"{problem.reason} (sync replaces only regular files)"))
            continue
        have = digests.get(entry.path)
        if have is not None and have.size == entry.size and have.root == entry.root:
            stats.in_place += 1
            outcomes.append(Outcome(entry.path, Status.OK))
            if entry.path in partials or _partial_path(entry.path) in problems:
                try:
                    _unlink(root, _partial_path(entry.path))
                except SourceError as e:
                    outcomes.append(Outcome(_partial_path(entry.path), Status.ERROR, f"cannot remove: {e.message}"))
            continue
        plans.append(_Plan(entry, _signed_leaves(manifest, entry)))
    tasks = []
    for plan in plans:
        try:
            tasks += _prepare(plan, root, present, partials, digests, manifest.chunk_size, stats)
        except MerkleError as e:
            plan.failed = Outcome(plan.entry.path, Status.ERROR, e.message)
    _fetch_all(source, [t for t in tasks if t[0].failed is None], manifest, jobs, stats)
    outcomes += _finish(plans, root, dest, manifest, jobs, stats)
    extras = sorted(set(present) - {e.path for e in manifest.files} - wanted)
    unreported = [p for p in listing.problems if p.path not in reported and p.path not in wanted]
    outcomes += _extras(extras, unreported, root, delete, stats)
    outcomes.sort(key=lambda o: o.path)
    seconds = time.perf_counter() - started
    report = Report(manifest.root, manifest.algorithm, tuple(outcomes), allow_extra, stats.hashed_bytes, seconds)
    return SyncResult(report, stats)


def _partial_path(path: str) -> str:
    directory, _, _ = path.rpartition("/")
    return f"{directory}/{partial_name(path)}" if directory else partial_name(path)


def _signed_leaves(manifest: Manifest, entry: FileEntry) -> list[bytes] | None:
    n = rfc6962.chunk_count(entry.size, manifest.chunk_size)
    if n <= 1:
        return [entry.root] * n
    if manifest.layers is None:
        return None
    return manifest.layers.leaf_hashes(entry, manifest.chunk_size)


def _chunks(digest: FileDigest | None) -> list[bytes]:
    if digest is None:
        return []
    return (
        rfc6962.split_leaves(digest.leaves)
        if len(digest.leaves) > DIGEST_SIZE
        else [digest.root][: 1 if digest.size else 0]
    )


def _prepare(
    plan: _Plan,
    root: Root,
    present: dict[str, WalkedFile],
    partials: dict[str, WalkedFile],
    digests: dict[str, FileDigest],
    chunk_size: int,
    stats: SyncStats,
) -> list[tuple[_Plan, int, int]]:
    """Open the partial of `plan` (its directories made below DEST), put in
    it what DEST and an earlier partial hold, and return the ranges of
    chunks [first, last) still to fetch."""
    entry = plan.entry
    directory, _, _ = entry.path.rpartition("/")
    plan.dir_fd = _make_dirs(root, directory)
    name = partial_name(entry.path)
    n = rfc6962.chunk_count(entry.size, chunk_size)
    good = [False] * n
    earlier = partials.get(entry.path)
    old = _chunks(digests.get(_partial_path(entry.path))) if earlier is not None and plan.leaves is not None else []
    plan.fd = _open_partial(plan.dir_fd, name, earlier, bool(old), entry.path)
    if plan.leaves is not None:
        for i, leaf in enumerate(old[:n]):
            if leaf == plan.leaves[i]:
                good[i] = True
                stats.resumed_bytes += min(chunk_size, entry.size - i * chunk_size)
    os.ftruncate(plan.fd, entry.size)
    current = present.get(entry.path)
    if plan.leaves is not None and current is not None:
        held = _chunks(digests.get(entry.path))
        runs = [i for i in range(min(n, len(held))) if not good[i] and held[i] == plan.leaves[i]]
        if runs:
            stats.copied_bytes += _copy_chunks(plan, current, runs, chunk_size)
            for i in runs:
                good[i] = True
    ranges = []
    per_range = max(1, MAX_RANGE // chunk_size)
    i = 0
    while i < n:
        if good[i]:
            i += 1
            continue
        first = i
        while i < n and not good[i] and i - first < per_range:
            i += 1
        ranges.append((plan, first, i))
    plan.pending = len(ranges)
    return ranges


def _make_dirs(root: Root, directory: str) -> int:
    """An fd of `directory` below the root, made where absent, one component
    at a time and never through a link."""
    fd = root.reopen()
    shown = root.path
    try:
        for part in directory.split("/") if directory else []:
            shown = os.path.join(shown, part)
            try:
                below = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                try:
                    os.mkdir(part, 0o777, dir_fd=fd)
                    below = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError as e:
                    raise SourceError(f"cannot make the directory: {component_reason(e, fd, part)}", shown) from e
            except OSError as e:
                raise SourceError(component_reason(e, fd, part), shown) from e
            os.close(fd)
            fd = below
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_partial(dir_fd: int, name: str, earlier: WalkedFile | None, reuse: bool, shown: str) -> int:
    """The partial file, open for reading and writing.  An earlier one is
    kept only when it is still the file that was hashed, a regular file with
    no other name, and ours; anything else in its place is removed and a new
    file made (O_EXCL: never one someone else just put there)."""
    flags = os.O_RDWR | _NOFOLLOW | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
    if earlier is not None and reuse:
        try:
            fd = os.open(name, flags, dir_fd=dir_fd)
        except OSError:
            fd = -1
        if fd >= 0:
            st = os.fstat(fd)
            same = identity(st) == earlier.identity
            if stat.S_ISREG(st.st_mode) and st.st_nlink == 1 and st.st_uid == os.geteuid() and same:
                return fd
            os.close(fd)
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
    except OSError as e:
        raise SourceError(f"cannot remove an earlier partial file: {e.strerror or e}", shown) from e
    try:
        return os.open(name, flags | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=dir_fd)
    except OSError as e:
        raise SourceError(f"cannot write: {e.strerror or e}", shown) from e


def _copy_chunks(plan: _Plan, current: WalkedFile, chunks: list[int], chunk_size: int) -> int:
    """Copy chunks DEST's file holds into the partial (in the kernel: a
    reflink where the file system has them).  The file must be the one that
    was hashed; the partial's final check covers a change after this."""
    fd, st = current.open()
    try:
        if identity(st) != current.identity:
            raise SourceError("changed while it was synced", current.path)
        copied = 0
        for first, last in _runs(chunks):
            start, end = first * chunk_size, min(last * chunk_size, plan.entry.size)
            copied += _copy_range(fd, plan.fd, start, end)
        return copied
    finally:
        os.close(fd)


def _runs(indices: list[int]) -> Iterator[tuple[int, int]]:
    first = prev = -2
    for i in indices:
        if i != prev + 1:
            if first >= 0:
                yield first, prev + 1
            first = i
        prev = i
    if first >= 0:
        yield first, prev + 1


def _copy_range(src: int, dst: int, start: int, end: int) -> int:
    offset = start
    while offset < end:
        try:
            n = os.copy_file_range(src, dst, end - offset, offset, offset)
        except (AttributeError, OSError):
            data = os.pread(src, min(end - offset, 1 << 20), offset)
            n = os.pwrite(dst, data, offset) if data else 0
        if n <= 0:
            raise SourceError("ended while it was copied", str(src))
        offset += n
    return end - start


def _fetch_all(
    source: ChunkSource,
    tasks: Sequence[tuple[_Plan, int, int]],
    manifest: Manifest,
    jobs: int | None,
    stats: SyncStats,
) -> None:
    """Fetch every range, in parallel, checking each chunk before it is
    written; the first failure of a file stops its other ranges."""
    cs = manifest.chunk_size
    hasher = manifest.hasher
    lock = threading.Lock()

    def run(task: tuple[_Plan, int, int]) -> None:
        plan, first, last = task
        if plan.failed is not None:
            return
        entry = plan.entry
        start, end = first * cs, min(last * cs, entry.size)
        try:
            data = source.read(entry.path, entry.size, start, end)
        except MerkleError as e:
            plan.failed = plan.failed or Outcome(entry.path, Status.ERROR, f"{source.name}: {e.message}")
            return
        with lock:
            stats.fetched_bytes += len(data)
            stats.requests += 1
            stats.fetched_chunks += last - first
        view = memoryview(data)
        for i in range(first, last):  # each chunk checked, each good one kept (a later sync resumes from them)
            a = (i - first) * cs
            piece = view[a : a + cs]
            if plan.leaves is not None and hasher.leaf(piece) != plan.leaves[i]:
                at = i * cs
                plan.failed = plan.failed or Outcome(
                    entry.path,
                    Status.MISMATCH,
                    f"{source.name} holds other bytes than the bundle at {at}-{min(at + cs, entry.size) - 1}",
                )
                continue
            offset = i * cs
            while piece:
                n = os.pwrite(plan.fd, piece, offset)
                piece, offset = piece[n:], offset + n

    workers = max(1, min(jobs or DEFAULT_JOBS, MAX_IN_FLIGHT // max(MAX_RANGE, cs)))
    if not tasks:
        return
    with ThreadPoolExecutor(workers) as pool:
        for _ in pool.map(run, tasks):
            pass


def _finish(
    plans: list[_Plan], root: Root, dest: str, manifest: Manifest, jobs: int | None, stats: SyncStats
) -> list[Outcome]:
    """Check each written partial whole and rename it over its file."""
    outcomes: list[Outcome] = []
    ready: list[tuple[_Plan, WalkedFile]] = []
    for plan in plans:
        if plan.fd < 0 or plan.failed is not None:
            outcomes.append(plan.failed or Outcome(plan.entry.path, Status.ERROR, "not written"))
            continue
        os.fsync(plan.fd)
        st = os.fstat(plan.fd)
        own = _partial_path(plan.entry.path)
        ready.append((plan, WalkedFile(own, os.path.join(dest, *own.split("/")), st.st_size, identity(st), root, own)))
    digests = hash_files([w for _, w in ready], manifest.hasher, manifest.chunk_size, jobs) if ready else []
    for (plan, written), digest in zip(ready, digests, strict=True):
        entry = plan.entry
        stats.hashed_bytes += digest.size
        try:
            if digest.error is not None:
                raise SourceError(digest.error.message, entry.path)
            if digest.root != entry.root:
                if plan.leaves is None:
                    _unlink_at(plan.dir_fd, partial_name(entry.path))  # unchecked bytes: nothing to resume from
                raise IntegrityError("the bytes fetched do not match the bundle (checked whole)", entry.path)
            _rename_into_place(plan, written)
            stats.written += 1
            outcomes.append(Outcome(entry.path, Status.OK))
        except MerkleError as e:
            status = Status.MISMATCH if isinstance(e, IntegrityError) else Status.ERROR
            outcomes.append(Outcome(entry.path, status, e.message))
    for plan in plans:
        for fd in (plan.fd, plan.dir_fd):
            if fd >= 0:
                os.close(fd)
    return outcomes


def _rename_into_place(plan: _Plan, written: WalkedFile) -> None:
    entry = plan.entry
    name = entry.path.rpartition("/")[2]
    try:
        there = os.stat(name, dir_fd=plan.dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        there = None
    if there is not None and not stat.S_ISREG(there.st_mode):
        raise SourceError(f"a {kind_of(there.st_mode)} is in the way (sync replaces only regular files)", entry.path)
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(plan.fd, 0o666 & ~umask)
    os.rename(partial_name(entry.path), name, src_dir_fd=plan.dir_fd, dst_dir_fd=plan.dir_fd)
    now = os.stat(name, dir_fd=plan.dir_fd, follow_symlinks=False)
    if (now.st_dev, now.st_ino) != written.identity[:2]:
        raise SourceError("replaced by another file while it was synced", entry.path)
    os.fsync(plan.dir_fd)


def _extras(extras: list[str], problems: list[Any], root: Root, delete: bool, stats: SyncStats) -> list[Outcome]:
    """Files DEST holds that the manifest does not list: EXTRA, or removed
    with `delete` (files and links, never what a link points to); what could not be listed or named
    is shown as verify shows it."""
    outcomes = []
    for path in extras:
        if not delete:
            outcomes.append(Outcome(path, Status.EXTRA))
            continue
        try:
            _unlink(root, path)
            stats.deleted.append(path)
        except SourceError as e:
            outcomes.append(Outcome(path, Status.ERROR, f"cannot remove: {e.message}"))
    for problem in problems:
        status = Status.ERROR if problem.unreadable_dir or problem.unmapped else Status.EXTRA
        outcomes.append(Outcome(problem.path, status, problem.reason))
    return outcomes


def _unlink(root: Root, path: str) -> None:
    directory, _, name = path.rpartition("/")
    fd = root.open_dir(directory)
    try:
        _unlink_at(fd, name)
    finally:
        os.close(fd)


def _unlink_at(dir_fd: int, name: str) -> None:
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):  # removing a link touches not its target
            raise SourceError(f"{kind_of(st.st_mode)}, not a regular file", name)
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
    except OSError as e:
        raise SourceError(e.strerror or str(e), name) from e
