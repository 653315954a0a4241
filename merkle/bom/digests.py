"""Whole-file SHA-256 and BLAKE3 in the same read as the Merkle tree (docs/bom.md B6).

A BLAKE3 manifest holds no whole-file digest: a file's root is a chunked
tree, which no `sha256sum` or `b3sum` reproduces.  `SameRead` is a
merkle.hashing.cluster.Cluster, so a build (`merkle.building.build_with`)
or a tree check (`merkle.verifying.tree.verify_with`) hands it the files as
it would hand them to a Dask cluster, and gets back exactly the roots and
leaf hashes the engine gives; while each file's bytes pass by, once, they
also feed a SHA-256 and a plain BLAKE3.  The engine's `digest_files` does
the reading (page-aligned buffers, every byte counted, one file per unit on
long-lived workers), so nothing here opens a file.

The cost: a file is read by one worker from start to end (a SHA-256 is
sequential), where the engine splits a large file across workers; the
SHA-256 itself runs at 1-2 GB/s per core with SHA-NI, slower than BLAKE3.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import blake3

from merkle.hashing.engine import FileDigest, digest_files
from merkle.report import Progress
from merkle.source.listing import Access
from merkle.source.readers import Listed
from merkle.tree import rfc6962
from merkle.tree.hasher import Algorithm, Hasher, TreeHasher, tree_hasher


@dataclass(frozen=True)
class Whole:
    """A file's whole-content digests, as `sha256sum` and `b3sum` print them (hex)."""

    sha256: str
    blake3: str


class _Tee:
    """One pass over a file's bytes: its chunk leaves (the tree), a SHA-256
    and a BLAKE3 of the whole.  `digest()` is the file's Merkle root."""

    def __init__(self, hasher: TreeHasher, chunk_size: int) -> None:
        self.hasher = hasher
        self.chunk_size = chunk_size
        self.leaves = bytearray()
        self.leaf: Hasher | None = None
        self.filled = 0
        self.sha256 = hashlib.sha256()
        self.blake3 = blake3.blake3()

    def update(self, data: bytes | memoryview, /) -> None:
        self.sha256.update(data)
        self.blake3.update(data)
        view = memoryview(data)
        while len(view):
            if self.leaf is None:
                self.leaf, self.filled = self.hasher.leaf_hasher(), 0
            take = min(len(view), self.chunk_size - self.filled)
            self.leaf.update(view[:take])
            self.filled += take
            view = view[take:]
            if self.filled == self.chunk_size:
                self.leaves += self.leaf.digest()
                self.leaf = None

    def finish(self) -> bytes:
        """The leaf hashes, the last (short) chunk's included."""
        if self.leaf is not None:
            self.leaves += self.leaf.digest()
            self.leaf = None
        return bytes(self.leaves)

    def digest(self) -> bytes:
        leaves = self.finish()
        return leaves if len(leaves) == len(self.hasher.empty()) else rfc6962.root_of_bytes(self.hasher, leaves)


class SameRead:
    """A Cluster that hashes on this machine through the engine's plain
    reads, keeping each file's whole-content digests (`whole`, by path)."""

    def __init__(self, jobs: int | None = None, progress: Progress | None = None) -> None:
        self.jobs = jobs
        self.progress = progress
        self.whole: dict[str, Whole] = {}
        self._lock = threading.Lock()

    def hash_files(
        self, files: Sequence[Listed], algorithm: Algorithm, chunk_size: int, access: Access
    ) -> list[FileDigest]:
        hasher = tree_hasher(algorithm)
        tees: dict[str, _Tee] = {}

        def new(src: Listed) -> Hasher:
            tee = _Tee(hasher, chunk_size)
            with self._lock:
                tees[src.path] = tee
            return tee

        out = []
        for d in digest_files(files, new, self.jobs, self.progress, opener=access.opener()):
            if d.error is not None:
                out.append(d)
                continue
            tee = tees[d.path]
            out.append(FileDigest(d.path, d.size, d.root, tee.finish()))
            self.whole[d.path] = Whole(tee.sha256.hexdigest(), tee.blake3.hexdigest())
        return out
