"""Draw the benchmark table as a grouped bar chart of throughput.

    python -m benchmarks.plot [TABLE_JSON] [-o PNG]

TABLE_JSON is the table a benchmark run writes ($MERKLE_BENCH_OUT, default
.benchmarks/merkle-table.json); PNG defaults to docs/benchmarks.png.  One
group of bars per dataset (case), one bar per tool, GB/s (10^9 bytes per
second) on the y axis.  When the table holds test_peers.py's cases only those
are drawn (the other suites' cases compare different things); --all draws
every case.  Needs matplotlib (pip install matplotlib).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .table import MERKLE_BUILD, PEER_CASES

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.plot", description=__doc__.splitlines()[0])
    default_table = os.environ.get("MERKLE_BENCH_OUT", ROOT / ".benchmarks" / "merkle-table.json")
    parser.add_argument(
        "table",
        nargs="?",
        type=Path,
        default=Path(default_table),
        help=f"the JSON table of a run (default: $MERKLE_BENCH_OUT or {default_table})",
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=ROOT / "docs" / "benchmarks.png",
        help="the PNG to write (default: docs/benchmarks.png)",
    )
    parser.add_argument("--all", action="store_true", help="draw every case, not only test_peers.py's")
    args = parser.parse_args(argv)

    try:
        import matplotlib

        matplotlib.use("Agg")  # files only, no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        print("benchmarks.plot needs matplotlib: pip install matplotlib", file=sys.stderr)
        return 2
    try:
        doc = json.loads(args.table.read_text())
    except FileNotFoundError:
        print(
            f"no table at {args.table}: run the benchmarks first (python -m pytest benchmarks/test_peers.py)",
            file=sys.stderr,
        )
        return 2

    rows = doc["timings"]
    if not args.all and any(r["case"] in PEER_CASES for r in rows):
        rows = [r for r in rows if r["case"] in PEER_CASES]
    if not rows:
        print(f"{args.table} holds no timings", file=sys.stderr)
        return 2
    cases = list(dict.fromkeys(r["case"] for r in rows))
    tools = _tool_order(cases, rows)
    rate = {(r["case"], r["tool"]): r["gb_per_s"] for r in rows}
    size = {r["case"]: r["bytes"] for r in rows}

    widest = max(sum((case, tool) in rate for tool in tools) for case in cases)
    width = 0.85 / widest
    fig, ax = plt.subplots(figsize=(max(8.0, 0.3 * len(cases) * widest + 3.5), 6.0))
    tab20, spare = plt.get_cmap("tab20"), iter(SPARE * 4)  # tab20(i): the i-th of its 20 colours

    def pick(tool: str) -> int:
        fixed = _color(tool)
        return fixed if fixed is not None else next(spare)

    colors = {tool: tab20(pick(tool)) for tool in tools}
    labelled = set()
    for c, case in enumerate(cases):
        present = [tool for tool in tools if (case, tool) in rate]
        for i, tool in enumerate(present):  # each group's bars side by side, centred on its tick
            y = rate[(case, tool)]
            bars = ax.bar(
                c + (i - (len(present) - 1) / 2) * width,
                y,
                width,
                color=colors[tool],
                label=None if tool in labelled else tool,
                linewidth=1.2,
                edgecolor="black" if tool == MERKLE_BUILD else colors[tool],
            )
            labelled.add(tool)
            ax.bar_label(bars, labels=[f"{y:.1f}"], fontsize=7, rotation=90, padding=2)

    ax.set_xticks(range(len(cases)), [f"{case.removeprefix('peers: ')}\n{size[case] / 1e9:.2f} GB" for case in cases])
    ax.set_ylabel("GB/s (10^9 bytes per second)")
    ax.margins(y=0.15)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    machine = doc.get("machine", {})
    ax.set_title(
        f"merkle and peers: whole processes, hot page cache ({doc.get('mode', '?')} mode)\n"
        f"{machine.get('cpus', '?')} CPUs, {machine.get('cpu_model') or 'unknown CPU'}",
        fontsize=10,
    )
    handles = dict(zip(*reversed(ax.get_legend_handles_labels()), strict=True))  # label -> handle
    ax.legend(
        [handles[t] for t in tools], tools, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False
    )
    fig.tight_layout()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.output, dpi=120)
    print(f"wrote {args.output}")
    return 0


def _tool_order(cases: list[str], rows: list[dict[str, object]]) -> list[str]:
    """Every tool once, each case's tools in that case's run order (a tool
    first seen in a later case goes after its predecessor there)."""
    tools: list[str] = []
    for case in cases:
        at = -1
        for tool in dict.fromkeys(str(r["tool"]) for r in rows if r["case"] == case):
            if tool in tools:
                at = tools.index(tool)
            else:
                at += 1
                tools.insert(at, tool)
    return tools


# tab20 holds pairs (dark, light): one family per tool, light for the variant.
FAMILIES = [("merkle build", 0), ("merkle hash", 18), ("b3sum", 4), ("openssl", 14), ("model_signing", 6)]
SPARE = [8, 9, 10, 11, 12, 13, 16, 17, 2, 3]  # purple, brown, pink, olive, orange: tools not in FAMILIES


def _color(tool: str) -> int | None:
    if " x b3sum" in tool:  # one single-threaded b3sum per CPU
        return 16
    for prefix, dark in FAMILIES:
        if tool.startswith(prefix):
            light = "(pure)" in tool or "--num-threads 1" in tool or "(blake3)" in tool
            return dark + light
    return None


if __name__ == "__main__":
    sys.exit(main())
