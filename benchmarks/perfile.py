"""The per-file table of test_million.py: seconds per file, growth with the
count, ratio to b3sum, and peak memory per listed file.

"growth" divides a step's cost per file at this count by its cost per file at
the next smaller count of the run (1.00: linear; issue 17's goal for `merkle
build` is within 1.05 from 100,000 to 1,000,000 files).  "x b3sum" is
b3sum's time over the step's on the same files (higher is faster; the goal
for `merkle build` is at least 1/1.5 = 0.67).  "- start" is the step's time
less a bare interpreter's (`python -c pass`) of the same run, for the steps
whose goal is stated beyond start-up.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from .table import B3SUM, Timing

BARE = "python -c pass"
PREFIX = "tiny files: "
MEMORY_GOAL = 300  # bytes per listed file (issue 17)


def case(count: int) -> str:
    return f"{PREFIX}{count:,}"


def count_of(name: str) -> int:
    return int(re.sub(r"\D", "", name[len(PREFIX) :]))


@dataclass(frozen=True)
class Peak:
    case: str
    tool: str
    files: int
    rss_anon: int
    hwm: int


def rows(timings: list[Timing]) -> list[dict[str, object]]:
    mine = [t for t in timings if t.case.startswith(PREFIX)]
    by = {(t.case, t.tool): t.median for t in mine}
    counts = sorted({count_of(t.case) for t in mine})
    out = []
    for t in mine:
        n = count_of(t.case)
        smaller = [c for c in counts if c < n]
        before = by.get((case(smaller[-1]), t.tool)) if smaller else None
        b3 = by.get((t.case, B3SUM))
        bare = by.get((t.case, BARE))
        out.append(
            {
                "case": t.case,
                "tool": t.tool,
                "files": n,
                "median": t.median,
                "runs": t.runs,
                "us_per_file": t.median / n * 1e6,
                "growth": (t.median / n) / (before / smaller[-1]) if before and smaller else None,
                "x_b3sum": b3 / t.median if b3 else None,
                "beyond_start": t.median - bare if bare is not None and t.tool != BARE else None,
            }
        )
    return out


def render(timings: list[Timing], peaks: list[Peak]) -> list[str]:
    table = rows(timings)
    if not (table or peaks):
        return []
    head = f"{'case':<22} {'tool':<44} {'median s':>9} {'runs':>4} {'us/file':>8}"
    head += f" {'growth':>7} {'x b3sum':>8} {'- start':>8}"
    lines = [head, "-" * len(head)]
    for r in table:
        lines.append(
            f"{r['case']:<22} {r['tool']:<44} {r['median']:>9.3f} {r['runs']:>4} {r['us_per_file']:>8.2f}"
            f" {_num(r['growth']):>7} {_num(r['x_b3sum'], 'x'):>8} {_num(r['beyond_start'], ' s', 3):>8}"
        )
    lines.append("growth: cost per file over the next smaller count's (1.00 linear); - start: less `python -c pass`")
    if peaks:
        head = f"{'peak memory':<22} {'tool':<44} {'VmHWM MB':>9} {'RssAnon MB':>10} {'B/file':>7}"
        head += f"  goal < {MEMORY_GOAL} B/file"
        lines += ["", head, "-" * len(head)]
        for p in peaks:
            per = p.hwm / p.files
            lines.append(
                f"{p.case:<22} {p.tool:<44} {p.hwm / 1e6:>9.1f} {p.rss_anon / 1e6:>10.1f} {per:>7.0f}"
                f"  {'ok' if per < MEMORY_GOAL else 'OVER'}"
            )
    return lines


def peak_rows(peaks: list[Peak]) -> list[dict[str, object]]:
    return [{**asdict(p), "bytes_per_file": p.hwm / p.files} for p in peaks]


def _num(value: object, unit: str = "", digits: int = 2) -> str:
    return f"{value:.{digits}f}{unit}" if isinstance(value, float) else "-"
