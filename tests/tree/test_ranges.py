"""Range proofs (merkle.tree.ranges, docs/format.md R1-R4): every range of trees of 1 to 64 leaves
against a spec-literal RFC 6962 Merkle Tree Hash (tests/support/spec.py) and the recursion written here, never
against the code under test; every malformed or mutated proof rejected."""

import hashlib
import itertools
import json
import os
import struct
from collections import Counter

import pytest
from support.spec import SHA, make_tree, spec_mth

from merkle.errors import FormatError, ProofError
from merkle.tree import rfc6962
from merkle.tree.ranges import RangeProof, range_proof


def spec_outside(n: int, start: int, end: int, mth) -> list[bytes]:
    """The outside subtree roots for [start, end), left to right, following
    the RFC 6962 recursion (docs/format.md R1-R4)."""

    def walk(lo, hi):
        if hi <= start or lo >= end:
            return [mth(lo, hi)]
        if start <= lo and hi <= end:
            return []
        k = 1
        while k * 2 < hi - lo:
            k *= 2
        return walk(lo, lo + k) + walk(lo + k, hi)

    return walk(0, n)


def spec_shape(n: int, start: int, end: int):
    """The tree above [start, end) as nested pairs: 'out' for an outside
    subtree, the width for an inside one."""

    def walk(lo, hi):
        if hi <= start or lo >= end:
            return "out"
        if start <= lo and hi <= end:
            return hi - lo
        k = 1
        while k * 2 < hi - lo:
            k *= 2
        return (walk(lo, lo + k), walk(lo + k, hi))

    return walk(0, n)


# -- range proofs ------------------------------------------------------------------


def test_every_range_of_trees_of_1_to_64_leaves_verifies_against_the_spec_root():
    for n in range(1, 65):
        _, leaves, mth, levels = make_tree(n)
        root = mth(0, n)
        for start in range(n):
            for end in range(start + 1, n + 1):
                p = range_proof(SHA, levels, start, end)
                assert (p.size, p.start, p.end) == (n, start, end)
                assert list(p.hashes) == spec_outside(n, start, end, mth), (n, start, end)
                p.verify(SHA, leaves[start:end], root)
                assert p.root(SHA, leaves[start:end]) == root


def test_single_leaf_proofs_hold_the_rfc9162_audit_path():
    for n in range(1, 65):
        _, leaves, mth, levels = make_tree(n)
        root = mth(0, n)
        for i in range(n):
            audit = rfc6962.inclusion_proof(levels, i)
            rfc6962.verify_inclusion(SHA, i, n, leaves[i], audit, root)
            p = range_proof(SHA, levels, i, i + 1)
            assert len(p.hashes) == len(audit)
            assert Counter(p.hashes) == Counter(audit)


def test_wrong_leaf_data_does_not_verify():
    _, leaves, mth, levels = make_tree(13)
    p = range_proof(SHA, levels, 3, 9)
    bad = list(leaves[3:9])
    bad[2] = hashlib.sha256(b"\x00other").digest()
    with pytest.raises(ProofError):
        p.verify(SHA, bad, mth(0, 13))


def sample_proofs():
    for n in (1, 2, 3, 5, 8, 13, 31, 64):
        _, leaves, mth, levels = make_tree(n)
        for start, end in {(0, 1), (0, n), (n - 1, n), (n // 3, max(n // 3 + 1, 2 * n // 3)), (n // 2, n // 2 + 1)}:
            if 0 <= start < end <= n:
                yield n, leaves, mth, range_proof(SHA, levels, start, end)


def test_json_and_binary_round_trips():
    count = 0
    for _, _, _, p in sample_proofs():
        assert RangeProof.from_dict(json.loads(json.dumps(p.to_dict()))) == p
        raw = p.to_bytes()
        assert raw[:8] == b"MRKLPRF1"
        assert len(raw) == 36 + 32 * len(p.hashes)  # header, then the digests only
        assert RangeProof.from_bytes(raw) == p
        import base64

        assert base64.b64decode(p.to_base64()) == raw
        count += 1
    assert count > 20


def _reject(p: RangeProof, leaves, root) -> None:
    with pytest.raises(ProofError):
        p.verify(SHA, leaves, root)


def test_proof_too_long_or_too_short_is_rejected():
    extra = hashlib.sha256(b"x").digest()
    for n, leaves, mth, p in sample_proofs():
        mine = leaves[p.start : p.end]
        _reject(RangeProof(n, p.start, p.end, p.hashes + (extra,)), mine, mth(0, n))
        _reject(RangeProof(n, p.start, p.end, (extra,) + p.hashes), mine, mth(0, n))
        if p.hashes:
            _reject(RangeProof(n, p.start, p.end, p.hashes[:-1]), mine, mth(0, n))
            _reject(RangeProof(n, p.start, p.end, p.hashes[1:]), mine, mth(0, n))
    with pytest.raises(ProofError):
        RangeProof(4, 0, 1, (extra,) * 129)  # more hashes than any tree can need
    with pytest.raises(ProofError):
        RangeProof(4, 0, 1, (b"short",))


def test_reordered_or_flipped_hashes_are_rejected():
    tried = 0
    for n, leaves, mth, p in sample_proofs():
        mine = leaves[p.start : p.end]
        for i, j in itertools.combinations(range(len(p.hashes)), 2):
            h = list(p.hashes)
            h[i], h[j] = h[j], h[i]
            _reject(RangeProof(n, p.start, p.end, tuple(h)), mine, mth(0, n))
            tried += 1
        for i in range(len(p.hashes)):
            for bit in (0, 7 * 8 + 3, 255):
                h = [bytearray(x) for x in p.hashes]
                h[i][bit // 8] ^= 1 << (bit % 8)
                _reject(RangeProof(n, p.start, p.end, tuple(bytes(x) for x in h)), mine, mth(0, n))
                tried += 1
    assert tried > 50


def test_proof_for_another_range_size_or_root_is_rejected():
    for n in range(2, 17):
        _, leaves, mth, levels = make_tree(n)
        root = mth(0, n)
        ranges = [(s, e) for s in range(n) for e in range(s + 1, n + 1)]
        for s, e in ranges:
            p = range_proof(SHA, levels, s, e)
            # the same leaves and hashes, claimed for another position of the same width
            for s2 in range(0, n - (e - s) + 1):
                if s2 != s:
                    _reject(RangeProof(n, s2, s2 + e - s, p.hashes), leaves[s:e], root)
            # another tree size: refused whenever that size gives the range
            # another shape (a root does not commit to its size: where the
            # shapes agree the size must come from signed data, see below)
            for n2 in range(e, 2 * n + 2):
                if n2 != n and spec_shape(n2, s, e) != spec_shape(n, s, e):
                    _reject(RangeProof(n2, s, e, p.hashes), leaves[s:e], root)
            # another root: the same leaves in a tree where one outside leaf differs
            if (s, e) != (0, n):
                outside = 0 if s > 0 else n - 1
                other = [b"leaf %d of %d" % (i, n) for i in range(n)]
                other[outside] = b"changed"
                _reject(p, leaves[s:e], spec_mth(other))


def test_leaf_count_mismatch_is_rejected():
    _, leaves, mth, levels = make_tree(10)
    p = range_proof(SHA, levels, 2, 6)
    with pytest.raises(ProofError):
        p.verify(SHA, leaves[2:7], mth(0, 10))
    with pytest.raises(ProofError):
        p.verify(SHA, leaves[2:5], mth(0, 10))
    with pytest.raises(ProofError):
        RangeProof(10, 6, 6, p.hashes)  # empty range
    with pytest.raises(ProofError):
        RangeProof(10, 2, 11, p.hashes)  # beyond the tree


def test_bad_binary_and_json_proofs_are_rejected():
    _, leaves, mth, levels = make_tree(21)
    raw = range_proof(SHA, levels, 5, 9).to_bytes()
    for bad in (
        b"",
        raw[:10],
        raw[:35],
        raw[:-1],
        raw[:-32],
        raw + b"\x00",
        raw + bytes(32),
        os.urandom(len(raw)),
        b"XXXXXXXX" + raw[8:],
        raw[:8] + os.urandom(len(raw) - 8),
    ):
        with pytest.raises((FormatError, ProofError)):
            RangeProof.from_bytes(bad)
    with pytest.raises(FormatError, match="magic"):
        RangeProof.from_bytes(b"MRKLPRF2" + raw[8:])
    # a count field that lies about the number of hashes
    with pytest.raises(FormatError):
        RangeProof.from_bytes(raw[:32] + struct.pack(">I", 1000) + raw[36:])
    doc = range_proof(SHA, levels, 5, 9).to_dict()
    for bad_doc in (
        [],
        {**doc, "extra": 1},
        {k: v for k, v in doc.items() if k != "hashes"},
        {**doc, "size": True},
        {**doc, "start": "5"},
        {**doc, "hashes": ["00" * 31]},
        {**doc, "hashes": ["zz" * 32]},
        {**doc, "hashes": "00" * 32},
        # found by tests/format/test_fuzz.py: counts past u64 (R4) parsed, then to_bytes raised struct.error
        {**doc, "size": 2**64},
        {**doc, "size": 2**64, "end": 2**64 - 1},
        {**doc, "size": 10**20 - 1},
        {**doc, "start": -1},
    ):
        with pytest.raises((FormatError, ProofError)):
            RangeProof.from_dict(bad_doc)
