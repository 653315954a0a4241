"""Whole-process runs: the merkle CLI and its peers, timed or memory-sampled."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest


def merkle_cli() -> list[str]:
    """The `merkle` script installed beside this interpreter (the venv's)."""
    script = Path(sys.executable).parent / "merkle"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from merkle.cli import main; sys.exit(main())"]


def allow_bytecode() -> bool:
    """Let timed Python processes use and write their bytecode caches; True if
    the environment had turned that off.

    Some environments set PYTHONDONTWRITEBYTECODE=1: every `merkle` process
    then compiles its modules again and start-up doubles (about 140 ms instead
    of 70 ms over a bare interpreter), which is not what users' shells see.
    Children inherit os.environ, so unsetting it here covers every timed
    process; one untimed `merkle --version` then writes the caches."""
    was_set = os.environ.pop("PYTHONDONTWRITEBYTECODE", None) is not None
    subprocess.run([*merkle_cli(), "--version"], capture_output=True)
    return was_set


def require(program: str) -> None:
    """Skip the calling benchmark when a peer tool is not installed."""
    if not shutil.which(program):
        pytest.skip(f"{program} is not installed")


def run(argv: list[str]) -> None:
    """Run to completion with output discarded; a failure fails the benchmark."""
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited {done.returncode}: {done.stderr.decode(errors='replace')[-500:]}")


@dataclass(frozen=True)
class Peak:
    rss_anon: int  # bytes, the largest RssAnon seen while sampling
    hwm: int  # bytes, the last VmHWM seen: peak resident set, mapped file pages included
    samples: int


def peak_memory(argv: list[str], interval: float = 0.01) -> Peak:
    """Run argv and sample /proc/PID/status every `interval` seconds.

    The child is reaped only after its last sample, so its pid cannot be
    reused under us.  wait4's ru_maxrss is no substitute for VmHWM: it keeps
    the peak of the address space before exec, i.e. this (parent) process's."""
    out = [(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0)]
    pid = os.posix_spawnp(argv[0], argv, os.environ, file_actions=out)
    anon = hwm = samples = 0
    while True:
        fields = _status(pid)
        anon = max(anon, fields.get("RssAnon", 0))
        hwm = max(hwm, fields.get("VmHWM", 0))
        samples += 1
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(interval)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{argv[0]} exited {os.waitstatus_to_exitcode(status)}")
    return Peak(anon, hwm, samples)


def _status(pid: int) -> dict[str, int]:
    """The kB fields of /proc/PID/status, in bytes (empty once the child exits)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if value.strip().endswith(" kB"):
            fields[key] = int(value.split()[0]) * 1024
    return fields
