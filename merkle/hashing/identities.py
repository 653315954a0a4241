"""Identity records: `build PATH --update OLD` takes the digest of a file
whose identity is unchanged since a build of PATH on this machine, instead of
reading it again.

The records decide which digest goes into a manifest that may be signed, so
they follow the checkpoints' rules (merkle.hashing.checkpoint), whose code
they reuse:

1. They are read only for `--update`; `verify` never reads them.
2. They live in the user's private directory (merkle.source.userdir), never
   beside OLD or the output: a sidecar next to a manifest could be written by
   whoever can write that folder.  Default `$MERKLE_IDENTITIES`, else
   `$XDG_CACHE_HOME/merkle/identities`, else `~/.cache/merkle/identities`.
3. Every line is authenticated (HMAC-SHA256 under the directory's key, bound
   to the job: the tree's real path, algorithm and chunk size).  A line
   planted, damaged, or copied from another tree or parameters does not
   verify and is skipped: its file is hashed.
4. A record is reused for a file only if the file's identity now (device,
   inode, size, mtime_ns, ctime_ns, from the walk's fresh lstat) is exactly
   the recorded one, and OLD lists the file with the recorded root.  The
   recorded identity is the one the engine checked on the open descriptor
   before and after reading the bytes hashed, so a file changed during that
   build was refused then, not recorded.
5. A file whose ctime is less than RACY_NS before the build started is
   hashed but not recorded (git's "racily clean" entries): timestamps come
   from a coarse clock, and a same-size rewrite in the same tick as the read
   would leave the identity unchanged.
6. At the end of the build every reused file is looked at again (lstat):
   one whose identity moved since it was listed changed while the build ran,
   and the build fails naming it, nothing written, rather than keep the root
   of bytes it no longer holds.

OLD only narrows what is reused: every reused digest comes from this user's
authenticated records, never from OLD's bytes, so OLD's signature is not
checked.  One file per job, `<directory>/<sha256 of the job>.checkpoint`,
rewritten whole by each successful build (header, then one line of records).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from merkle.errors import CheckpointWarning
from merkle.hashing.checkpoint import Checkpoint, Job, job
from merkle.hashing.engine import FileDigest
from merkle.source.readers import Listed
from merkle.source.userdir import cache_dir
from merkle.tree import rfc6962
from merkle.tree.hasher import tree_hasher

RACY_NS: Final = 2_000_000_000
"""A file changed this recently when a build starts is not recorded (rule 5):
more than the coarsest timestamp tick of a local file system (FAT: 2 s)."""


def default_dir() -> str:
    return cache_dir("MERKLE_IDENTITIES", "identities")


def identities_job(root: str, algorithm: str, chunk_size: int) -> Job:
    return job("identities", root, None, algorithm=algorithm, chunk_size=chunk_size)


class Identities(Checkpoint):
    """The identity records of one tree, job and run: hands back the digests
    still valid (when `update` names OLD's roots) and collects every file's
    record for `save`.  A build checkpoint `inner`, if any, is consulted and
    fed as well, so the engine sees one state.  Open it with `open_for`; end
    it with `save` (the build succeeded) or `keep` (it did not: what the
    file held is kept, read with --update, else emptied by `open_for`)."""

    KEPT = "identity record"
    old: Mapping[str, bytes] = {}
    inner: Checkpoint | None = None
    started_ns: int = 0
    reused_files: int = 0
    reused_bytes: int = 0
    _hasher_name: str = ""
    _records: dict[str, tuple[str, Sequence[Any], bytes, bytes]]
    _reused: list[Listed]

    @property
    def reading(self) -> bool:
        return bool(self.done) or (self.inner is not None and self.inner.reading)

    @classmethod
    def open_for(
        cls,
        root: str,
        algorithm: str,
        chunk_size: int,
        old: Mapping[str, bytes] | None,
        inner: Checkpoint | None,
        directory: str | None = None,
    ) -> Identities | None:
        """None (with a CheckpointWarning) when the private directory cannot
        be used: the build goes on, hashing everything."""
        started = time.time_ns()
        state = cls.open(identities_job(root, algorithm, chunk_size), old is not None, directory or default_dir())
        if not isinstance(state, Identities):
            return None
        state.old = old or {}
        state.inner = inner
        state.started_ns = started
        state._hasher_name = algorithm
        state._records = {}
        state._reused = []
        return state

    def reusable(self, item: Listed) -> FileDigest | None:
        digest = self._from_record(item) if self.done else None  # done: this tree's records, read for --update
        if digest is not None:
            self.reused_files += 1
            self.reused_bytes += digest.size
            self._records[item.path] = (item.path, self.done[item.path][1], digest.root, digest.leaves)
            with self._lock:
                self._reused.append(item)
            return digest
        if self.inner is not None and self.inner.reading:
            return self.inner.reusable(item)
        return None

    def _from_record(self, item: Listed) -> FileDigest | None:
        want = self.old.get(item.path)
        digest = super().reusable(item)
        if want is None or digest is None or digest.root != want:
            return None
        if len(digest.leaves) > len(digest.root):  # authenticated already; a cheap second look costs nothing
            if rfc6962.root_of_bytes(tree_hasher(self._hasher_name), digest.leaves) != digest.root:
                return None
        return digest

    def record(self, item: Listed, digest: FileDigest) -> None:
        if self.inner is not None:
            self.inner.record(item, digest)
        identity = getattr(item, "identity", None)
        if digest.error is not None or not isinstance(identity, tuple) or len(identity) != 5:
            return
        if identity[4] >= self.started_ns - RACY_NS:  # racily clean: hashed next time too
            return
        with self._lock:  # worker threads
            self._records[item.path] = (item.path, identity, digest.root, digest.leaves)

    def check_unchanged(self) -> None:
        """SourceError unless every file taken from a record is still the
        file it was when listed: one changed while the build ran would
        otherwise keep the root of bytes it no longer holds (a full build
        would have read it, or failed on it)."""
        from merkle.errors import SourceError
        from merkle.source.walk import identity

        for item in self._reused:
            listed = getattr(item, "identity", None)
            try:
                now = identity(os.lstat(getattr(item, "abspath", item.path)))
            except OSError:
                now = None
            if now != listed:
                raise SourceError("changed while the build ran (it was taken from its identity record)", item.path)

    def save(self) -> None:
        """The build succeeded: its records replace the file's."""
        from merkle.hashing.checkpoint import FORMAT, _record_json

        try:
            os.ftruncate(self._fd, 0)
            header = json.dumps({"format": FORMAT, "job": self.job.description}, sort_keys=True)
            records = "[" + ", ".join(map(_record_json, self._records.values())) + "]"
            self._append([header, records])
        except OSError as e:
            from merkle.hashing.checkpoint import _warn

            _warn(f"{self.path}: cannot keep identity records ({e.strerror or e}); --update will hash everything")
        finally:
            self._close()

    def keep(self) -> None:
        self._close()


def remember(
    root: str,
    algorithm: str,
    chunk_size: int,
    started_ns: int,
    verified: Iterable[tuple[Listed, FileDigest]],
) -> None:
    """A verify that passed records what it read (it never reads records):
    its files' identities and digests, for a later `--update`.  `started_ns`:
    time.time_ns() before the walk (rule 5).  Only for a tree whose records
    a build on this machine started: a verify of any other tree writes
    nothing (on 100,000 small files, writing them cost a quarter of the
    verify's time and half again its memory)."""
    where = os.path.join(default_dir(), identities_job(root, algorithm, chunk_size).name)
    if not os.path.exists(where):
        return
    import warnings

    with warnings.catch_warnings():
        # A directory it may not use is the next `build --update`'s to report: a verify needs no records.
        warnings.simplefilter("ignore", CheckpointWarning)
        state = Identities.open_for(root, algorithm, chunk_size, None, None)
    if state is None:
        return
    state.started_ns = started_ns
    for item, digest in verified:
        state.record(item, digest)
    state.save()
