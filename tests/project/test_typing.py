"""The package promises a typed API (py.typed): keep it passing mypy --strict."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_mypy_strict_passes():
    r = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", "merkle"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
