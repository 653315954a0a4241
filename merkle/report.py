"""Verification results: one Outcome per path and a Report over them; and
the Progress counters a long check or build bumps as it goes.

Symbols follow `rclone check --combined`: `=` ok, `*` differs, `-` missing,
`+` extra, `!` error; merkle adds `~` absent (allowed: a sparse checkout) and
`%` partial (an unfinished download).  `bool(report)` says whether everything verified;
`report.raise_for_failure()` is the raising form of the same check.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from merkle.display import shown
from merkle.errors import IntegrityError, SourceError


class Status(enum.Enum):
    """Per-path verdict; the value is the symbol printed before the path."""

    OK = "="
    MISMATCH = "*"
    MISSING = "-"
    EXTRA = "+"
    ERROR = "!"
    ABSENT = "~"  # not on disk, and allowed to be (--sparse)
    PARTIAL = "%"  # an unfinished download (merkle hf verify)

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Outcome:
    """One path's verdict, with a human reason when it is not OK."""

    path: str
    status: Status
    detail: str = ""

    def line(self) -> str:
        """`SYMBOL PATH  (DETAIL)`, escaped (docs/cli.md): one line, never a forged one."""
        return f"{self.status.value} {shown(self.path)}" + (f"  ({shown(self.detail)})" if self.detail else "")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "status": self.status.label}
        if self.detail:
            out["detail"] = self.detail
        return out


@dataclass(frozen=True)
class Report:
    """What `merkle.verify` found.  Truthy exactly when the tree verified."""

    root: bytes
    algorithm: str
    outcomes: tuple[Outcome, ...]
    allow_extra: bool = False
    bytes_hashed: int = 0
    seconds: float = 0.0
    counts: Counter[Status] = field(init=False, compare=False, repr=False)
    failures: tuple[Outcome, ...] = field(init=False, compare=False, repr=False)
    """Outcomes that make the report fail (allowed extras do not), in order."""
    heads: Mapping[str, bytes] = field(default_factory=dict, compare=False, repr=False)
    """With HashOptions(head=N): each file that verified, by path: its first
    bytes as they were hashed (what a policy reads of them, P6)."""

    def __post_init__(self) -> None:
        counts = Counter(o.status for o in self.outcomes)
        object.__setattr__(self, "counts", counts)
        passing = {Status.OK, Status.ABSENT} | ({Status.EXTRA} if self.allow_extra else set())
        failing = any(status not in passing for status in counts)  # a million OKs: no pass over them
        failures = tuple(o for o in self.outcomes if o.status not in passing) if failing else ()
        object.__setattr__(self, "failures", failures)

    @property
    def ok(self) -> bool:
        return not self.failures

    def __bool__(self) -> bool:
        return self.ok

    @property
    def exit_code(self) -> int:
        """0 verified; 1 some content is wrong, missing or extra; 2 only
        errors (something could not be read, so nothing was decided)."""
        failures = self.failures
        if not failures:
            return 0
        return 2 if all(o.status is Status.ERROR for o in failures) else 1

    def summary(self) -> str:
        """One line: verdict, counts, bytes hashed and speed."""
        c = self.counts
        files = len(self.outcomes) - c[Status.EXTRA] - c[Status.ABSENT]
        head = "verified" if self.ok else "FAILED"
        rate = f" at {self.bytes_hashed / self.seconds / 1e9:.2f} GB/s" if self.seconds > 0 else ""
        extra = f"{c[Status.EXTRA]} extra" + (" (allowed)" if self.allow_extra and c[Status.EXTRA] else "")
        if c[Status.ABSENT]:
            extra += f", {c[Status.ABSENT]} absent (sparse)"
        if c[Status.PARTIAL]:
            extra += f", {c[Status.PARTIAL]} partial"
        return (
            f"{head}: {c[Status.OK]} of {files} files ok, {c[Status.MISMATCH]} differ, "
            f"{c[Status.MISSING]} missing, {extra}, {c[Status.ERROR]} error{'' if c[Status.ERROR] == 1 else 's'}; "
            f"{self.bytes_hashed} bytes hashed in {self.seconds:.2f} s{rate}"
        )

    def raise_for_failure(self) -> None:
        """Raise IntegrityError (or SourceError when only reads failed) unless ok."""
        failures = self.failures
        if not failures:
            return
        first = failures[0]
        message = f"{len(failures)} problem(s), first: {first.status.label}" + (
            f" ({first.detail})" if first.detail else ""
        )
        if self.exit_code == 2:
            raise SourceError(message, first.path)
        raise IntegrityError(message, first.path)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "root": self.root.hex(),
            "algorithm": self.algorithm,
            "counts": {s.label: self.counts[s] for s in Status},
            "bytes_hashed": self.bytes_hashed,
            "seconds": round(self.seconds, 6),
            "files": [o.to_dict() for o in self.outcomes],
        }


class Progress:
    """Counters the workers bump and a display may read (approximate: a
    progress bar needs no lock)."""

    def __init__(self, total_bytes: int = 0, total_files: int = 0) -> None:
        self.total_bytes = total_bytes
        self.total_files = total_files
        self.bytes = 0
        self.files = 0
        self.resumed_files = 0
        self.resumed_bytes = 0
        """Taken from a checkpoint, not read (merkle.hashing.checkpoint); not in
        `bytes`, `files` or the totals."""
        self.updated_files = 0
        self.updated_bytes = 0
        """Of those, taken from identity records for `update` (merkle.hashing.identities)."""

    def tick(self) -> None:
        """Called from the main thread about ten times a second."""
