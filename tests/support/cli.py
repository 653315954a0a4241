"""The real `merkle` program in a child process, and the shape of what it prints."""

import os
import subprocess
import sys
from pathlib import Path


def run_cli(
    *args: str, cwd: Path | None = None, timeout: float = 60, stdin: bytes | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real `merkle` program in a child process."""
    env = dict(os.environ, PYTHONWARNINGS="error::ResourceWarning")
    return subprocess.run(
        [sys.executable, "-m", "merkle", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        input=stdin.decode() if stdin is not None else None,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    err = result.stderr.strip()
    assert "Traceback" not in result.stderr
    assert err.startswith("merkle: error: "), err
    assert len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, (needle, err)


def statuses(stdout: str) -> dict[str, str]:
    """{path: symbol} from `merkle verify` lines like '* a.bin  (detail)'."""
    out = {}
    for line in stdout.splitlines():
        symbol, _, rest = line.partition(" ")
        out[rest.split("  (")[0]] = symbol
    return out


MODEL_SIGNING = Path(sys.executable).parent / "model_signing"
"""OpenSSF model-signing's own CLI (a test extra), beside this interpreter."""


def run_model_signing(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The real model-signing CLI in a child process."""
    assert MODEL_SIGNING.exists(), MODEL_SIGNING
    return subprocess.run(
        [str(MODEL_SIGNING), *args], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, cwd=cwd
    )
