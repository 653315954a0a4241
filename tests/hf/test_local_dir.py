"""`merkle hf verify` of a `local_dir` download (docs/hf.md): its `.cache/huggingface` metadata and tree
listing, sparse and unfinished downloads, user files, a folder downloaded at two commits.  Layouts by
huggingface_hub's own helpers (tests/support/hf_layout.py), the real `merkle` program in child processes."""

from __future__ import annotations

import json
import shutil

import pytest
from huggingface_hub._local_folder import write_download_metadata
from huggingface_hub.utils.sha import git_hash
from support import hf_layout as hl
from support.cli import statuses
from support.hf import (
    LFS,
    NESTED,
    README,
    SPARSE,
    all_ok,
    details,
    fresh_local,
    hf,
    jstatuses,
)

# --------------------------------------------------------------------------------------------------------------------
# 3. local_dir


def test_local_dir_clean(local, repo):
    r = hf(local.local_dir, "--json")
    assert r.returncode == 0, r.stderr
    assert jstatuses(r) == dict.fromkeys(repo.files, "ok")
    checkout = json.loads(r.stdout)["checkout"]
    assert checkout["kind"] == "local_dir" and checkout["revision"] == repo.commit and checkout["tree_listing"]


@pytest.mark.parametrize("path", ["config.json", LFS])
def test_local_dir_bit_rot_is_mismatch(tmp_path, repo, path):
    layout = fresh_local(tmp_path, repo)
    hl.corrupt(layout.file_path(path), 7, keep_mtime=True)  # silent: huggingface_hub's mtime check cannot see it
    r = hf(layout.local_dir)
    assert r.returncode == 1
    assert statuses(r.stdout) == {**all_ok(repo), path: "*"}


def test_local_dir_sparse(tmp_path, repo):
    layout = fresh_local(tmp_path, repo, files=SPARSE)
    r = hf(layout.local_dir)
    assert r.returncode == 0, r.stdout + r.stderr
    got = statuses(r.stdout)
    assert got == {**dict.fromkeys(repo.files, "~"), **dict.fromkeys(SPARSE, "=")}
    r = hf(layout.local_dir, "--require-all")
    assert r.returncode == 1
    assert statuses(r.stdout) == {**dict.fromkeys(repo.files, "-"), **dict.fromkeys(SPARSE, "=")}


@pytest.mark.parametrize("legacy", [False, True])
def test_local_dir_unfinished_download_is_partial(tmp_path, repo, legacy):
    layout = fresh_local(tmp_path, repo, files=SPARSE)
    hl.add_local_incomplete(layout, "modules.json", 100, legacy_name=legacy)  # a re-download, killed
    hl.add_local_incomplete(layout, "vocab.txt", 500, legacy_name=legacy)  # a first download, killed
    r = hf(layout.local_dir)
    assert r.returncode == 1
    lines = details(r.stdout)
    assert lines["modules.json"][0] == "%" and f"100 of {repo.files['modules.json'].size}" in lines["modules.json"][1]
    assert lines["vocab.txt"][0] == "%" and f"500 of {repo.files['vocab.txt'].size}" in lines["vocab.txt"][1]
    assert lines["config.json"] == ("=", "")
    assert lines["tokenizer.json"][0] == "~"


def test_local_dir_user_file_is_extra(tmp_path, repo):
    layout = fresh_local(tmp_path, repo, files=SPARSE)
    (layout.local_dir / "notes.txt").write_text("my own notes\n")
    (layout.local_dir / ".git").mkdir()
    (layout.local_dir / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    r = hf(layout.local_dir)
    assert r.returncode == 1
    got = statuses(r.stdout)
    assert got["notes.txt"] == "+"
    assert not any(p.startswith((".git/", ".cache/")) for p in got)
    assert {p for p, s in got.items() if s == "="} == set(SPARSE)
    assert not any(p.startswith(".cache") for p in got)


def test_local_dir_without_tree_uses_metadata(tmp_path, repo):
    layout = fresh_local(tmp_path, repo, tree=False)
    r = hf(layout.local_dir)
    assert r.returncode == 0, r.stdout + r.stderr
    assert statuses(r.stdout) == all_ok(repo)
    assert "no tree listing" in r.stderr

    hl.corrupt(layout.file_path("tokenizer.json"), 100, keep_mtime=True)
    r = hf(layout.local_dir)
    assert r.returncode == 1
    sym, detail = details(r.stdout)["tokenizer.json"]
    assert sym == "*"
    assert "download metadata" in detail and repo.files["tokenizer.json"].etag in detail
    assert git_hash(layout.file_path("tokenizer.json").read_bytes()) in detail


def test_local_dir_without_metadata_or_tree_is_all_extra(tmp_path, repo):
    layout = fresh_local(tmp_path, repo, files=SPARSE, tree=False, metadata=False)
    (layout.local_dir / ".cache" / "huggingface").mkdir(parents=True)
    r = hf(layout.local_dir)
    assert r.returncode == 1
    assert statuses(r.stdout) == dict.fromkeys(SPARSE, "+")


def test_local_dir_user_file_without_metadata_and_no_tree(tmp_path, repo):
    layout = fresh_local(tmp_path, repo, files=SPARSE, tree=False)
    shutil.copyfile(repo.files["vocab.txt"].content_path, layout.local_dir / "vocab.txt")  # copied by hand
    r = hf(layout.local_dir)
    assert r.returncode == 1
    assert statuses(r.stdout) == {**dict.fromkeys(SPARSE, "="), "vocab.txt": "+"}


def test_local_dir_without_metadata_checked_against_tree(tmp_path, repo):
    layout = fresh_local(tmp_path, repo, metadata=False)
    r = hf(layout.local_dir)
    assert r.returncode == 0, r.stdout + r.stderr
    assert statuses(r.stdout) == all_ok(repo)
    hl.corrupt(layout.file_path(NESTED))
    r = hf(layout.local_dir)
    assert r.returncode == 1 and statuses(r.stdout)[NESTED] == "*"


def test_local_dir_downloaded_at_two_commits(tmp_path, repo, card_repos):
    """README.md re-downloaded from a later commit: each file checked against its own metadata, both commits
    reported; asking for the first commit shows README.md is not that commit's."""
    later = card_repos("other")
    layout = fresh_local(tmp_path, repo)
    shutil.copyfile(later.files[README].content_path, layout.file_path(README))
    write_download_metadata(layout.local_dir, README, later.commit, later.files[README].etag)
    r = hf(layout.local_dir)
    assert r.returncode == 0, r.stdout + r.stderr
    assert statuses(r.stdout) == all_ok(repo)
    assert repo.commit[:12] in r.stderr and later.commit[:12] in r.stderr

    hl.corrupt(layout.file_path(README), 5)
    r = hf(layout.local_dir)
    assert r.returncode == 1 and statuses(r.stdout)[README] == "*"
    shutil.copyfile(later.files[README].content_path, layout.file_path(README))

    r = hf(layout.local_dir, "--revision", repo.commit)
    assert r.returncode == 1
    assert statuses(r.stdout) == {**all_ok(repo), README: "*"}
