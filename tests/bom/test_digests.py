"""merkle.bom.digests.SameRead gives exactly the engine's roots and leaf layers (the Cluster contract), and the
whole-file SHA-256 and BLAKE3 of the same bytes, at every boundary of the chunk grid."""

from __future__ import annotations

import hashlib
import os

import blake3
import pytest

from merkle.bom.digests import SameRead
from merkle.building import BuildOptions, build_with
from merkle.hashing.options import HashOptions

SIZES = [0, 1, 1023, 1024, 1025, 4096, 4097, 3 * 1024 + 17]


@pytest.mark.parametrize("algorithm", ["blake3", "sha256"])
def test_same_read_equals_the_engine(tmp_path, algorithm):
    for size in SIZES:
        (tmp_path / f"f{size}.bin").write_bytes(os.urandom(size))
    options = BuildOptions(algorithm, 1024)
    plain = build_with(tmp_path, options)
    same = SameRead(jobs=2)
    teed = build_with(tmp_path, options, hashing=HashOptions(cluster=same))
    assert teed.to_json() == plain.to_json()
    assert teed.layers == plain.layers
    for size in SIZES:
        data = (tmp_path / f"f{size}.bin").read_bytes()
        got = same.whole[f"f{size}.bin"]
        assert got.sha256 == hashlib.sha256(data).hexdigest()
        assert got.blake3 == blake3.blake3(data).hexdigest()
