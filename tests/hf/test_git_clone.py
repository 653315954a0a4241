"""`merkle hf verify CLONE` (docs/hf.md, "A git clone"): a real `git clone` of the real model's git + git-lfs
repository, checked offline against its own commit: each file against its git blob id, LFS files against their
pointer's SHA-256, every object on the way hashed against its id.  Statuses for a flipped LFS byte, an edited config,
a pointer not pulled, an untracked and a removed file; git's configuration, hooks and filters in the clone run
nothing; a clone's commit can be pinned; and the same clone verifies against a bundle signed over the cache."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import zlib
from pathlib import Path

import pytest
from support import hf_layout as hl
from support.cli import assert_one_line_error, run_cli, statuses
from support.hf import LFS, README, REPO_ID, all_ok, hf

CONFIG = "config.json"


def git(repo: hl.RepoInfo, where: Path, *args: str, **env: str) -> str:
    return repo.repo.run(*args, cwd=where, extra_env=env).decode().strip()


@pytest.fixture(scope="module")
def full(tmp_path_factory, repo) -> Path:
    """A real `git clone` through git-lfs (file:// remote, so git-lfs fetches the objects): every file present."""
    base = tmp_path_factory.mktemp("git-full")
    git(repo, base, "clone", "-q", "file://" + str(repo.repo.path), str(base / "clone"))
    dest = base / "clone"
    assert (dest / LFS).stat().st_size == repo.files[LFS].size
    return dest


def copy(clone: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "clone"
    shutil.copytree(clone, dest, symlinks=True)
    return dest


def test_a_full_clone_verifies_against_its_commit(full, repo):
    r = hf(full, "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert {f["path"]: f["status"] for f in doc["files"]} == {p: "ok" for p in repo.files}
    assert doc["checkout"]["kind"] == "git"
    assert doc["checkout"]["revision"] == repo.commit
    assert doc["bytes_hashed"] == sum(f.size for f in repo.files.values())


def test_each_change_gets_its_own_status(full, repo, tmp_path):
    work = copy(full, tmp_path)
    with open(work / LFS, "r+b") as f:  # one flipped byte in the LFS file
        f.seek(4096)
        b = f.read(1)
        f.seek(4096)
        f.write(bytes([b[0] ^ 1]))
    (work / CONFIG).write_text((work / CONFIG).read_text().replace("}", ' , "x": 1}', 1))
    (work / "notes.txt").write_text("mine")
    (work / "vocab.txt").unlink()
    r = hf(work)
    assert r.returncode == 1
    got = statuses(r.stdout)
    assert got == {**all_ok(repo), LFS: "*", CONFIG: "*", "notes.txt": "+", "vocab.txt": "-"}
    lines = {ln.split()[1]: ln for ln in r.stdout.splitlines()}
    assert repo.files[LFS].lfs_sha256 in lines[LFS]  # the pointer's oid is what it was checked against
    assert f"commit {repo.commit[:12]}" in lines[CONFIG]
    assert "untracked" in lines["notes.txt"]


def test_a_pointer_not_pulled_is_not_downloaded_and_a_partial_pull_fills_it(tmp_path_factory, tmp_path):
    """Two LFS files (the model's own rule plus vocab.txt); `git lfs pull --include` one of them."""
    src = hl.make_git_repo(hl.model_dir(), tmp_path_factory.mktemp("git-two-lfs") / "repo", ["vocab.txt"])
    assert set(src.lfs_paths) == {LFS, "vocab.txt"}
    dest = hl.clone_with_pointers(src, tmp_path / "clone")
    r = hf(dest)
    assert r.returncode == 0, r.stdout + r.stderr
    assert statuses(r.stdout) == {**all_ok(src), LFS: "~", "vocab.txt": "~"}
    assert hf(dest, "--require-all").returncode == 1
    git(src, dest, "lfs", "pull", "--include", "vocab.txt")
    r = hf(dest)
    assert r.returncode == 0, r.stdout + r.stderr
    assert statuses(r.stdout) == {**all_ok(src), LFS: "~"}


def test_an_lfs_file_whose_pointer_lies_about_its_size(full, repo, tmp_path):
    """A commit whose pointer gives the right oid and another size: the pulled content cannot match it."""
    work = copy(full, tmp_path)
    sha, size = repo.files[LFS].lfs_sha256, repo.files[LFS].size
    lying = b"version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %d\n" % (sha.encode(), size + 1)
    blob = subprocess.run(
        ["git", "hash-object", "-w", "--stdin"], input=lying, cwd=work, env=repo.repo.env(), capture_output=True,
        check=True,
    ).stdout.decode().strip()  # fmt: skip
    git(repo, work, "update-index", "--cacheinfo", f"100644,{blob},{LFS}")
    git(repo, work, "commit", "-q", "--no-verify", "-m", "lying pointer")
    r = hf(work)
    assert r.returncode == 1
    assert statuses(r.stdout)[LFS] == "*"
    assert f"size {size}, commit" in r.stdout and f"says {size + 1}" in r.stdout


def test_a_pinned_commit_and_a_newer_head(full, repo, tmp_path):
    work = copy(full, tmp_path)
    (work / README).write_text("# edited\n")
    git(repo, work, "commit", "-q", "-a", "--no-verify", "-m", "edit")
    head = git(repo, work, "rev-parse", "HEAD")
    assert hf(work).returncode == 0
    r = hf(work, "--revision", repo.commit, "--json")
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    assert {f["path"]: f["status"] for f in doc["files"] if f["status"] != "ok"} == {README: "mismatch"}
    assert doc["checkout"]["revision"] == repo.commit
    git(repo, work, "checkout", "-q", "--detach", repo.commit)  # a detached HEAD is a commit like any other
    assert hf(work).returncode == 0
    assert hf(work, "--revision", head).returncode == 1
    r = hf(work, "--revision", "0" * 40)
    assert r.returncode == 2
    assert_one_line_error(r, "missing")


def test_a_swapped_object_is_found(full, repo, tmp_path):
    """A loose tree object replaced by another tree's bytes: git reads it without a word; its id does not match."""
    work = copy(full, tmp_path)
    (work / "1_Pooling" / "config.json").write_text("{}\n")
    git(repo, work, "commit", "-q", "-a", "--no-verify", "-m", "edit")
    sub = git(repo, work, "rev-parse", "HEAD:1_Pooling")
    other = git(repo, work, "rev-parse", "HEAD~1:1_Pooling")
    body = subprocess.run(["git", "cat-file", "tree", other], cwd=work, env=repo.repo.env(), capture_output=True,
                          check=True).stdout  # fmt: skip
    loose = work / ".git" / "objects" / sub[:2] / sub[2:]
    assert loose.is_file()
    os.chmod(loose, 0o644)
    loose.write_bytes(zlib.compress(b"tree %d\0" % len(body) + body))
    r = hf(work)
    assert r.returncode == 2
    assert_one_line_error(r, sub, "does not hash to its id")


def test_git_in_the_clone_runs_nothing(full, repo, tmp_path):
    """The clone's own config asks git to run programs (fsmonitor, filters, a pager, hooks): none runs."""
    work = copy(full, tmp_path)
    marker = tmp_path / "ran"
    script = tmp_path / "evil.sh"
    script.write_text(f"#!/bin/sh\necho ran >> {marker}\ncat\n")
    script.chmod(0o755)
    with open(work / ".git" / "config", "a") as f:
        f.write(
            f"[core]\n\tfsmonitor = {script}\n\tpager = {script}\n\thooksPath = {tmp_path}\n"
            f'[filter "lfs"]\n\tclean = {script}\n\tsmudge = {script}\n\tprocess = {script}\n'
            f"[extensions]\n\tpartialClone = origin\n"
        )
    for hook in ("post-checkout", "pre-commit", "reference-transaction"):
        shutil.copy(script, work / ".git" / "hooks" / hook)
    r = hf(work)
    assert r.returncode == 0, r.stdout + r.stderr
    assert not marker.exists()


def test_credentials_in_the_remote_url_are_never_shown(full, repo, tmp_path):
    work = copy(full, tmp_path)
    git(repo, work, "remote", "set-url", "origin", f"https://me:s3cret@huggingface.co/{REPO_ID}.git?token=t0k")
    r = hf(work, "--json")
    assert r.returncode == 0
    assert "s3cret" not in r.stdout + r.stderr and "t0k" not in r.stdout + r.stderr
    assert json.loads(r.stdout)["checkout"]["repo"] == REPO_ID


def test_a_shallow_clone_verifies(repo, tmp_path):
    dest = tmp_path / "shallow"
    git(repo, tmp_path, "clone", "-q", "--depth", "1", "file://" + str(repo.repo.path), str(dest))
    assert (dest / ".git" / "shallow").is_file()
    r = hf(dest)
    assert r.returncode == 0, r.stdout + r.stderr


def test_a_linked_worktree_is_refused_with_one_line(full, repo, tmp_path):
    work = copy(full, tmp_path)
    git(repo, work, "worktree", "add", "-q", str(tmp_path / "wt"))
    r = hf(tmp_path / "wt")
    assert r.returncode == 2
    assert_one_line_error(r, ".git file", "linked worktree")


def test_a_sha256_repository(tmp_path, repo):
    """git's SHA-256 object format: blob ids of 64 hex digits, checked with SHA-256."""
    work = tmp_path / "sha256"
    work.mkdir()
    git(repo, work, "init", "-q", "--object-format=sha256")
    (work / "a.txt").write_text("alpha\n")
    (work / "d").mkdir()
    (work / "d" / "b.bin").write_bytes(bytes(range(256)) * 10)
    git(repo, work, "add", "a.txt", "d/b.bin")
    git(repo, work, "commit", "-q", "--no-verify", "-m", "one")
    assert len(git(repo, work, "rev-parse", "HEAD")) == 64
    r = hf(work)
    assert r.returncode == 0, r.stdout + r.stderr
    assert statuses(r.stdout) == {"a.txt": "=", "d/b.bin": "="}
    (work / "a.txt").write_text("alphA\n")  # same size: the content decides
    r = hf(work)
    assert r.returncode == 1
    blob = git(repo, work, "rev-parse", "HEAD:a.txt")
    assert "git blob id (sha256)" in r.stdout and blob in r.stdout


def test_the_clone_verifies_against_a_bundle_signed_over_the_cache(full, bundle, key, repo, clone):
    r = run_cli("verify", str(full), str(bundle), "--key", f"{key}.pub", "--no-store")
    assert r.returncode == 0, r.stdout + r.stderr
    r = run_cli("verify", str(clone), str(bundle), "--key", f"{key}.pub", "--no-store", "--sparse")
    assert r.returncode == 0, r.stdout + r.stderr
    assert statuses(r.stdout) == {**all_ok(repo), LFS: "~"}


# --------------------------------------------------------------------------------------------------------------------
# `merkle build` of a git work tree records where its files come from (docs/hf.md G1-G3)


def build(path: Path, out: Path, *args: str):
    return run_cli("build", str(path), "-o", str(out), *args)


def origin_of(manifest: Path) -> dict | None:
    return json.loads(manifest.read_text()).get("origin")


def test_a_build_of_a_clone_records_its_commit_and_verifies(full, repo, tmp_path):
    out = tmp_path / "m.json"
    r = build(full, out)
    assert r.returncode == 0, r.stderr
    url = "file://" + str(repo.repo.path)
    assert origin_of(out) == {"type": "git", "url": url, "revision": repo.commit, "dirty": False}
    assert all("hub" not in f for f in json.loads(out.read_text())["files"])  # not a Hub repository
    r = run_cli("verify", str(full), str(out))
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("change", ["edit", "add", "remove"])
def test_a_changed_work_tree_is_recorded_dirty(full, repo, tmp_path, change):
    work = copy(full, tmp_path)
    if change == "edit":
        (work / CONFIG).write_text("{}\n")
    elif change == "add":
        (work / "mine.txt").write_text("mine\n")
    else:
        (work / "vocab.txt").unlink()
    out = tmp_path / "m.json"
    r = build(work, out)
    assert r.returncode == 0, r.stderr
    assert origin_of(out) == {"type": "git", "url": "file://" + str(repo.repo.path), "revision": repo.commit,
                              "dirty": True}  # fmt: skip
    assert "(dirty)" in r.stderr


def test_a_clean_hub_clone_records_the_hub_origin_and_identities(full, repo, cache, tmp_path):
    """Its remote a Hub URL (credentials and all): the same origin and identities as the cache's own build, so the
    cache snapshot verifies against it, and no credential is written."""
    work = copy(full, tmp_path)
    git(repo, work, "remote", "set-url", "origin", f"https://me:s3cret@huggingface.co/{REPO_ID}")
    out = tmp_path / "m.json"
    r = build(work, out)
    assert r.returncode == 0, r.stderr
    text = out.read_text()
    assert "s3cret" not in text and "s3cret" not in r.stderr
    assert origin_of(out) == {"type": "huggingface", "repo": REPO_ID, "repo_type": "model", "revision": repo.commit}
    hubs = {f["path"]: f["hub"] for f in json.loads(text)["files"]}
    assert hubs == {
        p: ({"sha256": f.lfs_sha256} if f.is_lfs else {"gitBlob": f.blob_id}) for p, f in repo.files.items()
    }
    r = run_cli("verify", str(cache.repo_folder), str(out))
    assert r.returncode == 0, r.stdout + r.stderr


def test_a_build_refuses_a_pointer_where_the_commit_has_content(clone, tmp_path):
    out = tmp_path / "m.json"
    r = build(clone, out)
    assert r.returncode == 1
    assert_one_line_error(r, LFS, "pointer")
    assert not out.exists()


def test_a_linked_worktree_or_a_stray_git_folder_is_built_plain(full, repo, tmp_path):
    work = copy(full, tmp_path)
    git(repo, work, "worktree", "add", "-q", str(tmp_path / "wt"))
    stray = tmp_path / "stray"
    (stray / ".git").mkdir(parents=True)
    (stray / "a.txt").write_text("a\n")
    for path in (tmp_path / "wt", stray):
        out = tmp_path / f"{path.name}.json"
        r = build(path, out)
        assert r.returncode == 0, r.stderr
        assert origin_of(out) is None
    r = build(stray, tmp_path / "x.json", "--layout", "git")
    assert r.returncode == 2
    r = build(tmp_path / "wt", tmp_path / "x.json", "--layout", "git")
    assert r.returncode == 2
    assert_one_line_error(r, ".git file")


def test_a_corrupt_index_changes_nothing_and_an_empty_repository_is_one_line(full, repo, tmp_path):
    """The index is never read (the commit's trees are): garbage in it changes no verdict."""
    work = copy(full, tmp_path)
    (work / ".git" / "index").write_bytes(b"DIRC garbage" * 10)
    r = hf(work)
    assert r.returncode == 0, r.stdout + r.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    git(repo, empty, "init", "-q")
    (empty / "a.txt").write_text("a\n")
    r = hf(empty)
    assert r.returncode == 2
    assert_one_line_error(r, "no commit")
    out = tmp_path / "m.json"
    assert build(empty, out).returncode == 0  # nothing committed: built as the plain tree, no origin claimed
    assert origin_of(out) is None
