"""Shared output helpers for the subcommands."""

from __future__ import annotations

import sys

from merkle.display import shown

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence
    from typing import Any

    from merkle.report import Report


def emit_json(doc: Any) -> None:
    """One JSON document on stdout (the --json contract)."""
    import json  # only with --json: `merkle hash` prints its sums without it

    sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


def print_report(
    args: argparse.Namespace,
    report: Report,
    doc_extra: dict[str, Any] | None = None,
    head: str | None = None,
    notes: Sequence[str] = (),
) -> None:
    """A report as verify and audit print it: JSON (the report's own keys,
    then `doc_extra`), or `head`, one line per file (failures only with
    --quiet), `notes` and the summary, each on stderr but the file lines.
    `notes` are printed as given: the caller escapes what it did not write."""
    if args.json:
        emit_json({**report.to_dict(), **(doc_extra or {})})
        return
    if head:
        print(f"merkle: {shown(head)}", file=sys.stderr)
    for outcome in report.failures if args.quiet else report.outcomes:  # failures: in the outcomes' order
        print(outcome.line())
    for note in notes:
        print(f"merkle: {note}", file=sys.stderr)
    print(f"merkle: {report.summary()}", file=sys.stderr)
