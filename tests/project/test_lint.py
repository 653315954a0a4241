"""The lint gate (sigstore-python's `make lint`): ruff's checks and its
formatter agree with the tree, so the README's test command enforces them;
mypy --strict is tests/project/test_typing.py."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PATHS = ["merkle", "tests", "benchmarks"]


def _ruff() -> list[str]:
    beside = Path(sys.executable).parent / "ruff"  # the venv's, installed by the test extras
    return [str(beside)] if beside.exists() else [shutil.which("ruff") or "ruff"]


def test_ruff_check_passes():
    r = subprocess.run([*_ruff(), "check", *PATHS], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_ruff_format_leaves_the_tree_unchanged():
    r = subprocess.run([*_ruff(), "format", "--check", *PATHS], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
