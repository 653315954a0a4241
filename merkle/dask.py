"""Hashing on a Dask cluster when one machine is not enough.

Small objects are batched into tasks of about BATCH_BYTES; large objects are
split into runs of chunks aligned to the object's chunk grid.  A task gets
only names, sizes and storage options (never bytes or open file systems),
reads through the same readers as the local engine, and returns leaf hashes.
The client puts each object's leaves back in order and computes its root,
so the manifest is byte for byte the one a single machine builds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from merkle.errors import SourceError, UsageError, install_hint
from merkle.format.manifest import chunk_count
from merkle.hashing.engine import FileDigest, Progress, hash_run
from merkle.source.readers import Listed, LocalFile, Reader
from merkle.source.walk import WalkedFile
from merkle.tree import rfc6962
from merkle.tree.hasher import DIGEST_SIZE, tree_hasher

BATCH_BYTES = 64 << 20
RANGE_CHUNKS = 64


def client_for(address: str) -> Any:
    try:
        from distributed import Client, LocalCluster
    except ImportError as e:
        raise UsageError(f"--dask needs dask.distributed: {install_hint('dask')}") from e
    if address == "local":
        return Client(LocalCluster(dashboard_address=None, processes=True))  # type: ignore[no-untyped-call]
    return Client(address)  # type: ignore[no-untyped-call]


def _reader(item: Listed, fs_spec: tuple[str, dict[str, Any]] | None) -> Reader:
    if fs_spec is None:
        assert isinstance(item, WalkedFile)
        return LocalFile.listed(item)
    import fsspec

    from merkle.source.remote import RemoteReader

    protocol, options = fs_spec
    return RemoteReader(fsspec.filesystem(protocol, **options), item)  # type: ignore[arg-type]


def hash_task(
    work: Sequence[tuple[Listed, int, int]], algorithm: str, chunk_size: int, fs_spec: tuple[str, dict[str, Any]] | None
) -> list[tuple[str, int, bytes | str]]:
    """On a worker: leaf hashes of chunk runs (object, first, count); an
    error is returned as text, naming the object."""
    hasher = tree_hasher(algorithm)
    view = memoryview(bytearray(min(chunk_size, 4 << 20)))
    out: list[tuple[str, int, bytes | str]] = []
    for item, first, count in work:
        try:
            leaves = hash_run(
                _reader(item, fs_spec),
                item,
                first,
                count,
                chunk_count(item.size, chunk_size),
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
        n = chunk_count(item.size, chunk_size)
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


def hash_on_cluster(
    client: Any,
    files: Sequence[Listed],
    algorithm: str,
    chunk_size: int,
    fs_spec: tuple[str, dict[str, Any]] | None,
) -> list[FileDigest]:
    futures = [
        client.submit(hash_task, task, algorithm, chunk_size, fs_spec, pure=False) for task in plan(files, chunk_size)
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
        n = chunk_count(item.size, chunk_size)
        if len(leaves) != n * DIGEST_SIZE:
            raise SourceError("a task lost chunks of this object", item.path)
        root = leaves if n == 1 else rfc6962.root_of_bytes(hasher, leaves)
        out.append(FileDigest(item.path, item.size, root, leaves))
    return out
