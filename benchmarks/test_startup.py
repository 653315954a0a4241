"""Start-up: what a user waits for before any byte is hashed (issue 16, goal 4:
`merkle --version`, `merkle hash`, `merkle verify` within 30 ms of a bare
interpreter).

Each command is a whole process: the bare interpreter (`python -c pass`, the
venv's), `merkle --version`, `merkle hash` of a 4 KiB file and `merkle
verify` of a directory holding it against its manifest.  The commands run
interleaved, round after round (30 rounds; 8 in quick mode), so that noise
from a shared machine falls on all of them alike; the table gives the best
and the median of each and the median over the bare interpreter's.  Nothing
asserts a time.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from .procs import merkle_cli, run
from .settings import Settings
from .table import BARE, Startup


def test_startup(tmp_path: Path, settings: Settings, record_startup: Callable[[Startup], None]) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "small.bin").write_bytes(bytes(range(256)) * 16)
    manifest = tmp_path / "manifest.json"
    run([*merkle_cli(), "build", str(tree), "-o", str(manifest), "-q"])
    commands = {
        BARE: [sys.executable, "-c", "pass"],
        "merkle --version": [*merkle_cli(), "--version"],
        "merkle hash SMALLFILE": [*merkle_cli(), "hash", str(tree / "small.bin")],
        "merkle verify (1 file)": [*merkle_cli(), "verify", str(tree), str(manifest)],
    }
    rounds = 8 if settings.quick else 30
    times: dict[str, list[float]] = {tool: [] for tool in commands}
    for argv in commands.values():  # untimed: bytecode caches written, files in the page cache
        run(argv)
    for _ in range(rounds):
        for tool, argv in commands.items():
            started = time.perf_counter()
            done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            times[tool].append(time.perf_counter() - started)
            assert done.returncode == 0, f"{tool} exited {done.returncode}"
    for tool, seen in times.items():
        record_startup(Startup(tool, len(seen), min(seen), statistics.median(seen)))
