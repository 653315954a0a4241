"""`merkle sync SOURCE DEST BUNDLE`: make DEST hold the signed version,
fetching from SOURCE only the chunks DEST lacks (docs/sync.md, SY1-SY9).

The caller has made the trust decision (merkle.verifying.signed.open_signed):
`manifest` is signed and its leaf layers authenticated against it.  Then:

1. DEST is locked and walked as verify walks it (plain, the manifest's
   exclusions); with `delete`, what the manifest does not list is removed
   first (names only, never what a link points to).  Every listed file of
   the manifest, and the partial file an earlier sync left for it, is hashed
   chunk by chunk: which chunks DEST already holds.
2. Each file that is not already right gets a partial file in DEST's
   staging folder `.merkle-sync/` (this user's, mode 0700: nobody else can
   put, swap or rename anything in it), which receives the chunks DEST holds
   (copied by the kernel) and the chunks it lacks, fetched from SOURCE in
   ranged reads, in parallel, each chunk checked against its signed leaf
   hash before it is written.
3. The partial is hashed whole; only if its root is the signed root is it
   renamed over the file.  An interrupted sync leaves partials whose chunks
   the next run checks and keeps.

Nothing SOURCE or DEST holds decides anything: SOURCE's bytes are checked
chunk by chunk, DEST's and the partials' are hashed, and only the signed
manifest's paths are read or written, below DEST, never through a link.
Files are handled in batches, so a folder of a million files needs a few
descriptors at a time, not three per file.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import os
import re
import stat
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final

from merkle.errors import IntegrityError, MerkleError, SourceError
from merkle.format.manifest import FileEntry, Manifest
from merkle.hashing.engine import FileDigest, hash_files
from merkle.report import Outcome, Report, Status
from merkle.source.layouts import LayoutOptions
from merkle.source.listing import WalkOptions, list_source
from merkle.source.local import Root, component_reason, kind_of
from merkle.source.walk import WalkedFile, WalkProblem, blocked_by, identity
from merkle.syncing.sources import ChunkSource
from merkle.tree import rfc6962
from merkle.tree.hasher import DIGEST_SIZE

STAGE: Final = ".merkle-sync"
"""DEST's staging folder: partial files, one per manifest path being written."""
MAX_RANGE = 8 << 20
"""Largest ranged read: adjacent missing chunks are fetched together up to
this (or one chunk, when chunks are larger)."""
MAX_IN_FLIGHT = 256 << 20
"""Bytes fetched and not yet written, at most: the workers are as many as
fit, each holding one range."""
BATCH = 64
"""Files prepared, fetched and finished together (two descriptors each)."""
DEFAULT_JOBS = 8
_PARTIAL = re.compile("[0-9a-f]{32}")
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _NOFOLLOW | _CLOEXEC


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
    whole_files: int = 0
    """Multi-chunk files fetched whole and checked whole (no leaf sidecar)."""
    deleted: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class SyncResult:
    report: Report
    """DEST's verdict at the end: OK for every file in place and checked."""
    stats: SyncStats


def partial_name(path: str) -> str:
    """The name of manifest path `path`'s partial file in the staging
    folder: fixed per path, so a later sync finds an earlier one's work."""
    return hashlib.sha256(path.encode()).hexdigest()[:32]


class _Stage:
    """DEST/.merkle-sync: made here (0700), or an earlier run's when it is a
    directory of this user's that nobody else can write; locked for the run
    (a second sync of DEST at the same time is refused, not interleaved)."""

    def __init__(self, root: Root, root_fd: int) -> None:
        self.root = root
        self.shown = os.path.join(root.path, STAGE)
        for _ in range(3):
            self.fd = self._open(root_fd)
            if os.fstat(self.fd).st_nlink > 0:  # not removed by a sync that just ended
                return
            os.close(self.fd)
        raise SourceError("keeps being removed while it is opened", self.shown)

    def _open(self, root_fd: int) -> int:
        import fcntl

        try:
            os.mkdir(STAGE, 0o700, dir_fd=root_fd)
        except FileExistsError:
            pass
        except OSError as e:
            raise SourceError(f"cannot make the staging folder: {e.strerror or e}", self.shown) from e
        try:
            fd = os.open(STAGE, _DIR_FLAGS, dir_fd=root_fd)
        except OSError as e:
            reason = component_reason(e, root_fd, STAGE)
            raise SourceError(f"{reason}: sync keeps its partial files here; remove it", self.shown) from e
        st = os.fstat(fd)
        if st.st_uid != os.geteuid():
            os.close(fd)
            raise SourceError("belongs to another user: sync keeps its partial files here; remove it", self.shown)
        if st.st_mode & 0o077:
            os.fchmod(fd, 0o700)  # this user's own folder: made private again
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            raise SourceError("another merkle sync is writing this folder", self.root.path) from e
        return fd

    def names(self) -> dict[str, os.stat_result]:
        """The partial files here (regular files named as partial_name names them)."""
        found = {}
        for name in os.listdir(self.fd):
            try:
                st = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            found[name] = st
        return found

    def walked(self, name: str, st: os.stat_result) -> WalkedFile:
        """The partial `name` as the engine reads it: down from DEST's root,
        never through a link, and only if it is still the file `st` was."""
        rel = f"{STAGE}/{name}"
        return WalkedFile(rel, os.path.join(self.shown, name), st.st_size, identity(st), self.root, rel)

    def remove(self, name: str) -> None:
        """Remove a file or link here; anything else (a folder someone made
        here) is left alone: a new partial of that name then fails to be
        made, one per-file error, not the run."""
        try:
            if not stat.S_ISDIR(os.stat(name, dir_fd=self.fd, follow_symlinks=False).st_mode):
                os.unlink(name, dir_fd=self.fd)
        except OSError:
            pass

    def close(self, root_fd: int) -> None:
        try:
            if not os.listdir(self.fd):
                os.rmdir(STAGE, dir_fd=root_fd)
        except OSError:
            pass  # not empty, or gone: either way nothing of value is lost
        os.close(self.fd)


@dataclass
class _Plan:
    """One file to write: where its chunks come from."""

    entry: FileEntry
    leaves: list[bytes] | None
    """The signed leaf hashes; None for a multi-chunk file without a sidecar
    (fetched whole, checked whole)."""
    current: WalkedFile | None
    """DEST's file at this path, as listed."""
    held: list[bytes]
    """Leaf hashes of DEST's file."""
    earlier: os.stat_result | None
    """An earlier run's partial, as found."""
    old: list[bytes]
    """Leaf hashes of that partial."""
    dir_fd: int = -1
    fd: int = -1
    """The partial, open for writing."""
    failed: Outcome | None = None
    copied: int = 0
    resumed: int = 0


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
    of the report; only a DEST that cannot be opened or locked raises."""
    started = time.perf_counter()
    if not os.path.lexists(dest):
        try:
            os.makedirs(dest)
        except OSError as e:
            raise SourceError(f"cannot create: {e.strerror or e}", dest) from e
    root_fd, root = Root.open(dest)
    try:
        stage = _Stage(root, root_fd)
        try:
            run = _Run(source, dest, manifest, root, stage, jobs)
            outcomes = run.run(allow_extra, delete)
        finally:
            stage.close(root_fd)
    finally:
        os.close(root_fd)
    seconds = time.perf_counter() - started
    report = Report(manifest.root, manifest.algorithm, tuple(outcomes), allow_extra, run.stats.hashed_bytes, seconds)
    return SyncResult(report, run.stats)


class _Run:
    def __init__(self, source: ChunkSource, dest: str, manifest: Manifest, root: Root, stage: _Stage, jobs: int | None):
        self.source, self.dest, self.manifest, self.root, self.stage = source, dest, manifest, root, stage
        self.jobs = jobs
        self.cs = manifest.chunk_size
        self.stats = SyncStats()
        self.lock = threading.Lock()

    def _list(self) -> tuple[dict[str, WalkedFile], dict[str, WalkProblem]]:
        listing = list_source(
            self.dest, self.manifest.exclude, WalkOptions(), LayoutOptions("plain", bookkeeping=False)
        )
        mine = STAGE + "/"
        present = {f.path: f for f in listing.files if isinstance(f, WalkedFile) and not f.path.startswith(mine)}
        problems = {p.path: p for p in listing.problems if p.path != STAGE and not p.path.startswith(mine)}
        return present, problems

    def run(self, allow_extra: bool, delete: bool) -> list[Outcome]:
        manifest = self.manifest
        listed = {e.path for e in manifest.files}
        present, problems = self._list()
        outcomes: list[Outcome] = []
        if delete:
            outcomes += self._delete(present, problems, listed)
            present, problems = self._list()
        holding = _directories(list(present) + list(problems))
        holding |= self._empty_folders_at(manifest.files, present, problems, holding, delete)
        staged = self.stage.names()
        partials = {n: st for n, st in staged.items() if _PARTIAL.fullmatch(n) and stat.S_ISREG(st.st_mode)}
        entries: list[FileEntry] = []
        for entry in manifest.files:
            why = self._blocked(entry, problems, holding)
            if why is not None:
                outcomes.append(Outcome(entry.path, Status.ERROR, why))
            else:
                entries.append(entry)
        wanted = {partial_name(e.path) for e in manifest.files}  # a blocked file's partial is kept for next time
        for name in set(staged) - wanted:
            self.stage.remove(name)  # an earlier run's, for a path no longer signed here (or not a partial at all)
        for i in range(0, len(entries), BATCH):
            outcomes += self._batch(entries[i : i + BATCH], present, partials)
        for path in sorted(set(present) - listed):
            outcomes.append(Outcome(path, Status.EXTRA))
        needed = _directories(listed)
        for path, problem in problems.items():
            if path in listed or path in needed:
                continue  # reported with the file it stands in the way of
            status = Status.ERROR if problem.unreadable_dir or problem.unmapped else Status.EXTRA
            outcomes.append(Outcome(path, status, problem.reason))
        outcomes.sort(key=lambda o: o.path)
        return outcomes

    def _blocked(self, entry: FileEntry, problems: dict[str, WalkProblem], holding: set[str]) -> str | None:
        """Why `entry` cannot be written at all, or None."""
        if entry.path == STAGE or entry.path.startswith(STAGE + "/"):
            return f"sync keeps its partial files in {STAGE}/: a signed file there cannot be synced"
        problem = problems.get(entry.path) or blocked_by(entry.path, problems)
        if problem is not None:
            reason = problem.reason.replace(" (use --follow-symlinks)", "")  # verify's advice; sync follows no link
            return f"{reason}: sync replaces only regular files (--delete removes what is in the way)"
        if entry.path in holding:
            return "a directory is in the way: sync replaces only regular files (--delete removes what is in it)"
        return None

    def _empty_folders_at(
        self,
        entries: Sequence[FileEntry],
        present: dict[str, WalkedFile],
        problems: dict[str, WalkProblem],
        holding: set[str],
        delete: bool,
    ) -> set[str]:
        """Signed paths where DEST has a folder that holds no listed file
        (the walk names none of it): found here, before anything is fetched;
        with `delete`, removed when it is empty folders only."""
        found = set()
        for entry in entries:
            path = entry.path
            if path in present or path in problems or path in holding or blocked_by(path, problems):
                continue
            parent, _, name = path.rpartition("/")
            try:
                fd = self.root.open_dir(parent)
            except SourceError:
                continue  # no such folder yet: nothing in the way
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode) and not (delete and _remove_empty_tree(fd, name)):
                    found.add(path)
            except OSError:
                pass
            finally:
                os.close(fd)
        return found

    def _delete(
        self, present: dict[str, WalkedFile], problems: dict[str, WalkProblem], listed: set[str]
    ) -> list[Outcome]:
        """Remove what the manifest does not list: extra files, and links,
        FIFOs and other special files wherever they are (their names; a
        link's target is never touched); then the folders this emptied that
        no listed file needs.  Errors are outcomes."""
        outcomes = []
        doomed = sorted(set(present) - listed)
        doomed += sorted(p for p, prob in problems.items() if not (prob.unreadable_dir or prob.unmapped))
        needed = _directories(listed)
        emptied: set[str] = set()
        for path in doomed:
            try:
                _unlink(self.root, path)
                self.stats.deleted.append(path)
                emptied |= _directories([path])
            except SourceError as e:
                outcomes.append(Outcome(path, Status.ERROR, f"cannot remove: {e.message}"))
        for directory in sorted(emptied - needed, key=lambda d: -d.count("/")):
            parent, _, name = directory.rpartition("/")
            try:
                fd = self.root.open_dir(parent)
            except SourceError:
                continue
            try:
                os.rmdir(name, dir_fd=fd)
            except OSError:
                pass  # not empty (it holds what the exclusions hide, or listed files below): kept
            finally:
                os.close(fd)
        return outcomes

    # -- one batch: hash, prepare, fetch, finish ------------------------------

    def _batch(
        self, entries: list[FileEntry], present: dict[str, WalkedFile], partials: dict[str, os.stat_result]
    ) -> list[Outcome]:
        manifest = self.manifest
        to_hash: list[WalkedFile] = [present[e.path] for e in entries if e.path in present]
        earlier = {e.path: partials[partial_name(e.path)] for e in entries if partial_name(e.path) in partials}
        to_hash += [self.stage.walked(partial_name(p), st) for p, st in earlier.items()]
        digests = {d.path: d for d in hash_files(to_hash, manifest.hasher, self.cs, self.jobs) if d.error is None}
        self.stats.hashed_bytes += sum(d.size for d in digests.values())
        outcomes: list[Outcome] = []
        plans: list[_Plan] = []
        for entry in entries:
            have = digests.get(entry.path)
            if have is not None and have.size == entry.size and have.root == entry.root:
                self.stats.in_place += 1
                outcomes.append(Outcome(entry.path, Status.OK))
                if entry.path in earlier:
                    self.stage.remove(partial_name(entry.path))
                continue
            leaves = _signed_leaves(manifest, entry)
            old = _chunks(digests.get(f"{STAGE}/{partial_name(entry.path)}")) if leaves is not None else []
            plans.append(_Plan(entry, leaves, present.get(entry.path), _chunks(have), earlier.get(entry.path), old))
        try:
            tasks: list[tuple[_Plan, int, int]] = []
            for plan in plans:
                try:
                    tasks += self._prepare(plan)
                except OSError as e:
                    plan.failed = Outcome(plan.entry.path, Status.ERROR, f"cannot write: {e.strerror or e}")
                except MerkleError as e:
                    plan.failed = Outcome(plan.entry.path, Status.ERROR, e.message)
            self._fetch_all(tasks)
            outcomes += self._finish(plans)
        finally:
            for plan in plans:
                for fd in (plan.fd, plan.dir_fd):
                    if fd >= 0:
                        os.close(fd)
        return outcomes

    def _prepare(self, plan: _Plan) -> list[tuple[_Plan, int, int]]:
        """Open the partial of `plan`, put in it what DEST and an earlier
        partial hold, and return the ranges of chunks [first, last) still
        to fetch."""
        entry, cs = plan.entry, self.cs
        directory, _, _ = entry.path.rpartition("/")
        plan.dir_fd = _make_dirs(self.root, directory)
        n = rfc6962.chunk_count(entry.size, cs)
        good = [False] * n
        plan.fd = self._open_partial(plan)
        if plan.leaves is not None and plan.earlier is not None:
            for i, leaf in enumerate(plan.old[:n]):
                if leaf == plan.leaves[i]:
                    good[i] = True
                    plan.resumed += min(cs, entry.size - i * cs)
        os.ftruncate(plan.fd, entry.size)
        if plan.leaves is not None and plan.current is not None:
            runs = [i for i in range(min(n, len(plan.held))) if not good[i] and plan.held[i] == plan.leaves[i]]
            if runs:
                plan.copied = _copy_chunks(plan, plan.current, runs, cs)
                for i in runs:
                    good[i] = True
        ranges = []
        per_range = max(1, MAX_RANGE // cs)
        i = 0
        while i < n:
            if good[i]:
                i += 1
                continue
            first = i
            while i < n and not good[i] and i - first < per_range:
                i += 1
            ranges.append((plan, first, i))
        return ranges

    def _open_partial(self, plan: _Plan) -> int:
        """The partial, open for reading and writing: an earlier run's when
        it is still the regular file that was hashed (the staging folder is
        this user's alone), else a new one."""
        name = partial_name(plan.entry.path)
        flags = os.O_RDWR | _NOFOLLOW | _CLOEXEC | getattr(os, "O_NONBLOCK", 0)
        if plan.earlier is not None and plan.leaves is not None:
            try:
                fd = os.open(name, flags, dir_fd=self.stage.fd)
            except OSError:
                fd = -1
            if fd >= 0:
                st = os.fstat(fd)
                if stat.S_ISREG(st.st_mode) and st.st_nlink == 1 and identity(st) == identity(plan.earlier):
                    return fd
                os.close(fd)
            plan.resumed = 0
        plan.earlier = None
        self.stage.remove(name)
        return os.open(name, flags | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=self.stage.fd)

    def _fetch_all(self, tasks: Sequence[tuple[_Plan, int, int]]) -> None:
        """Fetch every range, in parallel, checking each chunk before it is
        written; a file's first failure stops its other ranges."""
        if not tasks:
            return
        workers = max(1, min(self.jobs or DEFAULT_JOBS, MAX_IN_FLIGHT // max(MAX_RANGE, self.cs)))
        with ThreadPoolExecutor(workers) as pool:
            for _ in pool.map(self._fetch, tasks):
                pass

    def _fetch(self, task: tuple[_Plan, int, int]) -> None:
        plan, first, last = task
        if plan.failed is not None:
            return
        entry, cs = plan.entry, self.cs
        start, end = first * cs, min(last * cs, entry.size)
        try:
            data = self.source.read(entry.path, entry.size, start, end)
        except MerkleError as e:
            plan.failed = plan.failed or Outcome(entry.path, Status.ERROR, f"{self.source.name}: {e.message}")
            return
        with self.lock:
            self.stats.fetched_bytes += len(data)
            self.stats.requests += 1
            self.stats.fetched_chunks += last - first
        view = memoryview(data)
        hasher = self.manifest.hasher
        try:
            for i in range(first, last):  # each chunk checked; each good one kept (a later sync resumes from it)
                a = (i - first) * cs
                piece = view[a : a + cs]
                if plan.leaves is not None and hasher.leaf(piece) != plan.leaves[i]:
                    at = i * cs
                    plan.failed = plan.failed or Outcome(
                        entry.path,
                        Status.MISMATCH,
                        f"{self.source.name} holds other bytes than the bundle at {at}-{min(at + cs, entry.size) - 1}",
                    )
                    continue
                offset = i * cs
                while piece:
                    n = os.pwrite(plan.fd, piece, offset)
                    piece, offset = piece[n:], offset + n
        except OSError as e:
            plan.failed = plan.failed or Outcome(entry.path, Status.ERROR, f"cannot write: {e.strerror or e}")

    def _finish(self, plans: list[_Plan]) -> list[Outcome]:
        """Check each written partial whole and rename it over its file."""
        outcomes: list[Outcome] = []
        ready: list[tuple[_Plan, WalkedFile]] = []
        for plan in plans:
            if plan.fd < 0 or plan.failed is not None:
                outcomes.append(plan.failed or Outcome(plan.entry.path, Status.ERROR, "not written"))
                continue
            try:
                os.fsync(plan.fd)
            except OSError as e:
                outcomes.append(Outcome(plan.entry.path, Status.ERROR, f"cannot write: {e.strerror or e}"))
                continue
            ready.append((plan, self.stage.walked(partial_name(plan.entry.path), os.fstat(plan.fd))))
        hasher, cs = self.manifest.hasher, self.cs
        digests = hash_files([w for _, w in ready], hasher, cs, self.jobs) if ready else []
        for (plan, written), digest in zip(ready, digests, strict=True):
            entry = plan.entry
            self.stats.hashed_bytes += digest.size
            try:
                if digest.error is not None:
                    raise SourceError(digest.error.message, entry.path)
                if digest.root != entry.root:
                    if plan.leaves is None:
                        self.stage.remove(partial_name(entry.path))  # unchecked bytes: nothing to resume from
                    raise IntegrityError("the bytes fetched do not match the bundle (checked whole)", entry.path)
                self._rename_into_place(plan, written)
            except MerkleError as e:
                status = Status.MISMATCH if isinstance(e, IntegrityError) else Status.ERROR
                outcomes.append(Outcome(entry.path, status, e.message))
                continue
            except OSError as e:
                outcomes.append(Outcome(entry.path, Status.ERROR, f"cannot write: {e.strerror or e}"))
                continue
            self.stats.written += 1
            self.stats.whole_files += plan.leaves is None
            self.stats.copied_bytes += plan.copied
            self.stats.resumed_bytes += plan.resumed
            outcomes.append(Outcome(entry.path, Status.OK))
        return outcomes

    def _rename_into_place(self, plan: _Plan, written: WalkedFile) -> None:
        entry = plan.entry
        name = entry.path.rpartition("/")[2]
        try:
            there = os.stat(name, dir_fd=plan.dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            there = None
        if there is not None and not stat.S_ISREG(there.st_mode):
            raise SourceError(f"{kind_of(there.st_mode)} is in the way: sync replaces only regular files", entry.path)
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(plan.fd, 0o666 & ~umask)
        os.rename(partial_name(entry.path), name, src_dir_fd=self.stage.fd, dst_dir_fd=plan.dir_fd)
        now = os.stat(name, dir_fd=plan.dir_fd, follow_symlinks=False)
        if (now.st_dev, now.st_ino) != written.identity[:2]:
            raise SourceError("replaced by another file while it was synced", entry.path)
        try:
            os.fsync(plan.dir_fd)
        except OSError as e:
            if e.errno not in (errno.EINVAL, errno.EBADF):  # some file systems cannot sync a directory
                raise


def _directories(paths: Sequence[str] | set[str]) -> set[str]:
    """Every folder that holds one of `paths` (at any depth)."""
    out: set[str] = set()
    for path in paths:
        end = path.rfind("/")
        while end > 0:
            folder = path[:end]
            if folder in out:
                break
            out.add(folder)
            end = path.rfind("/", 0, end)
    return out


def _signed_leaves(manifest: Manifest, entry: FileEntry) -> list[bytes] | None:
    n = rfc6962.chunk_count(entry.size, manifest.chunk_size)
    if n <= 1:
        return [entry.root] * n
    if manifest.layers is None:
        return None
    return manifest.layers.leaf_hashes(entry, manifest.chunk_size)


def _chunks(digest: FileDigest | None) -> list[bytes]:
    """A hashed file's leaf hashes."""
    if digest is None or digest.size == 0:
        return []
    return rfc6962.split_leaves(digest.leaves) if len(digest.leaves) > DIGEST_SIZE else [digest.root]


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


def _copy_chunks(plan: _Plan, current: WalkedFile, chunks: list[int], chunk_size: int) -> int:
    """Copy chunks DEST's file holds into the partial (in the kernel: a
    reflink where the file system has them).  The file must be the one that
    was hashed; the partial's whole check covers a change after this."""
    fd, st = current.open()
    try:
        if identity(st) != current.identity:
            raise SourceError("changed while it was synced", current.abspath)
        copied = 0
        for first, last in _runs(chunks):
            start, end = first * chunk_size, min(last * chunk_size, plan.entry.size)
            copied += _copy_range(fd, plan.fd, start, end, current.abspath)
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


def _copy_range(src: int, dst: int, start: int, end: int, shown: str) -> int:
    offset = start
    while offset < end:
        try:
            n = os.copy_file_range(src, dst, end - offset, offset, offset)
        except OSError as e:
            if e.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
                raise
            data = os.pread(src, min(end - offset, 1 << 20), offset)
            n = os.pwrite(dst, data, offset) if data else 0
        if n <= 0:
            raise SourceError("ended while it was copied", shown)
        offset += n
    return end - start


def _remove_empty_tree(dir_fd: int, name: str) -> bool:
    """Remove folder `name` of `dir_fd` if it holds only empty folders
    (opened without following links); whether it is gone."""
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except OSError:
        return False
    try:
        for child in os.listdir(fd):
            st = os.stat(child, dir_fd=fd, follow_symlinks=False)
            if not stat.S_ISDIR(st.st_mode) or not _remove_empty_tree(fd, child):
                return False
    except OSError:
        return False
    finally:
        os.close(fd)
    try:
        os.rmdir(name, dir_fd=dir_fd)
    except OSError:
        return False
    return True


def _unlink(root: Root, path: str) -> None:
    """Remove the name `path` below the root (a file, a link, a special
    file; never a directory, never what a link points to)."""
    directory, _, name = path.rpartition("/")
    fd = root.open_dir(directory)
    try:
        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            raise SourceError("a directory, not removed", path)
        os.unlink(name, dir_fd=fd)
    except FileNotFoundError:
        pass
    except OSError as e:
        raise SourceError(e.strerror or str(e), path) from e
    finally:
        os.close(fd)
