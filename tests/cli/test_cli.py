"""The `merkle` program end to end, in child processes, on real files."""

import json
import os
from pathlib import Path

import pytest
from support import damage
from support.cli import assert_one_line_error

CHUNK = "4K"


def build(cli, d: Path, out: Path, *extra: str):
    r = cli("build", str(d), "-o", str(out), "--chunk-size", CHUNK, *extra)
    assert r.returncode == 0, r.stderr
    return r


def flip(path: Path, offset: int) -> None:
    damage.flip(path, offset, 0x80)


def test_build_then_verify_exits_0(cli, model_dir, tmp_path):
    m = tmp_path / "m.json"
    build(cli, model_dir, m)
    assert (tmp_path / "m.json.leaves").exists()
    r = cli("verify", str(model_dir), str(m))
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert "= model.safetensors" in lines and "= empty.txt" in lines and "= vocabulário.txt" in lines
    assert "verified" in r.stderr


@pytest.mark.parametrize("name", ["config.json", "1_Pooling/config.json", "model.safetensors", "vocabulário.txt"])
@pytest.mark.parametrize("where", ["first", "last"])
def test_one_changed_byte_in_any_file_exits_1_and_names_it(cli, model_dir, tmp_path, name, where):
    m = tmp_path / "m.json"
    build(cli, model_dir, m)
    target = model_dir / name
    flip(target, 0 if where == "first" else target.stat().st_size - 1)
    r = cli("verify", str(model_dir), str(m))
    assert r.returncode == 1
    bad = [line for line in r.stdout.splitlines() if line.startswith("*")]
    assert len(bad) == 1 and bad[0].startswith(f"* {name}"), r.stdout


def test_mismatch_names_the_chunk_from_the_sidecar(cli, model_dir, tmp_path):
    m = tmp_path / "m.json"
    build(cli, model_dir, m)
    flip(model_dir / "model.safetensors", 2 * 4096 + 5)
    r = cli("verify", str(model_dir), str(m), "--json")
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    (entry,) = [f for f in doc["files"] if f["status"] == "mismatch"]
    assert entry["path"] == "model.safetensors"
    assert entry["detail"] == "1 of 4 chunks differ, bytes 8192-12288"


def test_missing_and_extra_files(cli, model_dir, tmp_path):
    m = tmp_path / "m.json"
    build(cli, model_dir, m)
    (model_dir / "config.json").unlink()
    (model_dir / "new.bin").write_bytes(b"new")
    r = cli("verify", str(model_dir), str(m))
    assert r.returncode == 1
    assert "- config.json" in r.stdout.splitlines()
    assert "+ new.bin" in r.stdout.splitlines()
    doc = json.loads(cli("verify", str(model_dir), str(m), "--json").stdout)
    assert doc["ok"] is False and doc["counts"]["missing"] == 1 and doc["counts"]["extra"] == 1


def test_allow_extra(cli, model_dir, tmp_path):
    m = tmp_path / "m.json"
    build(cli, model_dir, m)
    (model_dir / "notes.txt").write_text("local notes")
    assert cli("verify", str(model_dir), str(m)).returncode == 1
    r = cli("verify", str(model_dir), str(m), "--allow-extra")
    assert r.returncode == 0, r.stdout


def test_quiet_prints_only_problems(cli, model_dir, tmp_path):
    m = tmp_path / "m.json"
    build(cli, model_dir, m)
    flip(model_dir / "config.json", 1)
    r = cli("verify", str(model_dir), str(m), "-q")
    lines = r.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("* config.json"), lines


def test_exclude_is_recorded_and_applied_on_verify(cli, model_dir, tmp_path):
    m = tmp_path / "m.json"
    (model_dir / "scratch.tmp").write_text("x")
    build(cli, model_dir, m, "--exclude", "*.tmp")
    doc = json.loads(m.read_text())
    assert doc["exclude"] == [".git", "*.tmp"]
    assert all(not f["path"].endswith(".tmp") for f in doc["files"])
    (model_dir / "other.tmp").write_text("y")
    assert cli("verify", str(model_dir), str(m)).returncode == 0


def test_git_directory_ignored_by_default(cli, model_dir, tmp_path):
    (model_dir / ".git").mkdir()
    (model_dir / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    m = tmp_path / "m.json"
    build(cli, model_dir, m)
    assert ".git/HEAD" not in m.read_text()
    m2 = tmp_path / "m2.json"
    build(cli, model_dir, m2, "--no-default-excludes")
    assert ".git/HEAD" in m2.read_text()


def test_sha256_and_chunk_size_are_recorded(cli, model_dir, tmp_path):
    m = tmp_path / "m.json"
    build(cli, model_dir, m, "--algorithm", "sha256", "--jobs", "1")
    doc = json.loads(m.read_text())
    assert doc["algorithm"] == "sha256" and doc["chunk_size"] == 4096
    assert cli("verify", str(model_dir), str(m)).returncode == 0


def test_build_json_summary(cli, model_dir, tmp_path):
    m = tmp_path / "m.json"
    r = build(cli, model_dir, m, "--json")
    doc = json.loads(r.stdout)
    assert doc["files"] == 5 and doc["root"] == json.loads(m.read_text())["root"]


def test_build_to_stdout(cli, model_dir):
    r = cli("build", str(model_dir), "-q")
    assert r.returncode == 0
    assert json.loads(r.stdout)["format"] == "merkle-manifest-v1"


def test_hash_prints_b3sum_style_lines_and_checks_them(cli, tmp_path):
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(os.urandom(10000))
    b.write_bytes(b"")
    r = cli("hash", str(a), str(b), "--chunk-size", CHUNK)
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert [line.split("  ", 1)[1] for line in lines] == [str(a), str(b)]
    assert all(len(line.split("  ")[0]) == 64 for line in lines)
    sums = tmp_path / "SUMS"
    sums.write_text(r.stdout)
    ok = cli("hash", "--check", str(sums), "--chunk-size", CHUNK)
    assert ok.returncode == 0 and ok.stdout.splitlines() == [f"{a}: OK", f"{b}: OK"]
    flip(a, 9999)
    bad = cli("hash", "--check", str(sums), "--chunk-size", CHUNK)
    assert bad.returncode == 1
    assert bad.stdout.splitlines() == [f"{a}: FAILED", f"{b}: OK"]
    assert "did NOT match" in bad.stderr


def test_hash_of_stdin_matches_hash_of_file(cli, tmp_path):
    data = os.urandom(9000)
    f = tmp_path / "f.bin"
    f.write_bytes(data)
    from_file = cli("hash", str(f), "--chunk-size", CHUNK).stdout.split()[0]
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, "-m", "merkle", "hash", "-", "--chunk-size", CHUNK], input=data, capture_output=True
    )
    assert r.stdout.decode().split()[0] == from_file


def test_hash_escapes_names_like_b3sum(cli, tmp_path):
    odd = tmp_path / "new\nline\\back.bin"
    odd.write_bytes(b"x")
    r = cli("hash", str(odd))
    assert r.stdout.startswith("\\")
    assert "new\\nline\\\\back.bin" in r.stdout
    sums = tmp_path / "SUMS"
    sums.write_text(r.stdout)
    assert cli("hash", "-c", str(sums)).returncode == 0


def test_demo_runs_and_catches_the_tampered_byte(cli, tmp_path):
    r = cli("demo", str(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "* model.safetensors" in r.stdout
    assert "The tampered byte was caught." in r.stdout
    assert "--range 0:1M   -> ok, 1048576 bytes read" in r.stdout
    assert "does not match the signed root" in r.stdout
    assert "with another key   -> signature does not verify" in r.stdout


def test_no_command_is_a_usage_error(cli):
    assert cli().returncode == 2
    r = cli("build", "--chunk-size", "3000", ".")
    assert r.returncode == 2
    assert_one_line_error(r, "power of two")
