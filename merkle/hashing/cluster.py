"""Hashing somewhere else: the protocol a cluster implements (merkle.dask's
DaskCluster) so that building and verifying can hand it the files to hash
without knowing how it runs them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from merkle.hashing.engine import FileDigest
from merkle.source.listing import Access
from merkle.source.readers import Listed
from merkle.tree.hasher import Algorithm


class Cluster(Protocol):
    """Hashes listed objects on other machines.  The digests must be exactly
    what the local engine gives (roots and leaf hashes), in `files`' order,
    with an error (never a verdict) for an object that could not be read."""

    def hash_files(
        self, files: Sequence[Listed], algorithm: Algorithm, chunk_size: int, access: Access
    ) -> list[FileDigest]: ...
