"""RFC 6962 section 2.1's Merkle Tree Hash, literally, with SHA-256: the oracle the range-proof and
partial-verification tests check merkle against (never merkle's own tree code)."""

import hashlib
from functools import cache

from merkle.tree import rfc6962
from merkle.tree.hasher import tree_hasher

SHA = tree_hasher("sha256")


def spec_mth(data: list[bytes]) -> bytes:
    """RFC 6962 section 2.1, literally, with SHA-256."""
    n = len(data)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + data[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + spec_mth(data[:k]) + spec_mth(data[k:])).digest()


def make_tree(n: int):
    data = [b"leaf %d of %d" % (i, n) for i in range(n)]
    leaves = [hashlib.sha256(b"\x00" + d).digest() for d in data]

    @cache
    def mth(lo, hi):
        return spec_mth(data[lo:hi])

    return data, leaves, mth, rfc6962.levels(SHA, leaves)
