"""Benchmark sizes and rounds, read once from the environment.

MERKLE_BENCH_QUICK=1   small data and two rounds, for CI (well under a minute)
                       (test_peers.py: a 64 MiB file, 300 files, 3 x 16 MiB shards
                       instead of 4 GiB, 20,000 files, 3 x 1 GiB)
MERKLE_BENCH_TINY      test_million.py's dataset sizes, comma-separated file counts
                       (default 10000,100000,1000000; quick 10000)
MERKLE_BENCH_DATA      where generated data is cached (default /tmp/merkle-bench-data)
MERKLE_BENCH_OUT       where the result table is written as JSON
                       (default .benchmarks/merkle-table.json under the repository)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

SEED = b"merkle-bench-v1"


@dataclass(frozen=True)
class Settings:
    quick: bool
    data_dir: Path
    out: Path
    big_size: int  # bytes of the one large file
    small_count: int  # files in the many-files directory
    small_min: int
    small_max: int
    rounds: int  # timed rounds per tool; the table shows their median
    warmup: int  # untimed rounds first
    # test_peers.py's shapes: one file, a dataset of small files, a model directory
    peer_big_size: int = 4 << 30
    peer_small_count: int = 20_000
    shard_size: int = 1 << 30  # each of the model directory's three weight shards
    tiny_counts: tuple[int, ...] = (10_000, 100_000, 1_000_000)  # test_million.py's datasets

    @property
    def mode(self) -> str:
        return "quick" if self.quick else "full"


def from_env(root: Path) -> Settings:
    quick = os.environ.get("MERKLE_BENCH_QUICK", "") not in ("", "0")
    return Settings(
        quick=quick,
        data_dir=Path(os.environ.get("MERKLE_BENCH_DATA", "/tmp/merkle-bench-data")),
        out=Path(os.environ.get("MERKLE_BENCH_OUT", root / ".benchmarks" / "merkle-table.json")),
        big_size=(64 << 20) if quick else (1 << 30),
        small_count=300 if quick else 10_000,
        small_min=4 << 10,
        small_max=256 << 10,
        rounds=2 if quick else 5,
        warmup=1,
        peer_big_size=(64 << 20) if quick else (4 << 30),
        peer_small_count=300 if quick else 20_000,
        shard_size=(16 << 20) if quick else (1 << 30),
        tiny_counts=_counts(os.environ.get("MERKLE_BENCH_TINY", ""))
        or ((10_000,) if quick else (10_000, 100_000, 1_000_000)),
    )


def _counts(text: str) -> tuple[int, ...]:
    return tuple(sorted(int(part.replace("_", "")) for part in text.split(",") if part.strip()))
