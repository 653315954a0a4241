"""`merkle build --update OLD` after a README edit (issue 22): a model
directory (3 shards of 1 GiB; 16 MiB in quick mode, test_peers.py's) whose
README changes before every run.  Three whole processes are timed: a full
build, `build --update OLD` (the shards taken from the identity records,
the README hashed) and `merkle --version` (start-up).  The goal: --update
within 2x of `merkle --version` and under 5% of a full build.  Nothing
asserts a time.

The tree is a private copy (hard links to the cached shards, when the data
directory allows, and its own small files): the README is rewritten in place.
Linking changes a shard's ctime, so the copy waits out identities.RACY_NS
before the first build records it.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import merkle
from merkle.hashing.identities import RACY_NS

from . import datasets
from .procs import merkle_cli, run
from .settings import SEED, Settings

CASE = "update: model dir, README edited"


def _private_copy(model: datasets.SmallFiles, where: Path) -> Path:
    shutil.rmtree(where, ignore_errors=True)
    where.mkdir(parents=True)
    for name in sorted(os.listdir(model.root)):
        source = model.root / name
        if name.endswith(".safetensors"):
            try:
                os.link(source, where / name)
                continue
            except OSError:  # another file system: a copy
                pass
        shutil.copyfile(source, where / name)
    time.sleep(RACY_NS / 1e9 + 0.2)
    return where


@pytest.fixture(scope="module")
def prepared(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, int]]:
    """The private tree, OLD (its full build, which recorded the identities)
    and its size; identity records and checkpoints in a directory of its own."""
    state = tmp_path_factory.mktemp("state")
    saved = {k: os.environ.get(k) for k in ("MERKLE_IDENTITIES", "MERKLE_CHECKPOINTS", "PYTHONPATH")}
    os.environ.update(MERKLE_IDENTITIES=str(state / "identities"), MERKLE_CHECKPOINTS=str(state / "checkpoints"))
    # The script runs the merkle this pytest imports (a checkout's, not only the installed one): it has --update.
    os.environ["PYTHONPATH"] = str(Path(merkle.__file__).resolve().parents[1])
    try:
        model = datasets.model_dir(settings.data_dir, settings.shard_size, SEED)
        tree = _private_copy(model, settings.data_dir / f"update-{settings.shard_size}")
        old = state / "old.json"
        run([*merkle_cli(), "build", str(tree), "-o", str(old), "-q"])
        yield tree, old, model.size
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.mark.parametrize("tool", ["merkle build", "merkle build --update", "merkle --version"])
def test_update_after_readme_edit(
    tool: str, prepared: tuple[Path, Path, int], measure: Callable[..., None], tmp_path: Path
) -> None:
    tree, old, size = prepared
    readme = tree / "README.md"
    edits = iter(range(1 << 30))

    def edit() -> None:
        readme.write_text(f"# model\n\nedit {next(edits)}\n" + "x" * 5000)

    out = str(tmp_path / "new.json")
    argv = {
        "merkle build": [*merkle_cli(), "build", str(tree), "-o", out, "-q"],
        "merkle build --update": [*merkle_cli(), "build", str(tree), "-o", out, "-q", "--update", str(old)],
        "merkle --version": [*merkle_cli(), "--version"],
    }[tool]
    measure(CASE, tool, lambda: run(argv), size, edit)
