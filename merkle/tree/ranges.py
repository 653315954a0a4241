"""Proofs that some leaves belong to a tree: a run of chunks against a file
root, one file entry against the dataset root.

A range proof for leaves [start, end) of an n-leaf tree lists, in a fixed
order, the roots of the maximal subtrees that lie wholly outside the range
(docs/format.md, rules R1-R4), left to right.  The walk is the RFC 6962
recursion's: at each node split at k (the largest power of two below the
width), left then right; a subtree wholly outside the range contributes its
root, one wholly inside contributes nothing (its leaves are recomputed from
data).  For a single leaf the hashes are those of the RFC 9162 audit path
(which lists them bottom up and is checked with RFC 9162's algorithm by
`rfc6962.verify_inclusion`).  The shape depends only
on (n, start, end), so a proof carries no directions and a proof for
another range or root cannot verify.  A root does not record its leaf count
(nor does RFC 9162's): callers take n from signed data (the file's size).
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from merkle.errors import FormatError, ProofError, UsageError
from merkle.tree import rfc6962
from merkle.tree.hasher import DIGEST_SIZE, TreeHasher

MAGIC: Final = b"MRKLPRF1"
_HEADER: Final = struct.Struct(">8sQQQI")  # magic, tree size, start, end, hash count
MAX_PROOF_HASHES: Final = 2 * 64


def _split(width: int) -> int:
    return 1 << ((width - 1).bit_length() - 1)


def _walk(size: int, start: int, end: int, visit_outside: Any, visit_inside: Any) -> Any:
    def node(lo: int, hi: int) -> Any:
        if hi <= start or lo >= end:
            return visit_outside(lo, hi)
        if start <= lo and hi <= end:
            return visit_inside(lo, hi)
        k = _split(hi - lo)
        return (node(lo, lo + k), node(lo + k, hi))

    return node(0, size)


@dataclass(frozen=True)
class RangeProof:
    """Leaves [start, end) of a tree of `size` leaves, and the outside hashes."""

    size: int
    start: int
    end: int
    hashes: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.end <= self.size:
            raise ProofError(f"range [{self.start}, {self.end}) is not inside a tree of {self.size} leaves")
        if len(self.hashes) > MAX_PROOF_HASHES or any(len(h) != DIGEST_SIZE for h in self.hashes):
            raise ProofError("proof hashes must be at most 128 digests of 32 bytes")

    def root(self, hasher: TreeHasher, leaves: Sequence[bytes]) -> bytes:
        """The root these leaf hashes and this proof imply; ProofError if the
        counts do not fit the shape (too few, too many hashes)."""
        if len(leaves) != self.end - self.start:
            raise ProofError(f"{len(leaves)} leaf hashes for a range of {self.end - self.start}")
        outside = iter(self.hashes)
        missing = ProofError(f"proof too short for range [{self.start}, {self.end}) of {self.size}")

        def take(lo: int, hi: int) -> bytes:
            h = next(outside, None)
            if h is None:
                raise missing
            return h

        def build(lo: int, hi: int) -> bytes:
            return rfc6962.root(hasher, leaves[lo - self.start : hi - self.start])

        def fold(shape: Any) -> bytes:
            if isinstance(shape, tuple):
                return hasher.node(fold(shape[0]), fold(shape[1]))
            return shape  # type: ignore[no-any-return]

        result = fold(_walk(self.size, self.start, self.end, take, build))
        if next(outside, None) is not None:
            raise ProofError(f"proof too long for range [{self.start}, {self.end}) of {self.size}")
        return result

    def verify(self, hasher: TreeHasher, leaves: Sequence[bytes], root: bytes) -> None:
        got = self.root(hasher, leaves)
        if got != root:
            raise ProofError(f"range proof gives root {got.hex()[:16]}..., want {root.hex()[:16]}...")

    # -- serialization (R4) -------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {"size": self.size, "start": self.start, "end": self.end, "hashes": [h.hex() for h in self.hashes]}

    @classmethod
    def from_dict(cls, doc: Any) -> RangeProof:
        if not isinstance(doc, dict) or set(doc) != {"size", "start", "end", "hashes"}:
            raise FormatError("range proof must have exactly size, start, end, hashes")
        ints = [doc[k] for k in ("size", "start", "end")]
        if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 1 << 64 for v in ints):
            raise FormatError("range proof size, start and end must be integers from 0 to 2^64-1 (R4)")
        hashes = doc["hashes"]
        if not isinstance(hashes, list) or not all(isinstance(h, str) and len(h) == 64 for h in hashes):
            raise FormatError("range proof hashes must be 64-digit hex strings")
        try:
            return cls(ints[0], ints[1], ints[2], tuple(bytes.fromhex(h) for h in hashes))
        except ValueError as e:
            raise FormatError("range proof hashes must be hex") from e

    def to_bytes(self) -> bytes:
        return _HEADER.pack(MAGIC, self.size, self.start, self.end, len(self.hashes)) + b"".join(self.hashes)

    @classmethod
    def from_bytes(cls, data: bytes) -> RangeProof:
        if len(data) < _HEADER.size:
            raise FormatError("range proof is truncated")
        magic, size, start, end, count = _HEADER.unpack_from(data)
        if magic != MAGIC:
            raise FormatError("not a merkle range proof (bad magic)")
        if count > MAX_PROOF_HASHES or len(data) != _HEADER.size + count * DIGEST_SIZE:
            raise FormatError("range proof length does not match its hash count")
        body = data[_HEADER.size :]
        return cls(size, start, end, tuple(body[i : i + DIGEST_SIZE] for i in range(0, len(body), DIGEST_SIZE)))

    def to_base64(self) -> str:
        return base64.b64encode(self.to_bytes()).decode("ascii")


def range_proof(hasher: TreeHasher, levels: Sequence[rfc6962.Level], start: int, end: int) -> RangeProof:
    """The proof for leaves [start, end) from a tree's stored levels."""
    size = len(levels[0])
    if not 0 <= start < end <= size:
        raise ValueError(f"range [{start}, {end}) is not inside a tree of {size} leaves")
    out: list[bytes] = []

    def outside(lo: int, hi: int) -> None:
        out.append(rfc6962.subtree_root(hasher, levels, lo, hi))

    _walk(size, start, end, outside, lambda lo, hi: None)
    return RangeProof(size, start, end, tuple(out))


def covering_chunks(offset: int, length: int, chunk_size: int, file_size: int) -> tuple[int, int]:
    """Chunks [first, last) that hold bytes [offset, offset + length)."""
    if length < 0 or offset < 0 or offset + length > file_size:
        # A question that cannot be asked, not a failed check: a usage error.
        raise UsageError(f"range [{offset}, {offset + length}) is outside the file's {file_size} signed bytes")
    if length == 0:
        return (offset // chunk_size, offset // chunk_size)
    return (offset // chunk_size, -(-(offset + length) // chunk_size))
