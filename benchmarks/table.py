"""The summary table: medians from this run turned into GB/s and ratios.

Ratios compare tools measured in the same run (figures move 5-20% between
runs, DESIGN.md section 6): "x b3sum" is this tool's speed over default
multi-threaded b3sum's on the same case; "x openssl" is filled in for the
sha256 rows, whose fair peer is `openssl dgst -sha256`; "x merkle", shown
for the cases of test_peers.py, is this tool's speed over the case's
`merkle build` row (native, whole process).  The table opens with the CPU
line (benchmarks/cpu.py): figures from different vector tiers are not
comparable.  Start-up is a table of its own, in milliseconds over a bare
interpreter.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

B3SUM = "b3sum"
OPENSSL = "openssl dgst -sha256"
WHOLE_FILE = "verify whole file"
READ_AND_HASH = "read + hash, unverified"
S3FS_READ = "s3fs parallel read"
HF_SERIAL = "huggingface_hub verify (serial)"
ZARR_PLAIN = "zarr plain store"
PACKAGE = "blake3 package, 1 thread"
DD = "dd bs=1M"
BARE = "python -c pass"
# test_blake3.py's cases (one core, a buffer in RAM) and the cold-cache case.
BLAKE3_CASES = ("blake3: whole buffer", "blake3: 16 KiB leaves", "blake3: 64 KiB leaves", "blake3: 1 MiB leaves")
COLD = "one file, cold cache"
# The tool each case's "x ref" column divides by (b3sum unless named here).
REFERENCES = {
    "range in a big file": WHOLE_FILE,
    "sequential read": READ_AND_HASH,
    "s3 small objects": S3FS_READ,
    "s3 large objects": S3FS_READ,
    "hf snapshot": HF_SERIAL,
    "zarr full read": ZARR_PLAIN,
    "zarr row slice": ZARR_PLAIN,
    "zarr column slice": ZARR_PLAIN,
    **dict.fromkeys(BLAKE3_CASES, PACKAGE),
    COLD: DD,
    "sync: one shard 1% changed": "s3fs ranged read (changed chunks)",
    "bom: model dir": "merkle build",
}
# test_peers.py's cases: every tool there is also compared with merkle itself.
PEER_FILE = "peers: one file"
PEER_SMALL = "peers: small files"
PEER_MODEL = "peers: model dir"
PEER_CASES = (PEER_FILE, PEER_SMALL, PEER_MODEL)
MERKLE_BUILD = "merkle build"  # the "x merkle" reference of each peer case
MEMORY_GOAL = 200_000_000  # bytes of RssAnon, whatever the file size
STARTUP_GOAL = 0.030  # seconds over a bare interpreter (issue 16, goal 4)


@dataclass(frozen=True)
class Timing:
    case: str
    tool: str
    median: float  # seconds
    runs: int
    bytes: int

    @property
    def rate(self) -> float:
        return self.bytes / self.median / 1e9


@dataclass(frozen=True)
class Memory:
    tool: str
    file_bytes: int
    rss_anon: int
    hwm: int
    samples: int


@dataclass(frozen=True)
class Startup:
    tool: str
    runs: int
    best: float  # seconds, the fastest run
    median: float  # seconds


def startup_rows(startup: list[Startup]) -> list[dict[str, object]]:
    """One dict per command with its time over the bare interpreter's (median and best)."""
    bare = next((s for s in startup if s.tool == BARE), None)
    return [
        {
            **asdict(s),
            "over_bare_ms": round((s.median - bare.median) * 1e3, 1) if bare else None,
            "best_over_bare_ms": round((s.best - bare.best) * 1e3, 1) if bare else None,
        }
        for s in startup
    ]


def rows(timings: list[Timing]) -> list[dict[str, object]]:
    """One dict per timing with GB/s and ratios, in run order."""
    rates = {(t.case, t.tool): t.rate for t in timings}
    out = []
    for t in timings:
        b3 = rates.get((t.case, REFERENCES.get(t.case, B3SUM)))
        ossl = rates.get((t.case, OPENSSL)) if "sha256" in t.tool else None
        own = rates.get((t.case, MERKLE_BUILD)) if t.case in PEER_CASES else None
        out.append(
            {
                **asdict(t),
                "gb_per_s": round(t.rate, 3),
                "x_b3sum": round(t.rate / b3, 2) if b3 else None,
                "x_openssl": round(t.rate / ossl, 2) if ossl else None,
                "x_merkle": round(t.rate / own, 2) if own else None,
            }
        )
    return out


def render(timings: list[Timing], memory: list[Memory], startup: list[Startup], cpu_line: str) -> list[str]:
    lines = [cpu_line, ""]
    if timings:
        table = rows(timings)
        own = any(r["x_merkle"] is not None for r in table)  # the column only when peer cases ran
        head = f"{'case':<22} {'tool':<34} {'median s':>9} {'runs':>4} {'GB/s':>6} {'x ref':>7} {'x openssl':>9}"
        head += f" {'x merkle':>8}" if own else ""
        lines += [head, "-" * len(head)]
        for r in table:
            lines.append(
                f"{r['case']:<22} {r['tool']:<34} {r['median']:>9.3f} {r['runs']:>4} {r['gb_per_s']:>6.2f}"
                f" {_ratio(r['x_b3sum']):>7} {_ratio(r['x_openssl']):>9}"
                + (f" {_ratio(r['x_merkle']):>8}" if own else "")
            )
        lines.append("x ref: speed over b3sum's on the same case, or over the case's reference tool")
        ran = {t.case for t in timings}
        named = "; ".join(f"{c}: {t}" for c, t in REFERENCES.items() if c in ran)
        lines.append(f"({named}); same bytes, same run" if named else "(same bytes, same run)")
        if own:
            lines.append(f"x merkle: speed over `{MERKLE_BUILD}` (native, a whole process) on the same case")
    if memory:
        head = f"{'peak memory':<34} {'file MB':>8} {'RssAnon MB':>10} {'VmHWM MB':>9} {'samples':>7}"
        head += f"  goal RssAnon < {MEMORY_GOAL // 1_000_000} MB"
        lines += ["", head, "-" * len(head)]
        for m in memory:
            verdict = "ok" if m.rss_anon < MEMORY_GOAL else "OVER"
            if not m.hwm:
                verdict = "exited before a sample"
            elif not m.tool.startswith("merkle"):
                verdict = "(reference)"
            lines.append(
                f"{m.tool:<34} {m.file_bytes / 1e6:>8.0f} {_mb(m.rss_anon, m.hwm):>10} {_mb(m.hwm, m.hwm):>9}"
                f" {m.samples:>7}  {verdict}"
            )
    if startup:
        head = f"{'start-up':<34} {'runs':>4} {'best ms':>8} {'median ms':>9} {'over bare ms':>12}"
        head += f"  goal within {STARTUP_GOAL * 1e3:.0f} ms"
        lines += ["", head, "-" * len(head)]
        for r in startup_rows(startup):
            over = r["over_bare_ms"]
            verdict = "(reference)" if r["tool"] == BARE else "-"
            if isinstance(over, float) and r["tool"] != BARE:
                verdict = "ok" if over <= STARTUP_GOAL * 1e3 else "over"
            best, median = r["best"], r["median"]
            assert isinstance(best, float) and isinstance(median, float)
            lines.append(
                f"{r['tool']:<34} {r['runs']:>4} {best * 1e3:>8.1f} {median * 1e3:>9.1f} {_ms(over):>12}  {verdict}"
            )
        lines.append("over bare: median minus the bare interpreter's median, measured interleaved in the same run")
    return lines


def _ms(value: object) -> str:
    return f"{value:+.1f}" if isinstance(value, float) else "-"


def _mb(value: int, seen: int) -> str:
    return f"{value / 1e6:.1f}" if seen else "-"


def _ratio(value: object) -> str:
    return f"{value:.2f}x" if isinstance(value, float) else "-"


def write_json(
    path: Path,
    mode: str,
    cpu: dict[str, object],
    timings: list[Timing],
    memory: list[Memory],
    startup: list[Startup],
    extra: Mapping[str, object] | None = None,
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "mode": mode,
        "cpu": cpu,
        "machine": machine(),
        "timings": rows(timings),
        "memory": [asdict(m) for m in memory],
        "startup": startup_rows(startup),
        **(extra or {}),
    }
    path.write_text(json.dumps(doc, indent=2) + "\n")


def machine() -> dict[str, object]:
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")), "")
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), [])
    return {
        "cpus": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "avx512f": "avx512f" in flags,
        "sha_ni": "sha_ni" in flags,
        "b3sum": _version(["b3sum", "--version"]),
        "openssl": _version(["openssl", "version"]),
        "model_signing": _dist_version("model-signing"),
        "merkle_extension": _has_extension(),  # False: every merkle row ran the pure-Python path
        "merkle_pure_env": os.environ.get("MERKLE_PURE"),
        # conftest unsets PYTHONDONTWRITEBYTECODE before timing (procs.allow_bytecode): processes use bytecode caches
        "bytecode_caches": "PYTHONDONTWRITEBYTECODE" not in os.environ,
    }


def _dist_version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _has_extension() -> bool:
    """Whether merkle's C extension is installed (what `merkle doctor` reports as native)."""
    from importlib.util import find_spec

    try:
        return find_spec("merkle._merkle") is not None
    except ImportError:
        return False


def _version(argv: list[str]) -> str | None:
    try:
        return subprocess.run(argv, capture_output=True, text=True).stdout.strip() or None
    except OSError:
        return None
