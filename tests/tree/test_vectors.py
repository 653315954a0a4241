"""The proof engine and hash functions against published vectors and against a
spec-literal RFC 6962 implementation written here.

Vectors are read in place from ../shared/vectors/ (tests/support/vectors.py).  The
rfc6962/ probes come from transparency-dev/merkle; blake3.json from the BLAKE3
team.  The spec-literal code below is RFC 6962 section 2.1 transcribed: MTH,
PATH and PROOF/SUBPROOF, recursive, over the data entries themselves.
"""

from __future__ import annotations

import base64
import hashlib
import json
from functools import cache
from pathlib import Path

import blake3
import pytest
from support.vectors import VECTORS, readme_leaves_and_roots

import merkle
from merkle.errors import ProofError
from merkle.tree import rfc6962
from merkle.tree.hasher import tree_hasher

RFC = VECTORS / "rfc6962"

SHA = tree_hasher("sha256")
B3 = tree_hasher("blake3")


# -- spec-literal RFC 6962 section 2.1 ---------------------------------------


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _k(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


@cache
def spec_mth(d: tuple[bytes, ...], h=_sha256) -> bytes:
    n = len(d)
    if n == 0:
        return h(b"")
    if n == 1:
        return h(b"\x00" + d[0])
    k = _k(n)
    return h(b"\x01" + spec_mth(d[:k], h) + spec_mth(d[k:], h))


def spec_path(m: int, d: tuple[bytes, ...]) -> list[bytes]:
    n = len(d)
    if n == 1:
        assert m == 0
        return []
    k = _k(n)
    if m < k:
        return spec_path(m, d[:k]) + [spec_mth(d[k:])]
    return spec_path(m - k, d[k:]) + [spec_mth(d[:k])]


def spec_proof(m: int, d: tuple[bytes, ...]) -> list[bytes]:
    return _spec_subproof(m, d, True)


def _spec_subproof(m: int, d: tuple[bytes, ...], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [spec_mth(d)]
    k = _k(n)
    if m <= k:
        return _spec_subproof(m, d[:k], b) + [spec_mth(d[k:])]
    return _spec_subproof(m - k, d[k:], False) + [spec_mth(d[:k])]


def _data(n: int) -> tuple[bytes, ...]:
    # Distinct entries of varying length (including an empty one).
    return tuple(b"" if i == 0 else f"entry {i} ".encode() * (i % 5) + bytes([i]) for i in range(n))


def test_spec_literal_matches_the_published_roots():
    """Guard the reference itself: it reproduces the README's roots."""
    leaves, roots = readme_leaves_and_roots()
    for n, want in roots.items():
        assert spec_mth(tuple(leaves[:n])) == want


# -- rfc6962/ JSON probes ------------------------------------------------------


def _probe_files() -> list[Path]:
    files = sorted((RFC / "inclusion").rglob("*.json")) + sorted((RFC / "consistency").rglob("*.json"))
    return files


PROBES = _probe_files()


def test_probe_corpus_is_present():
    # A missing or moved vectors folder must fail, not silently run 0 params.
    assert len([p for p in PROBES if "/inclusion/" in p.as_posix()]) >= 90
    assert len([p for p in PROBES if "/consistency/" in p.as_posix()]) >= 90
    assert not any("subtree" in p.as_posix() for p in PROBES)


def _b64(s: str) -> bytes:
    return base64.b64decode(s, validate=True)


@pytest.mark.parametrize("probe", PROBES, ids=[p.relative_to(RFC).as_posix() for p in PROBES])
def test_rfc6962_probe(probe: Path):
    doc = json.loads(probe.read_text())
    proof = [_b64(p) for p in (doc["proof"] or [])]
    kind = probe.relative_to(RFC).parts[0]
    if kind == "inclusion":
        call = lambda: rfc6962.verify_inclusion(  # noqa: E731
            SHA, doc["leafIdx"], doc["treeSize"], _b64(doc["leafHash"]), proof, _b64(doc["root"])
        )
    else:
        assert kind == "consistency"
        call = lambda: rfc6962.verify_consistency(  # noqa: E731
            SHA, doc["size1"], doc["size2"], _b64(doc["root1"]), _b64(doc["root2"]), proof
        )
    if doc["wantErr"]:
        with pytest.raises(ProofError):
            call()
    else:
        assert call() is None


# -- README roots for n = 1..8 -------------------------------------------------


def test_readme_parse():
    leaves, roots = readme_leaves_and_roots()
    assert leaves[0] == b"" and leaves[1] == b"\x00" and leaves[-1] == bytes(range(0x60, 0x70))
    assert len(leaves) == 8
    assert sorted(roots) == list(range(1, 9))


@pytest.mark.parametrize("n", range(1, 9))
def test_published_roots(n: int):
    leaves, roots = readme_leaves_and_roots()
    assert rfc6962.root(SHA, [SHA.leaf(x) for x in leaves[:n]]) == roots[n]
    # The leaf layer streamed through leaf_hasher() gives the same leaves.
    streamed = []
    for x in leaves[:n]:
        h = SHA.leaf_hasher()
        for i in range(len(x)):
            h.update(x[i : i + 1])
        streamed.append(h.digest())
    assert rfc6962.root(SHA, streamed) == roots[n]


def test_published_root_one_leaf_is_one_chunk_file(tmp_path: Path):
    """n=1 (the single leaf "") is not a file: an empty file has zero chunks
    and root H("").  The meaningful file-level case is a file whose single
    chunk is a published leaf: its root is that leaf's hash."""
    leaves, roots = readme_leaves_and_roots()
    for i, x in enumerate(leaves[1:], 1):
        f = tmp_path / f"leaf{i}"
        f.write_bytes(x)
        assert merkle.hash_file(f, "sha256", 1024) == rfc6962.root(SHA, [SHA.leaf(x)]) == spec_mth((x,))
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert merkle.hash_file(empty, "sha256", 1024) == hashlib.sha256(b"").digest()


# -- generated proofs: verify, and every mutation is rejected -------------------


def _leaf_hashes(n: int) -> list[bytes]:
    return [SHA.leaf(x) for x in _data(n)]


def _flip(b: bytes, bit: int) -> bytes:
    out = bytearray(b)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def _bits_for(i: int, j: int) -> list[int]:
    # A spread of bit positions (first, last, both ends of every byte over the
    # cases) without 256 verifications per element.
    return sorted({0, 255, (i * 37 + j * 11) % 256, (i * 101 + j * 53 + 128) % 256})


SIZES = range(1, 41)


@pytest.mark.parametrize("size", SIZES)
def test_generated_inclusion_proofs(size: int):
    leaves = _leaf_hashes(size)
    levels = rfc6962.levels(SHA, leaves)
    root = rfc6962.root(SHA, leaves)
    assert levels[-1] == [root]
    other = SHA.leaf(b"not a leaf of this tree")
    flat = rfc6962.flat_levels(SHA, b"".join(leaves))  # prove_many's levels: no object per node
    assert flat == [b"".join(level) for level in levels]
    for index in range(size):
        proof = rfc6962.inclusion_proof(levels, index)
        assert rfc6962.inclusion_proof_flat(flat, index) == proof
        rfc6962.verify_inclusion(SHA, index, size, leaves[index], proof, root)
        assert rfc6962.root_from_inclusion(SHA, index, size, leaves[index], proof) == root
        for j, p in enumerate(proof):
            for bit in _bits_for(index, j):
                bad = proof[:j] + [_flip(p, bit)] + proof[j + 1 :]
                with pytest.raises(ProofError):
                    rfc6962.verify_inclusion(SHA, index, size, leaves[index], bad, root)
        for bit in _bits_for(index, 99):
            with pytest.raises(ProofError):
                rfc6962.verify_inclusion(SHA, index, size, _flip(leaves[index], bit), proof, root)
            with pytest.raises(ProofError):
                rfc6962.verify_inclusion(SHA, index, size, leaves[index], proof, _flip(root, bit))
        if proof:
            for cut in (proof[:-1], proof[1:]):
                with pytest.raises(ProofError):
                    rfc6962.verify_inclusion(SHA, index, size, leaves[index], cut, root)
        for longer in (proof + [other], proof + [root], [other] + proof, proof + (proof[-1:] or [leaves[index]])):
            with pytest.raises(ProofError):
                rfc6962.verify_inclusion(SHA, index, size, leaves[index], longer, root)
        # Truncated / extended hashes (not just lists) are refused too.
        if proof:
            with pytest.raises(ProofError):
                rfc6962.verify_inclusion(SHA, index, size, leaves[index], [proof[0][:-1]] + proof[1:], root)
            with pytest.raises(ProofError):
                rfc6962.verify_inclusion(SHA, index, size, leaves[index], [proof[0] + b"\x00"] + proof[1:], root)
        # The same proof claimed for another index or size.
        for wrong_index in {index ^ 1, index + 1, index - 1} - {index}:
            if 0 <= wrong_index < size and leaves[wrong_index] != leaves[index]:
                with pytest.raises(ProofError):
                    rfc6962.verify_inclusion(SHA, wrong_index, size, leaves[index], proof, root)
        # (A wrong tree size is not always detectable: where the audit path
        # has the same shape, e.g. leaf 0 of 21 vs 22 leaves, the root binds.)
        if len(spec_path(index, _data(size))) != len(spec_path(index, _data(size + 1))):
            with pytest.raises(ProofError):
                rfc6962.verify_inclusion(SHA, index, size + 1, leaves[index], proof, root)
    with pytest.raises(ProofError):
        rfc6962.verify_inclusion(SHA, size, size, leaves[0], [], root)


@pytest.mark.parametrize("size2", SIZES)
def test_generated_consistency_proofs(size2: int):
    leaves = _leaf_hashes(size2)
    levels = rfc6962.levels(SHA, leaves)
    root2 = rfc6962.root(SHA, leaves)
    other = SHA.leaf(b"not a node of this tree")
    for size1 in range(1, size2 + 1):
        root1 = rfc6962.root(SHA, leaves[:size1])
        proof = rfc6962.consistency_proof(SHA, levels, size1)
        rfc6962.verify_consistency(SHA, size1, size2, root1, root2, proof)
        if size1 == size2:
            assert proof == []
        for j, p in enumerate(proof):
            for bit in _bits_for(size1, j):
                bad = proof[:j] + [_flip(p, bit)] + proof[j + 1 :]
                with pytest.raises(ProofError):
                    rfc6962.verify_consistency(SHA, size1, size2, root1, root2, bad)
        for bit in _bits_for(size1, 77):
            with pytest.raises(ProofError):
                rfc6962.verify_consistency(SHA, size1, size2, _flip(root1, bit), root2, proof)
            with pytest.raises(ProofError):
                rfc6962.verify_consistency(SHA, size1, size2, root1, _flip(root2, bit), proof)
        if proof:
            for cut in (proof[:-1], proof[1:]):
                with pytest.raises(ProofError):
                    rfc6962.verify_consistency(SHA, size1, size2, root1, root2, cut)
            with pytest.raises(ProofError):
                rfc6962.verify_consistency(SHA, size1, size2, root1, root2, [proof[0][:-1]] + proof[1:])
        for longer in (proof + [other], [other] + proof, proof + [root2], [root1] + proof):
            with pytest.raises(ProofError):
                rfc6962.verify_consistency(SHA, size1, size2, root1, root2, longer)
        # The proof for size1 does not prove another first size.
        for wrong in (size1 - 1, size1 + 1):
            if 1 <= wrong <= size2:
                with pytest.raises(ProofError):
                    rfc6962.verify_consistency(SHA, wrong, size2, root1, root2, proof)
        with pytest.raises(ProofError):
            rfc6962.verify_consistency(SHA, 0, size2, SHA.empty(), root2, proof)


def test_every_bit_flip_rejected_exhaustively():
    """All 256 bit positions of every proof hash, for a few shapes."""
    for size, index in ((7, 6), (13, 4), (32, 17), (40, 39)):
        leaves = _leaf_hashes(size)
        levels = rfc6962.levels(SHA, leaves)
        root = rfc6962.root(SHA, leaves)
        proof = rfc6962.inclusion_proof(levels, index)
        for j in range(len(proof)):
            for bit in range(256):
                bad = proof[:j] + [_flip(proof[j], bit)] + proof[j + 1 :]
                with pytest.raises(ProofError):
                    rfc6962.verify_inclusion(SHA, index, size, leaves[index], bad, root)
    for size1, size2 in ((3, 7), (6, 13), (16, 40)):
        leaves = _leaf_hashes(size2)
        levels = rfc6962.levels(SHA, leaves)
        root1, root2 = rfc6962.root(SHA, leaves[:size1]), rfc6962.root(SHA, leaves)
        proof = rfc6962.consistency_proof(SHA, levels, size1)
        for j in range(len(proof)):
            for bit in range(256):
                bad = proof[:j] + [_flip(proof[j], bit)] + proof[j + 1 :]
                with pytest.raises(ProofError):
                    rfc6962.verify_consistency(SHA, size1, size2, root1, root2, bad)


# -- RFC 6962 cross-check, sizes 0..70 -----------------------------------------


@pytest.mark.parametrize("n", range(0, 71))
def test_matches_spec_literal_rfc6962(n: int):
    d = _data(n)
    leaves = [SHA.leaf(x) for x in d]
    assert rfc6962.root(SHA, leaves) == spec_mth(d)
    if n == 0:
        assert rfc6962.root(SHA, []) == hashlib.sha256(b"").digest()
        return
    levels = rfc6962.levels(SHA, leaves)
    assert levels[-1] == [spec_mth(d)]
    for m in range(n):
        assert rfc6962.inclusion_proof(levels, m) == spec_path(m, d), (m, n)
    for m in range(1, n + 1):
        assert rfc6962.consistency_proof(SHA, levels, m) == spec_proof(m, d), (m, n)
        # and the spec's own proof verifies with merkle's checker
        rfc6962.verify_consistency(SHA, m, n, spec_mth(d[:m]), spec_mth(d), spec_proof(m, d))
    # levels()[k][i] is the MTH of leaves [i*2**k, min((i+1)*2**k, n)) (rfc6962.py docstring)
    for k, level in enumerate(levels):
        for i, node in enumerate(level):
            assert node == spec_mth(d[i << k : min((i + 1) << k, n)])


# -- BLAKE3 vectors --------------------------------------------------------------


def _blake3_cases() -> list[dict]:
    return json.loads((VECTORS / "blake3.json").read_text())["cases"]


def _b3_input(n: int) -> bytes:
    return bytes(i % 251 for i in range(n))


def test_blake3_vectors_present():
    lens = [c["input_len"] for c in _blake3_cases()]
    assert 0 in lens and len(lens) >= 30


@pytest.mark.parametrize("case", _blake3_cases(), ids=lambda c: f"len{c['input_len']}")
def test_blake3_vector(case: dict):
    data = _b3_input(case["input_len"])
    want = bytes.fromhex(case["hash"])[:32]
    assert B3.new(data).digest() == want
    if case["input_len"] == 0:
        assert B3.empty() == want
        assert rfc6962.root(B3, []) == want
    # leaf = BLAKE3(0x00 || data), from the definition, computed with the package.
    assert B3.leaf(data) == blake3.blake3(b"\x00" + data).digest()
    h = B3.leaf_hasher()
    h.update(data[: len(data) // 2])
    h.update(data[len(data) // 2 :])
    assert h.digest() == blake3.blake3(b"\x00" + data).digest()


def test_blake3_node_from_definition():
    a, b = B3.leaf(b"a"), B3.leaf(b"b")
    assert B3.node(a, b) == blake3.blake3(b"\x01" + a + b).digest()
    assert B3.node(a, b) != B3.node(b, a)
    assert rfc6962.root(B3, [a, b]) == blake3.blake3(b"\x01" + a + b).digest()


def test_sha256_hasher_from_definition():
    assert SHA.empty() == hashlib.sha256(b"").digest()
    assert SHA.leaf(b"xyz") == hashlib.sha256(b"\x00xyz").digest()
    a, b = SHA.leaf(b"a"), SHA.leaf(b"b")
    assert SHA.node(a, b) == hashlib.sha256(b"\x01" + a + b).digest()


# -- file level, sha256 ------------------------------------------------------------


CHUNK = 1024


@pytest.mark.parametrize(
    "size",
    [
        0,
        1,
        CHUNK - 1,
        CHUNK,
        CHUNK + 1,
        2 * CHUNK,
        3 * CHUNK - 7,
        4 * CHUNK,
        5 * CHUNK + 1,
        7 * CHUNK,
        8 * CHUNK,
        9 * CHUNK + 100,
        13 * CHUNK,
        17 * CHUNK - 1,
    ],
)
def test_hash_file_sha256_is_spec_mth_of_chunks(tmp_path: Path, size: int):
    data = bytes((i * 7 + i // 1024) % 256 for i in range(size))
    f = tmp_path / "blob.bin"
    f.write_bytes(data)
    chunks = tuple(data[i : i + CHUNK] for i in range(0, len(data), CHUNK))
    assert len(chunks) == -(-size // CHUNK)
    want = spec_mth(chunks)
    assert merkle.hash_file(f, "sha256", CHUNK) == want
    assert merkle.hash_file(str(f), "sha256", CHUNK) == want
    with open(f, "rb") as fh:
        assert merkle.hash_stream(fh, "sha256", CHUNK) == want
    # A bigger chunk size is a different tree (unless the file fits one chunk of both).
    big = tuple(data[i : i + 4 * CHUNK] for i in range(0, len(data), 4 * CHUNK))
    assert merkle.hash_file(f, "sha256", 4 * CHUNK) == spec_mth(big)


@pytest.mark.parametrize("size", [0, 1, CHUNK, CHUNK + 1, 6 * CHUNK + 5])
def test_hash_file_blake3_is_mth_of_chunks(tmp_path: Path, size: int):
    data = bytes((i * 13) % 251 for i in range(size))
    f = tmp_path / "blob.bin"
    f.write_bytes(data)
    chunks = tuple(data[i : i + CHUNK] for i in range(0, len(data), CHUNK))
    want = spec_mth(chunks, lambda b: blake3.blake3(b).digest())
    assert merkle.hash_file(f, "blake3", CHUNK) == want
    assert merkle.hash_file(f, chunk_size=CHUNK) == want  # blake3 is the default
