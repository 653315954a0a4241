"""What an ML-BOM costs over the build it describes (docs/bom.md B6).

The data is test_peers.py's model directory (three weight shards of 1 GiB,
16 MiB in quick mode, and a model repository's small files).  Every step is
a whole process: `merkle build` (the reference, "x ref"), `merkle bom PATH`
(the same build, then the CycloneDX document), `merkle bom PATH --sha256`
(whole-file SHA-256 and BLAKE3 in the same read as the tree), and coreutils
`sha256sum` over the same files, the second read that --sha256 saves.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from . import datasets
from .procs import merkle_cli, run
from .settings import SEED, Settings
from .table import MERKLE_BUILD

pytestmark = pytest.mark.benchmark(group="bom")

CASE = "bom: model dir"
STEPS = (MERKLE_BUILD, "merkle bom", "merkle bom --sha256", "sha256sum")


@pytest.fixture(scope="module")
def model(settings: Settings) -> datasets.SmallFiles:
    return datasets.model_dir(settings.data_dir, settings.shard_size, SEED)


@pytest.mark.parametrize("step", STEPS)
def test_bom_step(step: str, model: datasets.SmallFiles, tmp_path: Path, measure: Callable[..., None]) -> None:
    out = str(tmp_path / "out.json")
    if step == "sha256sum":
        if shutil.which("sha256sum") is None:
            pytest.skip("coreutils sha256sum is not installed")
        names = sorted(str(p) for p in model.root.iterdir())
        argv = ["sha256sum", *names]
    elif step == MERKLE_BUILD:
        argv = [*merkle_cli(), "build", str(model.root), "-o", out, "-q"]
    else:
        argv = [*merkle_cli(), "bom", str(model.root), "-o", out, "-q", *step.split()[2:]]
    measure(CASE, step, lambda: run(argv), model.size)
