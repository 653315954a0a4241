"""What the attacker review of git clones found (issue 20), each now a test on a real git repository: the clone's
own config cannot make git run a program or fetch; a gitlink cannot hide a folder from a build; a FIFO or a tree
bomb in `.git` ends in one line; a local commit on a Hub clone is not a Hub origin; a pointer-looking file git-lfs
does not manage is a file; remote URLs that do not parse, or carry a password, are not shown; `commondir` and a
linked `objects` folder are refused."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from support.cli import assert_one_line_error, run_cli, statuses

from merkle.errors import SourceError
from merkle.git import repo as git_repo


def git(where: Path, *args: str, stdin: bytes | None = None) -> str:
    env = {"PATH": os.environ["PATH"], "HOME": str(where), "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_CONFIG_GLOBAL": os.devnull, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}  # fmt: skip
    done = subprocess.run(["git", *args], cwd=where, env=env, input=stdin, capture_output=True, check=True)
    return done.stdout.decode().strip()


def small_repo(path: Path) -> Path:
    path.mkdir()
    git(path, "init", "-q")
    (path / "config.json").write_text('{"a": 1}\n')
    (path / "d").mkdir()
    (path / "d" / "w.bin").write_bytes(bytes(range(256)) * 8)
    git(path, "add", "config.json", "d/w.bin")
    git(path, "commit", "-q", "-m", "one")
    return path


def loose(repo: Path, oid: str) -> Path:
    return repo / ".git" / "objects" / oid[:2] / oid[2:]


def test_the_clones_config_cannot_run_a_program_through_a_lazy_fetch(tmp_path):
    repo = small_repo(tmp_path / "r")
    marker = tmp_path / "PWNED"
    with open(repo / ".git" / "config", "a") as f:
        f.write(
            "[core]\n\trepositoryformatversion = 1\n[extensions]\n\tpartialClone = origin\n"
            f'[protocol "ext"]\n\tallow = always\n[remote "origin"]\n\turl = ext::sh -c touch% {marker}\n'
            "\tpromisor = true\n"
        )
    loose(repo, git(repo, "rev-parse", "HEAD:config.json")).unlink()
    r = run_cli("hf", "verify", str(repo))
    assert r.returncode == 2
    assert_one_line_error(r, "missing")
    r = run_cli("build", str(repo), "-o", str(tmp_path / "m.json"))
    assert r.returncode == 0, r.stderr  # git cannot read it: the plain tree, no origin claimed
    assert json.loads((tmp_path / "m.json").read_text()).get("origin") is None
    assert not marker.exists()


def test_a_gitlink_does_not_hide_a_folder_from_a_build(tmp_path):
    repo = small_repo(tmp_path / "r")
    head = git(repo, "rev-parse", "HEAD")
    git(repo, "update-index", "--add", "--cacheinfo", f"160000,{head},weights")
    git(repo, "commit", "-q", "-m", "gitlink")
    (repo / "weights").mkdir()
    (repo / "weights" / "model.bin").write_bytes(b"weights")
    out = tmp_path / "m.json"
    r = run_cli("build", str(repo), "-o", str(out))
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    assert "weights/model.bin" in {f["path"] for f in doc["files"]}
    assert "weights" not in doc["exclude"]
    assert doc["origin"]["dirty"] is True  # the commit does not vouch for a submodule's files
    (repo / "weights" / "model.bin").write_bytes(b"Weights")
    assert run_cli("verify", str(repo), str(out)).returncode == 1
    r = run_cli("hf", "verify", str(repo))
    assert r.returncode == 1
    assert statuses(r.stdout)["weights/model.bin"] == "+"


def test_a_fifo_where_an_object_should_be_ends_in_one_line(tmp_path, monkeypatch):
    repo = small_repo(tmp_path / "r")
    tree = git(repo, "rev-parse", "HEAD:d")
    loose(repo, tree).unlink()
    os.mkfifo(loose(repo, tree))
    monkeypatch.setattr(git_repo, "STALL", 2.0)
    with pytest.raises(SourceError, match="did not answer"):
        git_repo.open_repo(str(repo))


def test_a_fifo_config_is_refused_at_once(tmp_path):
    repo = small_repo(tmp_path / "r")
    (repo / ".git" / "config").unlink()
    os.mkfifo(repo / ".git" / "config")
    r = run_cli("hf", "verify", str(repo), timeout=30)
    assert r.returncode == 2
    assert_one_line_error(r, "config")


def test_a_tree_bomb_is_refused(tmp_path):
    """Three trees of 215 entries, each naming the one below 215 times: 9.9 million paths from 180 KB."""
    repo = tmp_path / "r"
    repo.mkdir()
    git(repo, "init", "-q")
    blob = git(repo, "hash-object", "-w", "--stdin", stdin=b"x\n")
    tree = git(repo, "mktree", stdin="".join(f"100644 blob {blob}\tf{i}\n" for i in range(215)).encode())
    for _ in range(2):
        tree = git(repo, "mktree", stdin="".join(f"040000 tree {tree}\td{i}\n" for i in range(215)).encode())
    commit = git(repo, "commit-tree", tree, "-m", "bomb")
    git(repo, "update-ref", "HEAD", commit)
    r = run_cli("hf", "verify", str(repo), timeout=120)
    assert r.returncode == 2
    assert_one_line_error(r, "more than 2,000,000 entries")


def test_a_local_commit_on_a_hub_clone_is_not_a_hub_origin(tmp_path):
    src = small_repo(tmp_path / "src")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(src), str(clone))
    git(clone, "remote", "set-url", "origin", "https://huggingface.co/org/model")
    out = tmp_path / "m.json"
    assert run_cli("build", str(clone), "-o", str(out)).returncode == 0
    assert json.loads(out.read_text())["origin"]["type"] == "huggingface"  # the fetched tip: the Hub's commit
    (clone / "config.json").write_text('{"a": 2}\n')
    git(clone, "commit", "-q", "-a", "-m", "local")
    r = run_cli("build", str(clone), "-o", str(out))
    assert r.returncode == 0, r.stderr
    origin = json.loads(out.read_text())["origin"]
    assert origin["type"] == "git" and origin["dirty"] is False
    assert origin["url"] == "https://huggingface.co/org/model"


def test_a_pointer_looking_file_git_lfs_does_not_manage_is_a_file(tmp_path):
    repo = small_repo(tmp_path / "r")
    text = b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"a" * 64 + b"\nsize 12\n"
    (repo / "fixture.txt").write_bytes(text)
    git(repo, "add", "fixture.txt")
    git(repo, "commit", "-q", "-m", "fixture")
    r = run_cli("hf", "verify", str(repo))
    assert r.returncode == 0, r.stdout + r.stderr
    assert statuses(r.stdout)["fixture.txt"] == "="
    assert run_cli("build", str(repo), "-o", str(tmp_path / "m.json")).returncode == 0
    (repo / ".gitattributes").write_text("*.txt filter=lfs diff=lfs merge=lfs -text\n")
    git(repo, "add", ".gitattributes")
    git(repo, "commit", "-q", "-m", "lfs")
    r = run_cli("hf", "verify", str(repo))
    assert statuses(r.stdout)["fixture.txt"] == "~"  # now git-lfs's: a pointer not pulled


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://u:p@host:abc/x", None),
        ("https://host:99999/x", None),
        ("https://[::1/x", None),
        ("user:hunter2@gitlab.com:group/proj.git", "gitlab.com:group/proj.git"),
        ("git@github.com:org/repo.git", "git@github.com:org/repo.git"),
        ("https://me:pw@huggingface.co/org/m?token=t#x", "https://huggingface.co/org/m"),
    ],
    ids=["bad-port", "port-range", "bad-ipv6", "scp-password", "scp-user", "https-credentials"],
)
def test_remote_urls_that_do_not_parse_or_carry_secrets(tmp_path, url, shown):
    assert git_repo.public_url(url) == shown
    repo = small_repo(tmp_path / "r")
    git(repo, "remote", "add", "origin", url)
    r = run_cli("hf", "verify", str(repo), "--json")
    assert r.returncode == 0, r.stderr
    assert "hunter2" not in r.stdout + r.stderr and "Traceback" not in r.stderr
    assert run_cli("build", str(repo), "-o", str(tmp_path / "m.json")).returncode == 0


def test_commondir_and_a_linked_objects_folder_are_refused(tmp_path):
    other = small_repo(tmp_path / "other")
    shell = tmp_path / "shell"
    (shell / ".git").mkdir(parents=True)
    (shell / ".git" / "HEAD").write_text("ref: refs/heads/master\n")
    (shell / ".git" / "commondir").write_text(str(other / ".git") + "\n")
    r = run_cli("hf", "verify", str(shell))
    assert r.returncode == 2
    assert_one_line_error(r, "commondir")
    linked = small_repo(tmp_path / "linked")
    objects = linked / ".git" / "objects"
    objects.rename(tmp_path / "objects")
    objects.symlink_to(tmp_path / "objects")
    r = run_cli("hf", "verify", str(linked))
    assert r.returncode == 2
    assert_one_line_error(r, "objects")


def test_a_tree_listing_a_name_twice_is_refused(tmp_path):
    repo = tmp_path / "r"
    repo.mkdir()
    git(repo, "init", "-q")
    blob = git(repo, "hash-object", "-w", "--stdin", stdin=b"x\n")
    raw = b"".join(b"100644 a\0" + bytes.fromhex(blob) for _ in range(2))
    tree = git(repo, "hash-object", "-w", "-t", "tree", "--literally", "--stdin", stdin=raw)
    git(repo, "update-ref", "HEAD", git(repo, "commit-tree", tree, "-m", "twice"))
    r = run_cli("hf", "verify", str(repo))
    assert r.returncode == 2
    assert_one_line_error(r, "twice")


def test_a_clone_named_by_a_relative_path(tmp_path):
    repo = small_repo(tmp_path / "r")
    out = tmp_path / "m.json"
    r = run_cli("build", "r", "-o", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(out.read_text())["origin"]["revision"] == git(repo, "rev-parse", "HEAD")
    r = run_cli("hf", "verify", "r", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
