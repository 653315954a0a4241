"""Hashing on a Dask cluster when one machine is not enough.

`DaskCluster(client)` is a merkle.hashing.cluster.Cluster: pass it as
`cluster=` to `merkle.build` or `merkle.verify`.  Small objects are batched
into tasks of about BATCH_BYTES; large objects are split into runs of chunks
aligned to the object's chunk grid.  A task gets only names, sizes and how
to open them (merkle.source.listing.Access: never bytes or open file
systems), reads through the same readers as the local engine, and returns
leaf hashes.  The client puts each object's leaves back in order and
computes its root, so the manifest is byte for byte the one a single
machine builds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from merkle.errors import SourceError, UsageError, install_hint, option
from merkle.hashing.engine import FileDigest, hash_run
from merkle.report import Progress
from merkle.source.listing import Access
from merkle.source.readers import Listed
from merkle.tree import rfc6962
from merkle.tree.hasher import DIGEST_SIZE, Algorithm, tree_hasher

BATCH_BYTES = 64 << 20
RANGE_CHUNKS = 64


class DaskCluster:
    """Hashing on the cluster a dask.distributed Client is connected to."""

    def __init__(self, client: Any) -> None:
        self.client = client

    @classmethod
    def connect(cls, address: str) -> DaskCluster:
        """A cluster at a scheduler `address`, or "local": a LocalCluster of
        worker processes on this machine."""
        try:
            from distributed import Client, LocalCluster
        except ImportError as e:
            raise UsageError(f"{option('dask')} needs dask.distributed: {install_hint('dask')}") from e
        if address == "local":
            return cls(Client(LocalCluster(dashboard_address=None, processes=True)))  # type: ignore[no-untyped-call]
        return cls(Client(address))  # type: ignore[no-untyped-call]

    def hash_files(
        self, files: Sequence[Listed], algorithm: Algorithm, chunk_size: int, access: Access
    ) -> list[FileDigest]:
        futures = [
            self.client.submit(hash_task, task, algorithm, chunk_size, access, pure=False)
            for task in plan(files, chunk_size)
        ]
        parts: dict[str, dict[int, bytes]] = {}
        errors: dict[str, str] = {}
        for future in futures:
            for path, first, result in future.result():
                if isinstance(result, str):
                    errors.setdefault(path, result)
                else:
                    parts.setdefault(path, {})[first] = result
        hasher = tree_hasher(algorithm)
        out = []
        for item in files:
            if item.path in errors:
                out.append(FileDigest(item.path, item.size, error=SourceError(errors[item.path], item.path)))
                continue
            leaves = b"".join(parts[item.path][k] for k in sorted(parts.get(item.path, {})))
            n = rfc6962.chunk_count(item.size, chunk_size)
            if len(leaves) != n * DIGEST_SIZE:
                raise SourceError("a task lost chunks of this object", item.path)
            root = leaves if n == 1 else rfc6962.root_of_bytes(hasher, leaves)
            out.append(FileDigest(item.path, item.size, root, leaves))
        return out


def hash_task(
    work: Sequence[tuple[Listed, int, int]], algorithm: Algorithm, chunk_size: int, access: Access
) -> list[tuple[str, int, bytes | str]]:
    """On a worker: leaf hashes of chunk runs (object, first, count); an
    error is returned as text, naming the object."""
    hasher = tree_hasher(algorithm)
    view = memoryview(bytearray(min(chunk_size, 4 << 20)))
    opener = access.opener()
    out: list[tuple[str, int, bytes | str]] = []
    for item, first, count in work:
        try:
            leaves = hash_run(
                opener(item),
                item,
                first,
                count,
                rfc6962.chunk_count(item.size, chunk_size),
                hasher,
                chunk_size,
                view,
                Progress(),
            )
            out.append((item.path, first, leaves))
        except SourceError as e:
            out.append((item.path, first, e.message))
    return out


def plan(files: Sequence[Listed], chunk_size: int) -> list[list[tuple[Listed, int, int]]]:
    """Tasks: batches of whole small objects, or runs of a large one."""
    tasks: list[list[tuple[Listed, int, int]]] = []
    batch: list[tuple[Listed, int, int]] = []
    batch_bytes = 0
    for item in files:
        n = rfc6962.chunk_count(item.size, chunk_size)
        if n <= RANGE_CHUNKS:
            batch.append((item, 0, n))
            batch_bytes += item.size
            if batch_bytes >= BATCH_BYTES:
                tasks.append(batch)
                batch, batch_bytes = [], 0
        else:
            tasks.extend([[(item, first, min(RANGE_CHUNKS, n - first))] for first in range(0, n, RANGE_CHUNKS)])
    if batch:
        tasks.append(batch)
    return tasks
