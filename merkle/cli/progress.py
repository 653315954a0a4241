"""A one-line progress bar on stderr, only when stderr is a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from merkle.report import Progress


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n:.0f} B"
        n /= 1000
    return f"{n:.1f} TB"


class Bar(Progress):
    """Redraws at most five times a second; erases itself when done."""

    def __init__(self, label: str, stream: TextIO = sys.stderr) -> None:
        super().__init__()
        self.label = label
        self.stream = stream
        self.started = time.monotonic()
        self.last = 0.0
        self.drawn = False

    def tick(self) -> None:
        now = time.monotonic()
        if now - self.last < 0.2 or now - self.started < 0.5:
            return
        self.last = now
        elapsed = now - self.started
        rate = self.bytes / elapsed if elapsed else 0.0
        fraction = self.bytes / self.total_bytes if self.total_bytes else 1.0
        width = 24
        filled = int(width * min(1.0, fraction))
        line = (
            f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {fraction * 100:5.1f}% "
            f"{_size(self.bytes)}/{_size(self.total_bytes)} {_size(rate)}/s "
            f"{self.files}/{self.total_files} files ({self.files / elapsed if elapsed else 0:.0f}/s)"
        )
        self.stream.write(line + "\x1b[K")
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def make_progress(label: str, quiet: bool) -> Progress:
    if quiet or not sys.stderr.isatty():
        return Progress()
    return Bar(label)


def close(progress: Progress) -> None:
    if isinstance(progress, Bar):
        progress.close()
