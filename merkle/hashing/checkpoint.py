"""Checkpoints: an interrupted build or full audit, run again with `resume`,
reuses the objects it had finished instead of hashing them again.

A checkpoint decides which digest goes into a manifest that may then be
signed, so it must not be steerable by anyone but the user running merkle:

1. It is read only when asked (`resume`); a run without it starts afresh.
2. It lives in the user's private directory (merkle.source.userdir: owned by the
   user, writable by nobody else, opened without following links), never
   beside the output.  Default `$MERKLE_CHECKPOINTS`, else
   `$XDG_CACHE_HOME/merkle/checkpoints`, else `~/.cache/merkle/checkpoints`.
3. Every line is authenticated: HMAC-SHA256 under the directory's secret key
   over the job (kind, source, algorithm, chunk size, exclusions, link
   policy, ...) and the line.  A line that does not verify is skipped, so a
   record copied from another checkpoint, or made for other parameters, is
   never used.
4. A record is reused for the object at its path under the root only if the
   object's identity now (size, ETag, VersionId; for a file device, inode,
   size, mtime and ctime) is exactly the one recorded.

The file, `<directory>/<sha256 of the job>.checkpoint`, holds lines
`MAC JSON`: a header `{format, job}`, then, per flush (at most FLUSH_SECONDS
apart), one line listing the objects finished since the last one, each as
`[path, identity, root hex, leaves base64]` (leaves "-", not base64, for a
one-chunk object, whose only leaf is its root; an empty one's are "").  One
MAC per flush, not per object: recording a million small files cost a third
of their build when every object had its own line and MAC; a kill tears at
most the last line.  One run of a job holds it at a time (flock); a second
one goes without.  A run that fails, however it fails, keeps it (only
objects hashed without error are recorded) for an explicit resume; a run
that succeeds deletes it.  What a resumed build is worth is what the
identities are worth: a file rewritten with its size, mtime and ctime
restored, or an object store that keeps an ETag for other bytes, is not
noticed, exactly as when the listing and the hashing of one run race.
"""

from __future__ import annotations

import binascii
import fcntl
import json
import os
import threading
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii as _json_str
from typing import Any, Final

from merkle.errors import CheckpointWarning, MerkleError
from merkle.hashing.engine import FileDigest, hash_files, hash_stream
from merkle.report import Progress
from merkle.source.readers import Listed, Opener
from merkle.source.remote import is_url
from merkle.source.userdir import PrivateDir, cache_dir
from merkle.tree.hasher import TreeHasher

FORMAT: Final = "merkle-checkpoint-v3"  # v2: one object per line
SUFFIX: Final = ".checkpoint"
FLUSH_SECONDS: Final = 0.5


def default_dir() -> str:
    return cache_dir("MERKLE_CHECKPOINTS", "checkpoints")


@dataclass(frozen=True)
class Job:
    """What a checkpoint's records are valid for: every parameter that could
    change a digest or which object a path names."""

    description: dict[str, Any]

    @property
    def digest(self) -> bytes:
        import hashlib  # start-up: only where a checkpoint is used

        return hashlib.sha256(json.dumps(self.description, sort_keys=True).encode()).digest()

    @property
    def name(self) -> str:
        return self.digest.hex() + SUFFIX


def job(kind: str, source: str, storage_options: dict[str, Any] | None, **params: Any) -> Job:
    """The job `kind` ("build", "verify") over `source`: a local root by its
    real path, a URL as given with a digest of its storage options (they
    name the endpoint; they may hold secrets, so only their digest)."""
    if is_url(source):
        import hashlib  # start-up: only where a checkpoint is used

        where = source.rstrip("/")
        options = json.dumps(storage_options or {}, sort_keys=True, default=repr).encode()
        params["storage_options"] = hashlib.sha256(options).hexdigest()
    else:
        where = os.path.realpath(source.removeprefix("file://"))
    # as its header will read back: a tuple becomes a list, and anything not JSON fails here, not in a header
    return Job(json.loads(json.dumps({"kind": kind, "source": where, **params})))


def _identity(item: Listed) -> list[Any]:
    return list(getattr(item, "identity", (item.size,)))


def _record_json(record: tuple[str, Sequence[Any], bytes, bytes]) -> str:
    path, identity, root, leaves = record
    tail = "-" if leaves == root else binascii.b2a_base64(leaves, newline=False).decode("ascii")
    return f'[{_json_str(path)}, {_json_identity(identity)}, "{root.hex()}", "{tail}"]'


def _json_identity(values: Sequence[Any]) -> str:
    if all(type(v) is int for v in values):  # a local file's: the common case, formatted directly
        return "[" + ", ".join(map(str, values)) + "]"
    return json.dumps(list(values))


def _warn(message: str) -> None:
    warnings.warn(message, CheckpointWarning, stacklevel=4)


class Checkpoint:
    """The open checkpoint of one job: records finished objects (from worker
    threads) and, when resuming, hands back those still valid.  Open it with
    `Checkpoint.open`; end it with `keep` or `discard`."""

    KEPT: str = "checkpoint"
    """What a warning says is not kept when the directory cannot be used."""

    def __init__(self, directory: PrivateDir, fd: int, key: bytes, job: Job) -> None:
        self.directory = directory
        self.job = job
        self.path = directory.where(job.name)
        self._fd = fd
        self._bind = FORMAT.encode() + b"\0" + job.digest  # fixed length: no ambiguity with the line after it
        self._key = key
        self.done: dict[str, list[Any]] = {}
        self._lock = threading.Lock()
        self._broken = False
        self._flushed = time.monotonic()
        self._pending: list[tuple[str, Sequence[Any], bytes, bytes]] = []

    @classmethod
    def open(cls, job: Job, resume: bool, directory: str | None = None) -> Checkpoint | None:
        """The checkpoint of `job` in `directory` (default_dir()), read when
        `resume`, else emptied.  None, with a CheckpointWarning saying why,
        when it cannot be used: an unsafe directory or file, an I/O error,
        another run of the same job holding it.  The job goes on without."""
        kept = cls.KEPT
        what = f"nothing resumed, no {kept} kept" if resume else f"no {kept} kept"
        try:
            private = PrivateDir(directory or default_dir())
        except MerkleError as e:
            _warn(f"{e}; {what}")
            return None
        try:
            key = private.secret()
            fd = _lock(private, job.name)
        except (OSError, MerkleError) as e:
            private.close()
            message = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            where = "" if isinstance(e, MerkleError) else f"{private.where(job.name)}: "
            _warn(f"{where}{message}; {what}")
            return None
        if fd is None:
            private.close()
            _warn(f"{private.where(job.name)}: another merkle run of the same job is using it; {what}")
            return None
        state = cls(private, fd, key, job)
        try:
            if resume:
                state.done = state._load()
            if state.done:
                os.write(fd, b"\n")  # the last line may have been torn by a kill
            else:
                os.ftruncate(fd, 0)
                state._append([json.dumps({"format": FORMAT, "job": job.description}, sort_keys=True)])
        except OSError as e:
            state._close()
            _warn(f"{state.path}: {e.strerror or e}; {what}")
            return None
        return state

    def _line(self, body: str) -> bytes:
        import hmac  # start-up: only where a checkpoint is used

        data = body.encode()
        return hmac.digest(self._key, self._bind + data, "sha256").hex().encode() + b" " + data + b"\n"

    def _verified(self, line: bytes) -> Any:
        """The JSON of one line whose MAC verifies, else None (verify, then parse)."""
        import hmac

        mac, _, data = line.partition(b" ")
        try:
            good = hmac.compare_digest(
                bytes.fromhex(mac.decode("ascii")), hmac.digest(self._key, self._bind + data, "sha256")
            )
            return json.loads(data) if good else None
        except ValueError:  # not hex, not ASCII, not JSON: torn by a kill, or not ours
            return None

    def _load(self) -> dict[str, list[Any]]:
        with os.fdopen(os.dup(self._fd), "rb") as f:
            lines = f.read().split(b"\n")
        if self._verified(lines[0]) != {"format": FORMAT, "job": self.job.description}:
            return {}
        done = {}
        for line in lines[1:]:
            block = self._verified(line)
            for record in block if isinstance(block, list) else ():
                if isinstance(record, list) and len(record) == 4 and isinstance(record[0], str):
                    done[record[0]] = record
        return done

    @property
    def reading(self) -> bool:
        """Whether `reusable` can give anything."""
        return bool(self.done)

    def reusable(self, item: Listed) -> FileDigest | None:
        record = self.done.get(item.path)
        if record is None or record[1] != _identity(item):
            return None
        import base64

        try:
            root = bytes.fromhex(record[2])
            leaves = root if record[3] == "-" else base64.b64decode(record[3], validate=True)
            return FileDigest(item.path, item.size, root, leaves)
        except (ValueError, TypeError):
            return None

    def record(self, item: Listed, digest: FileDigest) -> None:
        """Note a finished object; records reach the file in batches, at most
        FLUSH_SECONDS apart (a kill loses at most that much work; a write per
        object cost more than hashing a small file)."""
        if digest.error is not None or self._broken:
            return
        record = (item.path, getattr(item, "identity", (item.size,)), digest.root, digest.leaves)
        with self._lock:  # a worker may be swapping the list out in _write
            self._pending.append(record)
            due = time.monotonic() - self._flushed >= FLUSH_SECONDS
        if due:
            self._write()

    def _write(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
            self._flushed = time.monotonic()
            if self._broken or not pending or self._fd < 0:
                return
            try:
                self._append(["[" + ", ".join(map(_record_json, pending)) + "]"])
            except OSError as e:  # a checkpoint only saves time: losing it must not stop the job
                self._broken = True
                _warn(f"{self.path}: cannot keep a checkpoint ({e.strerror or e}); going on without")

    def _append(self, bodies: list[str]) -> None:
        view = memoryview(b"".join(map(self._line, bodies)))
        while view:
            view = view[os.write(self._fd, view) :]

    def keep(self) -> None:
        """The job failed or was interrupted: write what is pending and keep
        the checkpoint for a resume."""
        self._write()
        self._close()

    def discard(self) -> None:
        """The job's result is safely delivered: delete the checkpoint."""
        if self._fd >= 0:
            self.directory.unlink(self.job.name)  # still ours: we hold its lock
        self._close()

    def _close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)  # releases the lock
                self._fd = -1
        self.directory.close()


def _lock(private: PrivateDir, name: str) -> int | None:
    """`name` opened (made if missing) and locked; None if another run holds
    it.  A file a finishing run unlinked after we opened it is opened anew."""
    for _ in range(3):
        fd = private.open(name, os.O_RDWR | os.O_CREAT | os.O_APPEND)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        if private.names(name, fd):
            return fd
        os.close(fd)
    raise OSError(0, "replaced again and again while being opened")


def _count_reused(progress: Progress | None, digests: Iterable[FileDigest]) -> None:
    if progress is not None:
        for d in digests:
            progress.resumed_files += 1
            progress.resumed_bytes += d.size


def hash_resumable(
    files: Sequence[Listed],
    hasher: TreeHasher,
    chunk_size: int,
    state: Checkpoint | None,
    jobs: int | None = None,
    progress: Progress | None = None,
    opener: Opener | None = None,
    head: int = 0,
) -> list[FileDigest]:
    """`hash_files`, reusing what `state` holds (when resuming; counted in
    `progress.resumed_files` and `resumed_bytes`) and recording what it
    hashes.  The caller ends the checkpoint (keep or discard).  `head`: as
    hash_files (a digest the checkpoint gave has none)."""
    if state is None:
        return hash_files(files, hasher, chunk_size, jobs, progress, opener=opener, head=head)
    reused = {i: d for i, f in enumerate(files) if (d := state.reusable(f)) is not None} if state.reading else {}
    _count_reused(progress, reused.values())
    todo = [f for i, f in enumerate(files) if i not in reused]
    by_path = {f.path: f for f in todo}

    def on_done(d: FileDigest) -> None:
        state.record(by_path[d.path], d)

    fresh = iter(hash_files(todo, hasher, chunk_size, jobs, progress, opener=opener, on_done=on_done, head=head))
    return [reused[i] if i in reused else next(fresh) for i in range(len(files))]


def hash_stream_resumable(
    groups: Iterable[Sequence[Listed]],
    hasher: TreeHasher,
    chunk_size: int,
    state: Checkpoint | None,
    jobs: int | None = None,
    progress: Progress | None = None,
    follow_symlinks: bool = False,
) -> list[FileDigest]:
    """`hash_resumable` for files still being listed (engine.hash_stream):
    digests sorted by path."""
    if state is None:
        return hash_stream(groups, hasher, chunk_size, jobs, progress, follow_symlinks)
    reused: list[FileDigest] = []
    by_path: dict[str, Listed] = {}

    def todo() -> Iterator[list[Listed]]:
        for group in groups:
            fresh = []
            for f in group:
                d = state.reusable(f) if state.reading else None
                if d is None:
                    by_path[f.path] = f
                    fresh.append(f)
                else:
                    reused.append(d)
            if fresh:
                yield fresh

    def on_done(d: FileDigest) -> None:
        state.record(by_path[d.path], d)

    digests = hash_stream(todo(), hasher, chunk_size, jobs, progress, follow_symlinks, on_done)
    _count_reused(progress, reused)
    if reused:
        digests = sorted([*digests, *reused], key=lambda d: d.path)
    return digests
