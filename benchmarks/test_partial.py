"""Partial verification against the whole thing, in the same run.

- range in a big file: checking 1 MiB at 3/4 of a 4 GiB file (64 MiB in
  quick mode) reads only the chunks that cover it (counted, and asserted:
  at most two) and should take under 1% of the time of verifying the whole
  file: "x ref" above 100.
- sequential read: reading the whole file through `merkle.open`, every chunk
  verified before it is returned, against reading it and hashing it with no
  verification (same 1 MiB reads, one thread); goal "x ref" >= 0.8.
Both rows of a case count the whole file's bytes, so "x ref" is the ratio of
times.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Callable
from pathlib import Path

import blake3
import pytest

import merkle
from merkle.source.readers import Counting, LocalFile
from merkle.verifying.ranges import FileAuth, verify_range

from . import datasets
from .settings import SEED, Settings
from .table import READ_AND_HASH, WHOLE_FILE

RANGE = "range in a big file"
READ = "sequential read"
PIECE = 1 << 20


@pytest.fixture(scope="module")
def signed_big(settings: Settings) -> tuple[Path, merkle.Manifest, int]:
    size = (64 << 20) if settings.quick else (4 << 30)
    big = datasets.big_file(settings.data_dir, size, SEED)
    tree_dir = settings.data_dir / f"partial-{size}"
    tree_dir.mkdir(exist_ok=True)
    link = tree_dir / "model.bin"
    if not link.exists():
        os.link(big.path, link)  # a tree holding just the big file, no copy
    manifest = merkle.build(tree_dir)
    return tree_dir, manifest, size


def test_verify_whole_file(measure: Callable[..., None], signed_big: tuple[Path, merkle.Manifest, int]) -> None:
    tree_dir, manifest, size = signed_big
    measure(RANGE, WHOLE_FILE, lambda: merkle.verify(tree_dir, manifest).raise_for_failure(), size)


def test_verify_one_mib_range(measure: Callable[..., None], signed_big: tuple[Path, merkle.Manifest, int]) -> None:
    tree_dir, manifest, size = signed_big
    auth = FileAuth.of(manifest, "model.bin")
    offset = size * 3 // 4
    counted: list[int] = []

    def check() -> None:
        source = Counting(LocalFile(str(tree_dir / "model.bin")))
        verify_range(source, auth, offset, 1 << 20)
        counted.append(source.bytes_read)
        source.close()

    measure(RANGE, "verify 1 MiB range", check, size)
    assert max(counted) <= 2 * manifest.chunk_size  # the covering chunks, nothing else


def test_unverified_read_and_hash(measure: Callable[..., None], signed_big: tuple[Path, merkle.Manifest, int]) -> None:
    tree_dir, _, size = signed_big
    path = tree_dir / "model.bin"

    def read_and_hash() -> None:
        buf = mmap.mmap(-1, PIECE)
        view = memoryview(buf)
        with open(path, "rb", buffering=0) as f:
            while got := f.readinto(view):
                blake3.blake3(view[:got]).digest()
        view.release()
        buf.close()

    measure(READ, READ_AND_HASH, read_and_hash, size)


def test_verified_sequential_read(measure: Callable[..., None], signed_big: tuple[Path, merkle.Manifest, int]) -> None:
    tree_dir, manifest, size = signed_big

    def read_verified() -> None:
        buf = mmap.mmap(-1, PIECE)
        view = memoryview(buf)
        total = 0
        with merkle.open(tree_dir / "model.bin", manifest, name="model.bin") as f:
            while got := f.readinto(view):
                total += got
        view.release()
        buf.close()
        assert total == size

    measure(READ, "merkle.open, verified", read_verified, size)
