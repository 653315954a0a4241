"""`merkle run BUNDLE --key PUB PATH -- CMD` (docs/deploy.md): the command starts only after the tree verified,
in merkle's place (its exit code is the command's); a changed file, another key, a missing command or a missing
`--` never start it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support.cli import assert_one_line_error, run_cli


@pytest.fixture
def signed(tmp_path) -> tuple[Path, Path, Path]:
    tree = tmp_path / "model"
    tree.mkdir()
    (tree / "config.json").write_text('{"a": 1}\n')
    (tree / "weights.bin").write_bytes(os.urandom(3 << 20))
    assert run_cli("keygen", "-o", str(tmp_path / "k")).returncode == 0
    r = run_cli("build", str(tree), "--sign", str(tmp_path / "k"), "-o", str(tmp_path / "b.json"), "--no-store")
    assert r.returncode == 0, r.stderr
    return tree, tmp_path / "b.json", tmp_path / "k.pub"


def start(bundle: Path, key: Path, tree: Path, marker: Path, *extra: str, code: int = 0):
    script = f"echo started > {marker}; exit {code}"
    return run_cli("run", str(bundle), "--key", str(key), "--no-store", "-q", *extra, str(tree), "--", "sh", "-c",
                   script)  # fmt: skip


def test_the_command_starts_after_the_tree_verified_and_its_exit_code_is_returned(signed, tmp_path):
    tree, bundle, key = signed
    marker = tmp_path / "marker"
    r = start(bundle, key, tree, marker, code=7)
    assert r.returncode == 7, r.stderr
    assert marker.read_text() == "started\n"


@pytest.mark.parametrize("damage", ["changed", "added", "removed", "other-key"])
def test_a_tree_that_does_not_verify_never_starts_the_command(signed, tmp_path, damage):
    tree, bundle, key = signed
    if damage == "changed":
        with open(tree / "weights.bin", "r+b") as f:
            f.seek(1 << 20)
            f.write(b"\0")
    elif damage == "added":
        (tree / "extra.py").write_text("print('hi')\n")
    elif damage == "removed":
        (tree / "config.json").unlink()
    else:
        assert run_cli("keygen", "-o", str(tmp_path / "other")).returncode == 0
        key = tmp_path / "other.pub"
    marker = tmp_path / "marker"
    r = start(bundle, key, tree, marker)
    assert r.returncode == 1
    assert not marker.exists()
    assert "sh not started" in r.stderr or "signature does not verify" in r.stderr


def test_usage_errors_start_nothing(signed, tmp_path):
    tree, bundle, key = signed
    r = run_cli("run", str(bundle), "--key", str(key), str(tree), "--", "no-such-command-here")
    assert r.returncode == 2
    assert_one_line_error(r, "command not found")
    r = run_cli("run", str(bundle), "--key", str(key), str(tree))
    assert r.returncode == 2
    assert_one_line_error(r, "after --")
    r = run_cli("run", str(bundle), str(tree), "--key", str(key), "--", "true")  # an option after PATH
    assert r.returncode == 2
    assert_one_line_error(r, "after --")
