"""Peak memory of `merkle hash BIGFILE` as a child process.

The goal is RssAnon under 200 MB whatever the file size: merkle reads into a
few fixed buffers.  VmHWM is shown too; for b3sum (a reference row) it counts
the pages of the file it maps, which is why RssAnon is the figure to watch.
This records numbers for the table; it asserts nothing about them.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from .datasets import BigFile
from .procs import merkle_cli, peak_memory, require
from .table import Memory

COMMANDS: dict[str, Callable[[str], list[str]]] = {
    "merkle hash": lambda f: [*merkle_cli(), "hash", f],
    "merkle hash --algorithm sha256": lambda f: [*merkle_cli(), "hash", "--algorithm", "sha256", f],
    "b3sum": lambda f: ["b3sum", f],
}


@pytest.mark.parametrize("tool", COMMANDS)
def test_peak_memory(tool: str, big_file: BigFile, record_memory: Callable[[Memory], None]) -> None:
    argv = COMMANDS[tool](str(big_file.path))
    if tool == "b3sum":
        require("b3sum")
    peak = peak_memory(argv)
    record_memory(Memory(tool, big_file.size, peak.rss_anon, peak.hwm, peak.samples))
