"""Throughput on one large file (1 GiB; 64 MiB in quick mode), hot cache.

Each tool runs as a whole process, as a user would run it, except the first
row: merkle.hash_file in this process, which leaves out interpreter start-up.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

import merkle

from .datasets import BigFile
from .procs import merkle_cli, require, run
from .table import B3SUM, OPENSSL

CASE = "one large file"

COMMANDS: dict[str, Callable[[str], list[str]]] = {
    "merkle hash": lambda f: [*merkle_cli(), "hash", f],
    B3SUM: lambda f: ["b3sum", f],
    "b3sum --num-threads 1": lambda f: ["b3sum", "--num-threads", "1", f],
    "merkle hash --algorithm sha256": lambda f: [*merkle_cli(), "hash", "--algorithm", "sha256", f],
    OPENSSL: lambda f: ["openssl", "dgst", "-sha256", f],
}

pytestmark = pytest.mark.benchmark(group=CASE)


def test_merkle_api(measure: Callable[..., None], big_file: BigFile) -> None:
    measure(CASE, "merkle.hash_file (API)", lambda: merkle.hash_file(big_file.path), big_file.size)


@pytest.mark.parametrize("tool", COMMANDS)
def test_process(tool: str, measure: Callable[..., None], big_file: BigFile) -> None:
    argv = COMMANDS[tool](str(big_file.path))
    require(argv[0])
    measure(CASE, tool, lambda: run(argv), big_file.size)
