"""What machine and which BLAKE3 a table comes from: the line every table opens with.

BLAKE3 runs about 2.8x faster per core with AVX-512 than with AVX2 (issue
16), so a figure means nothing without the CPU, the vector tier merkle's C
BLAKE3 used, the switches that masked it, and a yardstick measured on the
same machine in the same run: the blake3 package on one core.
"""

from __future__ import annotations

import mmap
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import blake3

from merkle import _native

MASKS = ("MERKLE_NO_AVX512", "MERKLE_NO_AVX2", _native.PURE_ENV)
"""The switches that change what merkle runs (and nothing else: not the
blake3 package, not b3sum)."""
YARDSTICK_BYTES = 64 << 20
YARDSTICK_ROUNDS = 3


@dataclass(frozen=True)
class Cpu:
    model: str  # /proc/cpuinfo "model name"
    family: int | None  # "cpu family"
    model_number: int | None  # "model"
    flags: tuple[str, ...]  # the vector and SHA features that matter here
    tier: str  # merkle's C BLAKE3 tier ("avx512", "avx2", "portable"), or "none" without the extension
    engine: str  # who hashes bulk BLAKE3 leaves (merkle._native.blake3_engine)
    masks: tuple[str, ...]  # the switches set, as NAME=VALUE
    package_gb_per_s: float  # blake3 package, one thread, 64 MiB in RAM, best of 3
    package_version: str

    def line(self) -> str:
        family = f"family {self.family} model {self.model_number}" if self.family is not None else "family ?"
        masks = ", ".join(self.masks) or "no masks"
        return (
            f"CPU: {self.model} ({family}; {' '.join(self.flags) or 'no AVX2'}); "
            f"merkle BLAKE3 tier: {self.tier} ({masks}); bulk leaves: {self.engine}; "
            f"blake3 package {self.package_version}: {self.package_gb_per_s:.2f} GB/s per core"
        )

    def to_json(self) -> dict[str, object]:
        return asdict(self)


FLAGS = ("sse4_1", "avx2", "avx512f", "avx512vl", "sha_ni", "neon")


def detect() -> Cpu:
    """The CPU, merkle's tier and engine (as `merkle doctor` reports them), the
    masks set, and the package's per-core speed measured now."""
    info = _cpuinfo()
    flags = set(info.get("flags", info.get("Features", "")).split())
    native = _native.native
    return Cpu(
        model=info.get("model name", info.get("CPU part", "unknown")),
        family=_int(info.get("cpu family")),
        model_number=_int(info.get("model")),
        flags=tuple(f for f in FLAGS if f in flags),
        tier=native.BLAKE3_TIER if native is not None else "none",
        engine=_native.blake3_engine,
        masks=tuple(f"{m}={os.environ[m]}" for m in MASKS if os.environ.get(m, "") not in ("", "0")),
        package_gb_per_s=round(package_speed(), 2),
        package_version=_version("blake3"),
    )


def package_speed(size: int = YARDSTICK_BYTES, rounds: int = YARDSTICK_ROUNDS) -> float:
    """GB/s of blake3.blake3(buf, max_threads=1) over `size` bytes in RAM,
    the best of `rounds`: the per-core yardstick of this machine."""
    buf = mmap.mmap(-1, size)  # page-aligned; written, so no page is the shared zero page
    buf.write(bytes(range(256)) * (size // 256))
    try:
        best = float("inf")
        for _ in range(rounds):
            started = time.perf_counter()
            blake3.blake3(buf, max_threads=1).digest()
            best = min(best, time.perf_counter() - started)
    finally:
        buf.close()
    return size / best / 1e9


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (empty where there is none)."""
    fields: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return fields
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def _int(value: str | None) -> int | None:
    try:
        return int(value, 0) if value is not None else None
    except ValueError:
        return None


def _version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"
