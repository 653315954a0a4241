"""Throughput on a directory of many small files (10,000 of 4-256 KiB; 300
in quick mode), hot cache.

merkle walks the directory itself; the peers get every file name from a
prepared NUL-separated list through `xargs -0` (which splits it to respect
ARG_MAX), so they skip the walk.  The "CPUS x b3sum" row runs one
single-threaded b3sum per CPU over slices of the list: the best a shell user
gets from b3sum here.  "(pure)" rows run merkle with MERKLE_PURE=1: the pure
Python twins instead of the C extension.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

import merkle

from .datasets import SmallFiles
from .procs import merkle_cli, require, run
from .table import B3SUM, OPENSSL

CASE = "many files"
CPUS = len(os.sched_getaffinity(0))


def _xargs(files: SmallFiles, *command: str, parallel: int = 1) -> list[str]:
    per = -(-files.count // parallel)  # ceil: one slice of the list per process
    split = ["-P", str(parallel), "-n", str(per)] if parallel > 1 else []
    return ["xargs", "-0", "-a", str(files.names), *split, *command]


# tool -> (peer that must be installed or None, argv from (files, manifest path))
COMMANDS: dict[str, tuple[str | None, Callable[[SmallFiles, str], list[str]]]] = {
    "merkle build": (None, lambda files, out: [*merkle_cli(), "build", str(files.root), "-o", out, "-q"]),
    B3SUM: ("b3sum", lambda files, out: _xargs(files, "b3sum")),
    "b3sum --num-threads 1": ("b3sum", lambda files, out: _xargs(files, "b3sum", "--num-threads", "1")),
    f"{CPUS} x b3sum --num-threads 1": (
        "b3sum",
        lambda files, out: _xargs(files, "b3sum", "--num-threads", "1", parallel=CPUS),
    ),
    "merkle build --algorithm sha256": (
        None,
        lambda files, out: [*merkle_cli(), "build", str(files.root), "-o", out, "-q", "--algorithm", "sha256"],
    ),
    OPENSSL: ("openssl", lambda files, out: _xargs(files, "openssl", "dgst", "-sha256")),
    # The same builds on the pure-Python twins (the C extension switched off), side by side.
    "merkle build (pure)": (
        None,
        lambda files, out: ["env", "MERKLE_PURE=1", *merkle_cli(), "build", str(files.root), "-o", out, "-q"],
    ),
    "merkle build --algorithm sha256 (pure)": (
        None,
        lambda files, out: [
            "env",
            "MERKLE_PURE=1",
            *merkle_cli(),
            "build",
            str(files.root),
            "-o",
            out,
            "-q",
            "--algorithm",
            "sha256",
        ],
    ),
}

pytestmark = pytest.mark.benchmark(group=CASE)


def test_merkle_api(measure: Callable[..., None], small_files: SmallFiles) -> None:
    measure(CASE, "merkle.build (API)", lambda: merkle.build(small_files.root), small_files.size)


@pytest.mark.parametrize("tool", COMMANDS)
def test_process(tool: str, measure: Callable[..., None], small_files: SmallFiles, tmp_path: Path) -> None:
    program, make_argv = COMMANDS[tool]
    if program:
        require(program)
        require("xargs")
    argv = make_argv(small_files, str(tmp_path / "manifest.json"))
    measure(CASE, tool, lambda: run(argv), small_files.size)
