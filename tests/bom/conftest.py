"""The BOM tests' shared fixtures: the real model files (tests/support/hf_layout.py), a key, and a bundle
signed over them, made once per test process; read-only for the tests (a test that tampers copies)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from support import hf_layout
from support.cli import run_cli


@pytest.fixture(scope="session")
def signed(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(model directory, private key, bundle signed over the model)."""
    d = tmp_path_factory.mktemp("bom")
    model = d / "model"
    shutil.copytree(hf_layout.model_dir(), model)
    assert run_cli("keygen", "-o", str(d / "k")).returncode == 0
    r = run_cli("build", str(model), "--sign", str(d / "k"), "-o", str(d / "b.json"), "--no-store")
    assert r.returncode == 0, r.stderr
    return model, d / "k", d / "b.json"
