"""An audit of a zarr store, by array (docs/zarr.md, rule Z7)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from merkle.format.zarr import ZarrLayout

ARRAY_COUNTS = ("unchanged", "changed", "removed", "added", "errors")
_COUNT_OF = {"=": "unchanged", "*": "changed", "-": "removed", "+": "added", "!": "errors", "~": "removed"}


def by_array(layout: ZarrLayout, outcomes: Iterable[tuple[str, str]]) -> dict[str, dict[str, Any]]:
    """An audit's (path, status symbol) pairs grouped by array (rule Z7):
    per array the counts of unchanged, changed, removed, added keys and
    errors, and the chunk keys among the removed ones (zarr alone would read
    those as fill values).  Keys outside every array (group metadata) are
    grouped under '(groups)'."""
    out: dict[str, dict[str, Any]] = {}
    for path, symbol in outcomes:
        array = layout.array_of(path)
        name = array.path if array is not None else "(groups)"
        counts = out.setdefault(name, {**dict.fromkeys(ARRAY_COUNTS, 0), "missing_chunks": []})
        kind = _COUNT_OF.get(symbol)
        if kind is not None:
            counts[kind] += 1
        if kind == "removed" and array is not None and array.chunk_coords(path) is not None:
            counts["missing_chunks"].append(path)
    return dict(sorted(out.items()))


def array_line(name: str, counts: dict[str, Any]) -> str:
    """One line of the per-array audit summary."""
    label = "groups" if name == "(groups)" else f"array {name or '(root)'!r}"
    parts = ", ".join(f"{counts[k]} {k}" for k in ARRAY_COUNTS if counts[k] or k in ("changed", "removed", "added"))
    missing = counts["missing_chunks"]
    tail = f"; chunks missing (zarr alone reads fill values): {', '.join(missing[:5])}" if missing else ""
    more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
    return f"{label}: {parts}{tail}{more}"
