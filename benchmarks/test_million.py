"""Datasets of many tiny files (16-64 bytes, 1,000 to a folder): 10,000,
100,000 and 1,000,000 files (10,000 in quick mode; MERKLE_BENCH_TINY sets
the counts), hot cache, every tool a whole process.

Here nothing is bytes: every second goes to walking, opening, recording and
(de)serialising per file, so the summary prints the cost per file and how it
grows with the count (1.00 = linear) next to `b3sum` over the same files
through `xargs -0` (which gets the list made beforehand and does not walk).
The signed and proof steps run against artefacts made once per dataset,
untimed: a manifest, a bundle, a compact bundle with its BUNDLE.manifest, a
proof of one file, and the same compact bundle alone in a folder with that
proof (nothing else beside it).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from . import datasets, perfile
from .procs import merkle_cli, peak_memory, require, run
from .settings import SEED, Settings, from_env
from .table import B3SUM

pytestmark = pytest.mark.benchmark(group="tiny files")


@dataclass(frozen=True)
class Prepared:
    files: datasets.SmallFiles
    work: Path
    key: Path
    pub: Path
    manifest: Path
    bundle: Path
    compact: Path  # with compact.manifest beside it
    lone: Path  # a copy of `compact` alone in a folder with `proof`
    proof: Path
    one: str  # the file the single-file steps name

    @property
    def case(self) -> str:
        return perfile.case(self.files.count)


_PREPARED: dict[int, Prepared] = {}


def _cli(*args: object) -> list[str]:
    return [*merkle_cli(), *map(str, args)]


def _prepare(settings: Settings, count: int, work: Path) -> Prepared:
    if count in _PREPARED:
        return _PREPARED[count]
    files = datasets.tiny_files(settings.data_dir, count, SEED)
    work.mkdir(parents=True, exist_ok=True)
    key = work / "key"
    one = f"d{(count // 2) // 1000:04d}/f{count // 2:07d}.bin"  # a file in the middle
    p = Prepared(
        files,
        work,
        key,
        work / "key.pub",
        work / "m.json",
        work / "b.json",
        work / "c.json",
        work / "lone" / "c.json",
        work / "lone" / "one.proof",
        one,
    )
    if not key.exists():
        run(_cli("keygen", "-o", key))
    run(_cli("build", files.root, "-o", p.manifest, "-q"))
    run(_cli("sign", p.manifest, "--key", key, "-o", p.bundle, "--no-store"))
    run(_cli("build", files.root, "--sign", key, "--compact", "-o", p.compact, "-q", "--no-store"))
    p.lone.parent.mkdir(exist_ok=True)
    shutil.copyfile(p.compact, p.lone)
    run(_cli("prove", p.manifest, one, "-o", p.proof))
    _PREPARED[count] = p
    return p


@pytest.fixture(scope="session")
def prepared(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Callable[[int], Prepared]:
    return lambda count: _prepare(settings, count, tmp_path_factory.getbasetemp() / f"tiny-{count}")


def _steps(p: Prepared, out: Path) -> dict[str, list[str]]:
    lone_file = p.files.root / p.one
    return {
        B3SUM: ["xargs", "-0", "-a", str(p.files.names), "b3sum"],
        "python -c pass": [sys.executable, "-c", "pass"],
        "merkle build": _cli("build", p.files.root, "-o", out, "-q"),
        "merkle build --sign": _cli("build", p.files.root, "--sign", p.key, "-o", out, "-q", "--no-store"),
        "merkle verify (manifest)": _cli("verify", p.files.root, p.manifest, "-q"),
        "merkle verify --key (bundle)": _cli("verify", p.files.root, p.bundle, "--key", p.pub, "-q", "--no-store"),
        "merkle sign (manifest, no hashing)": _cli("sign", p.manifest, "--key", p.key, "-o", out, "--no-store"),
        "merkle verify --files ONE": _cli(
            "verify", p.files.root, p.bundle, "--key", p.pub, "--files", p.one, "-q", "--no-store"
        ),
        "merkle verify --file ONE": _cli(
            "verify", p.files.root, p.bundle, "--key", p.pub, "--file", p.one, "-q", "--no-store"
        ),
        "merkle prove ONE": _cli("prove", p.manifest, p.one, "-o", out),
        "merkle verify --proof (manifest beside)": _cli(
            "verify", lone_file, p.compact, "--key", p.pub, "--proof", p.proof, "-q", "--no-store"
        ),
        "merkle verify --proof (bundle, proof only)": _cli(
            "verify", lone_file, p.lone, "--key", p.pub, "--proof", p.proof, "-q", "--no-store"
        ),
    }


STEPS = (
    B3SUM,
    "python -c pass",
    "merkle build",
    "merkle build --sign",
    "merkle verify (manifest)",
    "merkle verify --key (bundle)",
    "merkle sign (manifest, no hashing)",
    "merkle verify --files ONE",
    "merkle verify --file ONE",
    "merkle prove ONE",
    "merkle verify --proof (manifest beside)",
    "merkle verify --proof (bundle, proof only)",
)
COUNTS = [pytest.param(c, id=f"{c}") for c in from_env(Path(__file__).parents[1]).tiny_counts]


def _rounds(settings: Settings, count: int) -> int:
    return 1 if count >= 1_000_000 else settings.rounds


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("count", COUNTS)
def test_step(
    step: str,
    count: int,
    settings: Settings,
    prepared: Callable[[int], Prepared],
    measure: Callable[..., None],
    tmp_path: Path,
) -> None:
    steps = _steps(prepared(count), tmp_path / "out")
    assert tuple(steps) == STEPS
    argv = steps[step]
    require(argv[0] if argv[0] != "xargs" else "b3sum")
    measure(perfile.case(count), step, lambda: run(argv), prepared(count).files.size, rounds=_rounds(settings, count))


@pytest.mark.parametrize("step", ["merkle build", "merkle verify --key (bundle)", "merkle sign (manifest, no hashing)"])
@pytest.mark.parametrize("count", COUNTS)
def test_memory(
    step: str,
    count: int,
    prepared: Callable[[int], Prepared],
    record_files_memory: Callable[[perfile.Peak], None],
    tmp_path: Path,
) -> None:
    p = prepared(count)
    peak = peak_memory(_steps(p, tmp_path / "out")[step])
    record_files_memory(perfile.Peak(perfile.case(count), step, count, peak.rss_anon, peak.hwm))


def test_outputs_agree(settings: Settings, prepared: Callable[[int], Prepared]) -> None:
    """The timed steps hashed the real files: b3sum of 0x00 || content (a
    one-chunk file's root, docs/format.md H2/F2) is the root the manifest lists."""
    require("b3sum")
    p = prepared(settings.tiny_counts[0])
    data = b"\0" + (p.files.root / p.one).read_bytes()
    line = subprocess.run(["b3sum", "-"], input=data, capture_output=True, check=True).stdout.decode()
    assert line.split()[0] in p.manifest.read_text()
