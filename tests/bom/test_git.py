"""The BOM of a git work tree (docs/bom.md, docs/hf.md G1): the build's git origin is in its properties, and a
signed BOM checks the tree, origin and all; a real git repository."""

from __future__ import annotations

import json
import subprocess

from support.cli import run_cli


def git(where, *args):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(where), "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}  # fmt: skip
    return subprocess.run(["git", *args], cwd=where, env=env, check=True, capture_output=True).stdout.decode().strip()


def test_the_bom_of_a_git_work_tree_carries_its_origin_and_checks_it(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "config.json").write_text('{"a": 1}\n')
    (repo / "weights.bin").write_bytes(bytes(range(256)) * 64)
    git(repo, "add", "config.json", "weights.bin")
    git(repo, "commit", "-q", "-m", "one")
    git(repo, "remote", "add", "origin", "https://me:s3cret@example.com/team/model.git")
    commit = git(repo, "rev-parse", "HEAD")
    assert run_cli("keygen", "-o", str(tmp_path / "k")).returncode == 0
    out = tmp_path / "bom.json"
    r = run_cli("bom", str(repo), "--sign", str(tmp_path / "k"), "-o", str(out), "--no-store")
    assert r.returncode == 0, r.stderr
    assert "s3cret" not in out.read_text() and "s3cret" not in r.stderr
    r = run_cli("bom", str(repo), "-o", str(tmp_path / "plain.json"))
    assert r.returncode == 0, r.stderr
    (tree,) = json.loads((tmp_path / "plain.json").read_text())["components"]
    props = {p["name"]: p["value"] for p in tree["properties"]}
    assert props["merkle:origin:type"] == "git"
    assert props["merkle:origin:revision"] == commit
    assert props["merkle:origin:dirty"] == "false"
    assert props["merkle:origin:url"] == "https://example.com/team/model.git"
    assert "modelCard" not in tree  # no README.md: described without a card, not refused
    r = run_cli("bom", str(repo), "--check", str(out), "--key", str(tmp_path / "k.pub"), "--no-store")
    assert r.returncode == 0, r.stderr + r.stdout
    (repo / "config.json").write_text('{"a": 2}\n')
    r = run_cli("bom", str(repo), "--check", str(out), "--key", str(tmp_path / "k.pub"), "--no-store")
    assert r.returncode == 1
