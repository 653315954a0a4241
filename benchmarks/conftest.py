"""Fixtures shared by the benchmark suites, and the summary table at the end.

Every timed benchmark goes through `measure`, which runs the function with
benchmark.pedantic and records its median here too, so the table of GB/s and
ratios is computed from this run alone (also with --benchmark-disable: one
run, no warm-up).  The CPU, merkle's BLAKE3 tier, the masks and the blake3
package's per-core speed are taken once at the start (benchmarks/cpu.py) and
head the report and the table.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from . import cpu, datasets, perfile, procs, table
from .settings import SEED, Settings, from_env

TIMINGS = pytest.StashKey[list[table.Timing]]()
MEMORY = pytest.StashKey[list[table.Memory]]()
FILES_MEMORY = pytest.StashKey[list[perfile.Peak]]()
STARTUP = pytest.StashKey[list[table.Startup]]()
CPU = pytest.StashKey[cpu.Cpu]()
BYTECODE_WAS_OFF = pytest.StashKey[bool]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[TIMINGS] = []
    config.stash[MEMORY] = []
    config.stash[FILES_MEMORY] = []
    config.stash[STARTUP] = []
    config.stash[CPU] = cpu.detect()
    config.stash[BYTECODE_WAS_OFF] = procs.allow_bytecode()


def pytest_report_header(config: pytest.Config) -> list[str]:
    s = from_env(config.rootpath)
    bytecode = (
        "PYTHONDONTWRITEBYTECODE was set: unset for the timed processes (it doubles start-up)"
        if config.stash.get(BYTECODE_WAS_OFF, False)
        else "bytecode caches on, as in a user's shell"
    )
    return [
        f"merkle benchmarks: {s.mode} mode, one file of {s.big_size >> 20} MiB, {s.small_count} small files, "
        f"{s.rounds} rounds; data in {s.data_dir}; {bytecode}",
        config.stash[CPU].line(),
    ]


@pytest.fixture(scope="session")
def settings(pytestconfig: pytest.Config) -> Settings:
    return from_env(pytestconfig.rootpath)


@pytest.fixture(scope="session")
def big_file(settings: Settings) -> datasets.BigFile:
    return datasets.big_file(settings.data_dir, settings.big_size, SEED)


@pytest.fixture(scope="session")
def small_files(settings: Settings) -> datasets.SmallFiles:
    return datasets.small_files(settings.data_dir, settings.small_count, settings.small_min, settings.small_max, SEED)


@pytest.fixture
def measure(benchmark: BenchmarkFixture, settings: Settings, pytestconfig: pytest.Config) -> Callable[..., None]:
    """measure(case, tool, fn, nbytes, setup=None, rounds=None): time fn and
    record its median; setup, if given, runs untimed before every call (also
    the warm-up); rounds: this many instead of the mode's (1 for a long run)."""

    def run(
        case: str,
        tool: str,
        fn: Callable[[], object],
        nbytes: int,
        setup: Callable[[], object] | None = None,
        rounds: int | None = None,
    ) -> None:
        times: list[float] = []

        def timed() -> None:
            if setup is not None:
                setup()
            started = time.perf_counter()
            fn()
            times.append(time.perf_counter() - started)

        benchmark.extra_info.update(case=case, tool=tool, bytes=nbytes)
        rounds = rounds or settings.rounds
        benchmark.pedantic(  # type: ignore[no-untyped-call]  # pytest-benchmark is untyped
            timed, rounds=rounds, iterations=1, warmup_rounds=settings.warmup
        )
        kept = times[settings.warmup : settings.warmup + rounds] or times  # disabled: one call
        median = statistics.median(kept)
        benchmark.extra_info["gb_per_s"] = round(nbytes / median / 1e9, 3)
        pytestconfig.stash[TIMINGS].append(table.Timing(case, tool, median, len(kept), nbytes))

    return run


@pytest.fixture
def record_memory(pytestconfig: pytest.Config) -> Callable[[table.Memory], None]:
    return pytestconfig.stash[MEMORY].append


@pytest.fixture
def record_files_memory(pytestconfig: pytest.Config) -> Callable[[perfile.Peak], None]:
    return pytestconfig.stash[FILES_MEMORY].append


@pytest.fixture
def record_startup(pytestconfig: pytest.Config) -> Callable[[table.Startup], None]:
    return pytestconfig.stash[STARTUP].append


@pytest.hookimpl(trylast=True)  # after pytest-benchmark's tables
def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    timings, memory = config.stash.get(TIMINGS, []), config.stash.get(MEMORY, [])
    files_memory = config.stash.get(FILES_MEMORY, [])
    startup = config.stash.get(STARTUP, [])
    machine = config.stash.get(CPU, None)
    if not (timings or memory or startup or files_memory) or machine is None:
        return
    s = from_env(config.rootpath)
    others = [t for t in timings if not t.case.startswith(perfile.PREFIX)]
    terminalreporter.section(f"merkle vs peers ({s.mode} mode, medians of this run)")
    for line in table.render(others, memory, startup, machine.line()):
        terminalreporter.write_line(line)
    per_file = perfile.render(timings, files_memory)
    if per_file:
        terminalreporter.section("merkle on many tiny files (per file, medians of this run)")
        for line in per_file:
            terminalreporter.write_line(line)
    extra = {"tiny_files": perfile.rows(timings), "tiny_files_memory": perfile.peak_rows(files_memory)}
    table.write_json(s.out, s.mode, machine.to_json(), others, memory, startup, extra)
    terminalreporter.write_line(f"\ntable written to {s.out}")
