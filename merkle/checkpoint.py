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
import json
import os
import threading
import warnings
from collections.abc import Sequence
from typing import IO, Any, Final

from .engine import FileDigest, Listed, Opener, Progress, hash_files
from .hashing import TreeHasher

FORMAT: Final = "merkle-checkpoint-v1"


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

    def reusable(self, item: Listed) -> FileDigest | None:
        record = self.done.get(item.path)
        if record is None or record.get("identity") != _identity(item):
            return None
        try:
            return FileDigest(item.path, item.size, bytes.fromhex(record["root"]), base64.b64decode(record["leaves"]))
        except (ValueError, KeyError, TypeError):
            return None

    def record(self, item: Listed, digest: FileDigest) -> None:
        if digest.error is not None:
            return
        line = json.dumps({"path": item.path, "identity": _identity(item), "root": digest.root.hex(),
                           "leaves": base64.b64encode(digest.leaves).decode("ascii")})
        with self._lock:
            if self._broken:
                return
            try:
                self._append(line)
            except OSError as e:  # a checkpoint only saves time: losing it must not stop the job
                self._broken = True
                warnings.warn(f"{self.path}: cannot keep a checkpoint ({e.strerror or e}); going on without",
                              stacklevel=2)

    def _append(self, line: str) -> None:
        if self._file is None:
            fresh = not self.done
            self._file = open(self.path, "w" if fresh else "a", encoding="utf-8")  # noqa: SIM115
            if fresh:
                self._file.write(json.dumps(self.header) + "\n")
            else:
                self._file.write("\n")  # end a line torn by an earlier kill
        self._file.write(line + "\n")
        self._file.flush()

    def close(self, finished: bool) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if finished and os.path.exists(self.path):
            os.unlink(self.path)


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

    fresh = iter(hash_files(todo, hasher, chunk_size, jobs, progress, opener=opener, on_done=on_done))
    return [reused[i] if i in reused else next(fresh) for i in range(len(files))], state
