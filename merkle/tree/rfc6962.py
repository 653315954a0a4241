"""Pure Merkle tree code: roots, levels, proofs and proof checking.

The tree is RFC 6962 / RFC 9162's: for n > 1 leaves the left subtree holds the
largest power of two of leaves smaller than n.  Building it bottom up, pairing
neighbours and carrying an odd last node up unchanged, gives the same tree, so
`levels()[k][i]` is the root of leaves [i * 2**k, min((i + 1) * 2**k, n)).

Proof checking follows RFC 9162 sections 2.1.3.2 (inclusion) and 2.1.4.2
(consistency) step by step.  Every hash handed in must be exactly the digest
size; anything else is rejected, never padded or truncated.
"""

from __future__ import annotations

from collections.abc import Sequence

from merkle._native import bulk, native
from merkle.errors import ProofError
from merkle.tree.hasher import DIGEST_SIZE, TreeHasher

Level = list[bytes]


def chunk_count(size: int, chunk_size: int) -> int:
    """Number of chunks (leaves) of a file: 0 for an empty file, the last may be short."""
    return -(-size // chunk_size)


def split_leaves(leaves: bytes | bytearray | memoryview, size: int = DIGEST_SIZE) -> list[bytes]:
    """Cut a concatenation of leaf hashes into a list of hashes."""
    if len(leaves) % size:
        raise ValueError(f"leaf bytes: length {len(leaves)} is not a multiple of {size}")
    mv = memoryview(leaves)
    return [bytes(mv[i : i + size]) for i in range(0, len(mv), size)]


def _parent_level(hasher: TreeHasher, level: Sequence[bytes]) -> Level:
    node = hasher.node
    up = [node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
    if len(level) % 2:
        up.append(level[-1])
    return up


def root(hasher: TreeHasher, leaves: Sequence[bytes]) -> bytes:
    """The Merkle Tree Hash of a list of leaf hashes (H("") when empty)."""
    if not leaves:
        return hasher.empty()
    level = list(leaves)
    while len(level) > 1:
        level = _parent_level(hasher, level)
    return level[0]


class RootBuilder:
    """The root of leaves fed one at a time, in O(log n) memory: a stack of
    perfect-subtree roots, one per set bit of the count so far."""

    def __init__(self, hasher: TreeHasher) -> None:
        self._hasher = hasher
        self._stack: list[bytes] = []
        self.count = 0

    def add(self, leaf_hash: bytes) -> None:
        node = self._hasher.node
        h = leaf_hash
        i = self.count
        while i & 1:  # each trailing one bit completes a perfect subtree
            h = node(self._stack.pop(), h)
            i >>= 1
        self._stack.append(h)
        self.count += 1

    def root(self) -> bytes:
        if not self._stack:
            return self._hasher.empty()
        node = self._hasher.node
        r = self._stack[-1]
        for left in reversed(self._stack[:-1]):
            r = node(left, r)
        return r


def root_of_bytes(hasher: TreeHasher, leaves: bytes | bytearray | memoryview) -> bytes:
    """The root over a concatenation of leaf hashes, without a list of them
    (native when the C extension is built: ext/_merkle.c root_of_leaves)."""
    if native is not None:
        if len(leaves) % DIGEST_SIZE:
            raise ValueError(f"leaf bytes: length {len(leaves)} is not a multiple of {DIGEST_SIZE}")
        root: bytes = native.root_of_leaves(hasher.code, leaves)
        return root
    return root_of_bytes_pure(hasher, leaves)


def chunk_leaves(hasher: TreeHasher, data: bytes | bytearray | memoryview, chunk_size: int) -> bytes:
    """The leaf hashes of `data` cut into chunks, concatenated (native, the
    GIL released, when the C extension is built and its code for this CPU is
    the faster: ext/_merkle.c chunk_leaves, merkle._native.bulk)."""
    ext = bulk(hasher.code)
    if ext is not None:
        leaves: bytes = ext.chunk_leaves(hasher.code, data, chunk_size)
        return leaves
    return chunk_leaves_pure(hasher, data, chunk_size)


def chunk_leaves_pure(hasher: TreeHasher, data: bytes | bytearray | memoryview, chunk_size: int) -> bytes:
    """The pure twin of chunk_leaves."""
    view = memoryview(data)
    return b"".join(hasher.leaf(view[i : i + chunk_size]) for i in range(0, len(view), chunk_size))


def content_root(hasher: TreeHasher, data: bytes | bytearray | memoryview, chunk_size: int) -> bytes:
    """The root of a whole file's bytes held in memory (the empty tree's for
    no bytes), as the engine computes it from the file."""
    leaves = chunk_leaves(hasher, data, chunk_size)
    if len(leaves) == DIGEST_SIZE:
        return leaves
    return root_of_bytes(hasher, leaves) if leaves else hasher.empty()


def root_of_bytes_pure(hasher: TreeHasher, leaves: bytes | bytearray | memoryview) -> bytes:
    """The pure twin of root_of_bytes."""
    if len(leaves) % DIGEST_SIZE:
        raise ValueError(f"leaf bytes: length {len(leaves)} is not a multiple of {DIGEST_SIZE}")
    builder = RootBuilder(hasher)
    mv = memoryview(leaves)
    for i in range(0, len(mv), DIGEST_SIZE):
        builder.add(bytes(mv[i : i + DIGEST_SIZE]))
    return builder.root()


def levels(hasher: TreeHasher, leaves: Sequence[bytes]) -> list[Level]:
    """Every level of the tree, leaves first, root last (one level when n <= 1);
    built natively for larger trees when the C extension is there."""
    if native is not None and len(leaves) > 64:
        return [split_leaves(level) for level in flat_levels(hasher, b"".join(leaves))]
    return levels_pure(hasher, leaves)


def levels_pure(hasher: TreeHasher, leaves: Sequence[bytes]) -> list[Level]:
    """The pure twin of levels."""
    out = [list(leaves)]
    while len(out[-1]) > 1:
        out.append(_parent_level(hasher, out[-1]))
    return out


def flat_levels(hasher: TreeHasher, leaves: bytes) -> list[bytes]:
    """`levels` over concatenated leaf hashes, each level concatenated: no
    object per node (a million-file dataset tree); natively when the C
    extension is there."""
    if native is not None:
        out: list[bytes] = native.levels(hasher.code, leaves)
        return out
    return [b"".join(level) for level in levels_pure(hasher, split_leaves(leaves))]


def inclusion_proof_flat(tree: Sequence[bytes], index: int, size: int = DIGEST_SIZE) -> list[bytes]:
    """`inclusion_proof` over `flat_levels`."""
    count = len(tree[0]) // size
    if not 0 <= index < count:
        raise ValueError(f"leaf index {index} out of range for tree size {count}")
    proof = []
    for level in tree[:-1]:
        sibling = (index ^ 1) * size
        if sibling < len(level):
            proof.append(level[sibling : sibling + size])
        index >>= 1
    return proof


def inclusion_proof(tree: Sequence[Level], index: int) -> list[bytes]:
    """The audit path of leaf `index`, bottom up (RFC 9162 2.1.3.1)."""
    size = len(tree[0])
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} out of range for tree size {size}")
    proof = []
    for level in tree[:-1]:
        sibling = index ^ 1
        if sibling < len(level):
            proof.append(level[sibling])
        index >>= 1
    return proof


def subtree_root(hasher: TreeHasher, tree: Sequence[Level], start: int, end: int) -> bytes:
    """MTH of leaves [start, end), taken from the stored levels when aligned."""
    width = end - start
    k = (width - 1).bit_length()  # smallest k with 2**k >= width
    if start % (1 << k) == 0 and (width == 1 << k or end == len(tree[0])):
        return tree[k][start >> k]
    split = 1 << ((width - 1).bit_length() - 1)
    return hasher.node(subtree_root(hasher, tree, start, start + split), subtree_root(hasher, tree, start + split, end))


def consistency_proof(hasher: TreeHasher, tree: Sequence[Level], size1: int) -> list[bytes]:
    """The proof that the first `size1` leaves are a prefix (RFC 9162 2.1.4.1)."""
    size2 = len(tree[0])
    if not 0 < size1 <= size2:
        raise ValueError(f"consistency: size1 {size1} must be in 1..{size2}")
    proof: list[bytes] = []

    def subproof(m: int, start: int, end: int, complete: bool) -> None:
        n = end - start
        if m == n:
            if not complete:
                proof.append(subtree_root(hasher, tree, start, end))
            return
        k = 1 << ((n - 1).bit_length() - 1)
        if m <= k:
            subproof(m, start, start + k, complete)
            proof.append(subtree_root(hasher, tree, start + k, end))
        else:
            subproof(m - k, start + k, end, False)
            proof.append(subtree_root(hasher, tree, start, start + k))

    subproof(size1, 0, size2, True)
    return proof


def _check_hash(what: str, value: bytes) -> None:
    if len(value) != DIGEST_SIZE:
        raise ProofError(f"{what} is {len(value)} bytes, want {DIGEST_SIZE}")


def root_from_inclusion(hasher: TreeHasher, index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes]) -> bytes:
    """The root that `proof` implies for leaf `index` of a tree of `size` leaves."""
    # RFC 9162 2.1.3.2, steps numbered as there.
    if not 0 <= index < size:  # 1.
        raise ProofError(f"leaf index {index} out of range for tree size {size}")
    _check_hash("leaf hash", leaf_hash)
    fn, sn, r = index, size - 1, leaf_hash  # 2., 3.
    for i, p in enumerate(proof):  # 4.
        _check_hash(f"proof[{i}]", p)
        if sn == 0:  # 4a.
            raise ProofError(f"proof too long: {len(proof)} hashes for index {index} of {size}")
        if fn & 1 or fn == sn:  # 4b.
            r = hasher.node(p, r)
            if not fn & 1:
                while not (fn & 1 or fn == 0):
                    fn >>= 1
                    sn >>= 1
        else:  # 4c.
            r = hasher.node(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:  # 5.
        raise ProofError(f"proof too short: {len(proof)} hashes for index {index} of {size}")
    return r


def verify_inclusion(
    hasher: TreeHasher, index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Raise ProofError unless `proof` shows leaf `index` is in the tree `root`."""
    _check_hash("root", root)
    got = root_from_inclusion(hasher, index, size, leaf_hash, proof)
    if got != root:
        raise ProofError(f"inclusion proof gives root {got.hex()}, want {root.hex()}")


def verify_consistency(
    hasher: TreeHasher, size1: int, size2: int, root1: bytes, root2: bytes, proof: Sequence[bytes]
) -> None:
    """Raise ProofError unless tree (size1, root1) is a prefix of (size2, root2)."""
    # RFC 9162 2.1.4.2, steps numbered as there.  size1 = 0 is refused: a
    # proof from the empty tree proves nothing.  Equal sizes only compare the
    # roots (as RFC 9162 and its reference vectors do); every hash that
    # enters a computation must be exactly the digest size.
    if size1 == 0 or size1 > size2:
        raise ProofError(f"consistency: size1 {size1} must be in 1..{size2}")
    if size1 == size2:
        if proof:
            raise ProofError("consistency: sizes are equal but the proof is not empty")
        if root1 != root2:
            raise ProofError("consistency: sizes are equal but the roots differ")
        return
    _check_hash("root1", root1)
    _check_hash("root2", root2)
    for i, p in enumerate(proof):
        _check_hash(f"proof[{i}]", p)
    path = list(proof)
    if size1 & (size1 - 1) == 0:  # 2. size1 is a power of two
        path.insert(0, root1)
    if not path:
        raise ProofError("consistency: empty proof")
    fn, sn = size1 - 1, size2 - 1  # 3., 4.
    while fn & 1:  # 5.
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]  # 6.
    for c in path[1:]:  # 7.
        if sn == 0:  # 7a.
            raise ProofError("consistency: proof too long")
        if fn & 1 or fn == sn:  # 7b.
            fr = hasher.node(c, fr)
            sr = hasher.node(c, sr)
            if not fn & 1:
                while not (fn & 1 or fn == 0):
                    fn >>= 1
                    sn >>= 1
        else:  # 7c.
            sr = hasher.node(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:  # 8.
        raise ProofError("consistency: proof too short")
    if fr != root1 or sr != root2:
        raise ProofError("consistency: proof does not match the roots")
