"""`merkle doctor`: which implementation serves the hot paths, and what it sees."""

from __future__ import annotations

import argparse
import hashlib
import platform
import ssl
import sys
from importlib import metadata
from typing import Any

from merkle import __version__
from merkle._native import PURE_ENV, blake3_engine, native, status
from merkle.cli.output import emit_json
from merkle.hashing.engine import default_jobs

CPU_FLAGS = ("sse4_1", "avx2", "avx512f", "sha_ni", "neon", "sha2")


def cpu_features() -> list[str]:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    seen = set(line.split(":", 1)[1].split())
                    return [flag for flag in CPU_FLAGS if flag in seen]
    except OSError:
        pass
    return []


def report() -> dict[str, Any]:
    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"

    return {
        "merkle": __version__,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "hot_paths": status,
        "native": native is not None,
        "blake3_engine": blake3_engine,
        "native_blake3": getattr(native, "BLAKE3", None),
        "native_blake3_tier": getattr(native, "BLAKE3_TIER", None),
        "tier_switches": "MERKLE_NO_AVX512=1, MERKLE_NO_AVX2=1 simulate lesser CPUs",
        "native_sha256": getattr(native, "SHA256", None),
        "blake3_package": version("blake3"),
        "hashlib_openssl": ssl.OPENSSL_VERSION if "sha256" in hashlib.algorithms_guaranteed else None,
        "cpu_features": cpu_features(),
        "cpus": default_jobs(),
        "force_pure": f"set {PURE_ENV}=1",
    }


def doctor(args: argparse.Namespace) -> int:
    info = report()
    if args.json:
        emit_json(info)
        return 0
    width = max(map(len, info))
    for key, value in info.items():
        shown = ", ".join(value) if isinstance(value, list) else value
        print(f"{key.replace('_', ' '):<{width}}  {shown}")
    sys.stdout.flush()
    return 0
