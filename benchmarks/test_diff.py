"""`merkle diff` of two large manifests (issue 22's goal: two 100,000-file
manifests compared in under 1 s, whole process).

Two manifests of 100,000 entries (10,000 in quick mode), made in-process
with `Manifest.create` (no tree on disk: diff reads only manifests), the
second with one entry in a thousand given a new root; and a pair that
differs in nothing.  Each step a whole process: `merkle --version`
(start-up), `diff` of the two JSON files (the text tool's floor for the same
bytes), `merkle diff` of the pair that differs and of the identical pair.
Nothing asserts a time.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from merkle.format.manifest import FileEntry, Manifest

from .procs import merkle_cli
from .settings import Settings

pytestmark = pytest.mark.benchmark(group="diff")


@pytest.fixture(scope="module")
def pair(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, int]:
    count = 10_000 if settings.quick else 100_000
    work = tmp_path_factory.mktemp("diff")
    files = [
        FileEntry(f"shard{i // 1000:03d}/file{i:06d}.bin", 4096 + i, hashlib.sha256(b"%d" % i).digest())
        for i in range(count)
    ]
    Manifest.create(files).save(work / "a.json")
    edited = [
        FileEntry(f.path, f.size, hashlib.sha256(b"edited %d" % i).digest()) if i % 1000 == 0 else f
        for i, f in enumerate(files)
    ]
    Manifest.create(edited).save(work / "b.json")
    return work / "a.json", work / "b.json", count


def _run(argv: list[str], codes: tuple[int, ...]) -> None:
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert done.returncode in codes, f"{argv[:3]} exited {done.returncode}"


@pytest.mark.parametrize(
    "step", ["merkle --version", "diff A.json B.json", "merkle diff A B (1 in 1,000 changed)", "merkle diff A A"]
)
def test_diff_step(step: str, pair: tuple[Path, Path, int], measure: Callable[..., None]) -> None:
    a, b, count = pair
    argv, codes = {
        "merkle --version": ([*merkle_cli(), "--version"], (0,)),
        "diff A.json B.json": (["diff", str(a), str(b)], (1,)),
        "merkle diff A B (1 in 1,000 changed)": ([*merkle_cli(), "diff", str(a), str(b)], (1,)),
        "merkle diff A A": ([*merkle_cli(), "diff", str(a), str(a)], (0,)),
    }[step]
    measure(f"diff: {count:,} files", step, lambda: _run(argv, codes), 0)
