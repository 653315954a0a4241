"""Checkpoints: a long build or audit that is interrupted resumes without
re-hashing the objects it had finished.

The checkpoint is a JSON-lines file written as objects finish: a header
`{format, algorithm, chunk_size}`, then per object `{path, identity, root,
leaves}` where identity is what the listing saw (size, ETag and version for
an object; device, inode, size, mtime and ctime for a file).  On resume an
object is reused only if its identity now is exactly the one recorded; a
checkpoint for other parameters, or one that does not parse, is ignored.
A checkpoint is a cache of our own work, not evidence: the manifest built
from it is as good as the listing's identities (ETags, mtimes) are.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import threading
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from json.encoder import encode_basestring_ascii as _json_str
from typing import IO, Any, Final

from .engine import FileDigest, Listed, Opener, Progress, hash_files, hash_stream
from .hashing import TreeHasher

FORMAT: Final = "merkle-checkpoint-v1"
FLUSH_SECONDS: Final = 0.5


def _identity(item: Listed) -> list[Any]:
    return list(getattr(item, "identity", (item.size,)))


def _load(path: str, header: dict[str, Any]) -> dict[str, dict[str, Any]]:
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError:
        return {}
    try:
        if not lines or json.loads(lines[0]) != header:
            return {}
    except ValueError:
        return {}
    done = {}
    for line in lines[1:]:
        try:  # a line torn by a kill mid-write is skipped, not fatal
            record = json.loads(line)
            done[record["path"]] = record
        except (ValueError, KeyError, TypeError):
            continue
    return done


class Checkpoint:
    """Append-only record of finished objects, shared by worker threads."""

    def __init__(self, path: str, hasher: TreeHasher, chunk_size: int) -> None:
        self.path = path
        self.header = {"format": FORMAT, "algorithm": hasher.name, "chunk_size": chunk_size}
        self.done = _load(path, self.header)
        self._lock = threading.Lock()
        self._file: IO[str] | None = None
        self._broken = False
        self._flushed = time.monotonic()
        self._pending: list[tuple[str, list[Any], bytes, bytes]] = []

    def reusable(self, item: Listed) -> FileDigest | None:
        record = self.done.get(item.path)
        if record is None or record.get("identity") != _identity(item):
            return None
        try:
            return FileDigest(item.path, item.size, bytes.fromhex(record["root"]), base64.b64decode(record["leaves"]))
        except (ValueError, KeyError, TypeError):
            return None

    def record(self, item: Listed, digest: FileDigest) -> None:
        """Note a finished object; records reach the file in batches, at most
        FLUSH_SECONDS apart (a kill loses at most that much work; a write per
        object cost more than hashing a small file), and a job shorter than
        that writes none unless it fails."""
        if digest.error is not None or self._broken:
            return
        record = (item.path, _identity(item), digest.root, digest.leaves)
        with self._lock:  # a worker may be swapping the list out in _write
            self._pending.append(record)
            due = time.monotonic() - self._flushed >= FLUSH_SECONDS
        if due:
            self._write()

    def _write(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
            self._flushed = time.monotonic()
            if self._broken or not pending:
                return
            lines = [f'{{"path": {_json_str(path)}, "identity": {_json_identity(identity)}, "root": "{root.hex()}", '
                     f'"leaves": "{binascii.b2a_base64(leaves, newline=False).decode("ascii")}"}}\n'
                     for path, identity, root, leaves in pending]
            try:
                if self._file is None:
                    fresh = not self.done
                    self._file = open(self.path, "w" if fresh else "a", encoding="utf-8")  # noqa: SIM115
                    # a fresh file starts with its header; an old one may end in a line torn by a kill
                    self._file.write(json.dumps(self.header) + "\n" if fresh else "\n")
                self._file.write("".join(lines))
                self._file.flush()
            except OSError as e:  # a checkpoint only saves time: losing it must not stop the job
                self._broken = True
                warnings.warn(f"{self.path}: cannot keep a checkpoint ({e.strerror or e}); going on without",
                              stacklevel=3)

    def close(self, finished: bool, flush: bool = True) -> None:
        """finished: the output is safely written, delete the checkpoint.
        Otherwise keep it, with the records not yet written unless `flush` is
        False (a job that succeeded: writing them would only cost time)."""
        if not finished and flush:
            self._write()
        if self._file is not None:
            self._file.close()
            self._file = None
        if finished and os.path.exists(self.path):
            os.unlink(self.path)


def _json_identity(values: list[Any]) -> str:
    if all(type(v) is int for v in values):  # a local file's: the common case, formatted directly
        return "[" + ", ".join(map(str, values)) + "]"
    return json.dumps(values)


def hash_resumable(
    files: Sequence[Listed],
    hasher: TreeHasher,
    chunk_size: int,
    checkpoint: str | None,
    jobs: int | None = None,
    progress: Progress | None = None,
    opener: Opener | None = None,
) -> tuple[list[FileDigest], Checkpoint | None]:
    """`hash_files`, reusing what `checkpoint` recorded and recording what it
    hashes.  The caller closes the checkpoint (deleting it once its output is
    safely written)."""
    if checkpoint is None:
        return hash_files(files, hasher, chunk_size, jobs, progress, opener=opener), None
    state = Checkpoint(checkpoint, hasher, chunk_size)
    reused = {i: d for i, f in enumerate(files) if (d := state.reusable(f)) is not None}
    todo = [f for i, f in enumerate(files) if i not in reused]
    by_path = {f.path: f for f in todo}

    def on_done(d: FileDigest) -> None:
        state.record(by_path[d.path], d)

    try:
        fresh = iter(hash_files(todo, hasher, chunk_size, jobs, progress, opener=opener, on_done=on_done))
    except BaseException:  # Ctrl-C or a bug: keep what was finished
        state.close(finished=False)
        raise
    return [reused[i] if i in reused else next(fresh) for i in range(len(files))], state


def hash_stream_resumable(
    groups: Iterable[Sequence[Listed]],
    hasher: TreeHasher,
    chunk_size: int,
    checkpoint: str | None,
    jobs: int | None = None,
    progress: Progress | None = None,
    follow_symlinks: bool = False,
) -> tuple[list[FileDigest], Checkpoint | None]:
    """`hash_resumable` for files still being listed (engine.hash_stream):
    digests sorted by path."""
    if checkpoint is None:
        return hash_stream(groups, hasher, chunk_size, jobs, progress, follow_symlinks), None
    state = Checkpoint(checkpoint, hasher, chunk_size)
    reused: list[FileDigest] = []
    by_path: dict[str, Listed] = {}

    def todo() -> Iterator[list[Listed]]:
        for group in groups:
            fresh = []
            for f in group:
                d = state.reusable(f) if state.done else None
                if d is None:
                    by_path[f.path] = f
                    fresh.append(f)
                else:
                    reused.append(d)
            if fresh:
                yield fresh

    def on_done(d: FileDigest) -> None:
        state.record(by_path[d.path], d)

    try:
        digests = hash_stream(todo(), hasher, chunk_size, jobs, progress, follow_symlinks, on_done)
    except BaseException:  # Ctrl-C, a root that cannot be listed, or a bug: keep what was finished
        state.close(finished=False)
        raise
    if reused:
        digests = sorted([*digests, *reused], key=lambda d: d.path)
    return digests, state
