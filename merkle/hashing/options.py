"""How hashing runs: threads, progress, checkpoints, a cluster.  None of it
changes a digest, so none of it is recorded in a manifest."""

from __future__ import annotations

from dataclasses import dataclass

from merkle.errors import UsageError
from merkle.hashing.cluster import Cluster
from merkle.report import Progress


@dataclass(frozen=True)
class HashOptions:
    """`jobs` worker threads (default: one per core; more for object
    stores); `progress` counters to bump.  With `checkpoint`, finished
    files are recorded as they complete in a checkpoint in the user's
    private directory (merkle.hashing.checkpoint), kept if the run fails and
    deleted once it succeeds; with `resume` (which implies `checkpoint`), a
    run over the same source with the same parameters takes the files such a
    checkpoint holds whose identity is unchanged (`progress.resumed_files`,
    `resumed_bytes`); without it no checkpoint is read.  With `cluster`
    (merkle.dask.DaskCluster(client)), hashing runs there and keeps no
    checkpoint; the digests are the same."""

    jobs: int | None = None
    progress: Progress | None = None
    checkpoint: bool = False
    resume: bool = False
    cluster: Cluster | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.checkpoint, bool) or not isinstance(self.resume, bool):
            raise UsageError(
                "checkpoint and resume take True or False: checkpoints are kept in a private "
                "per-user directory ($MERKLE_CHECKPOINTS), never at a path given"
            )
        if self.resume and self.cluster is not None:
            raise UsageError("resume: hashing on a cluster keeps no checkpoint")

    @property
    def keeps_checkpoint(self) -> bool:
        return (self.checkpoint or self.resume) and self.cluster is None
