"""One large file (4 GiB, test_peers.py's; 64 MiB in quick mode) read from
storage, not from the page cache: `merkle hash FILE` against `dd
if=FILE of=/dev/null bs=1M` (the reference: reading alone) and `b3sum FILE`
(issue 16, goal 6: >= 0.95x dd).

Before every round, the warm-up included, the file's pages are dropped and
mincore must count none resident (benchmarks/pagecache.py); where they cannot
be dropped the suite skips and says why.  On a virtual machine "cold" means
out of this kernel's page cache: the host may still cache the disk image.
The file is read back into the cache at the end, for the suites that follow.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from . import datasets, pagecache
from .procs import merkle_cli, require, run
from .settings import SEED, Settings
from .table import B3SUM, COLD, DD

COMMANDS: dict[str, Callable[[str], list[str]]] = {
    "merkle hash": lambda f: [*merkle_cli(), "hash", f],
    DD: lambda f: ["dd", f"if={f}", "of=/dev/null", "bs=1M", "status=none"],
    B3SUM: lambda f: ["b3sum", f],
}

pytestmark = pytest.mark.benchmark(group=COLD)


@pytest.fixture(scope="module")
def cold_file(settings: Settings) -> Iterator[datasets.BigFile]:
    big_file = datasets.big_file(settings.data_dir, settings.peer_big_size, SEED)
    why = pagecache.evict(big_file.path)
    if why:
        print(f"\ncold cache benchmarks skipped: {why}")
        pytest.skip(f"cannot make the file cold: {why}")
    yield big_file
    datasets.warm([big_file.path])


@pytest.mark.parametrize("tool", COMMANDS)
def test_cold(tool: str, measure: Callable[..., None], cold_file: datasets.BigFile) -> None:
    argv = COMMANDS[tool](str(cold_file.path))
    require(argv[0])

    def evict() -> None:
        why = pagecache.evict(cold_file.path)
        if why:
            raise RuntimeError(f"the file did not stay cold: {why}")

    measure(COLD, tool, lambda: run(argv), cold_file.size, setup=evict)
