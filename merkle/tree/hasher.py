"""Pure hashing: leaf and node hashes with RFC 6962 domain separation.

leaf = H(0x00 || data), node = H(0x01 || left || right), empty tree = H("").
With H = SHA-256 this is exactly RFC 6962's Merkle Tree Hash; with the default
H = BLAKE3 the tree has the same shape.  Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal, Protocol, get_args

import blake3

from merkle.errors import UnsupportedError

Algorithm = Literal["blake3", "sha256"]
ALGORITHMS: Final[tuple[str, ...]] = get_args(Algorithm)
DEFAULT_ALGORITHM: Final[Algorithm] = "blake3"

LEAF_PREFIX: Final = b"\x00"
NODE_PREFIX: Final = b"\x01"
DIGEST_SIZE: Final = 32


class Hasher(Protocol):
    def update(self, data: bytes | memoryview, /) -> object: ...
    def digest(self) -> bytes: ...


@dataclass(frozen=True)
class TreeHasher:
    """The hash function of one algorithm, with the tree's domain separation."""

    name: Algorithm
    new: Callable[[bytes], Hasher]
    code: int
    """The algorithm's number: in the leaf sidecar's header (docs/format.md,
    rule S1) and for the C extension's `alg` argument."""

    def leaf_hasher(self) -> Hasher:
        """A streaming hasher already fed the leaf prefix: update() it with a
        chunk's bytes (in as many pieces as convenient), then digest()."""
        return self.new(LEAF_PREFIX)

    def leaf(self, data: bytes | memoryview) -> bytes:
        h = self.new(LEAF_PREFIX)
        h.update(data)
        return h.digest()

    def node(self, left: bytes, right: bytes) -> bytes:
        return self.new(NODE_PREFIX + left + right).digest()

    def empty(self) -> bytes:
        return self.new(b"").digest()


_HASHERS: Final[dict[str, TreeHasher]] = {"blake3": TreeHasher("blake3", blake3.blake3, 1)}
"""The TreeHasher of each algorithm asked for so far: SHA-256 joins on first
use, as hashlib (OpenSSL) costs a default `merkle hash` more to import than
its whole run on a small file."""


def tree_hasher(algorithm: str) -> TreeHasher:
    """The TreeHasher for `algorithm`; UnsupportedError for anything else."""
    found = _HASHERS.get(algorithm)
    if found is not None:
        return found
    if algorithm == "sha256":
        import hashlib

        found = _HASHERS[algorithm] = TreeHasher("sha256", hashlib.sha256, 2)
        return found
    raise UnsupportedError(f"unsupported algorithm {algorithm!r} (expected one of: {', '.join(ALGORITHMS)})")
