"""Xet downloads: tree listings with Xet hashes, and the cache-wide shared blob store (symbolic links into
`cache_dir/blobs/<xx>/<xet hash>`): clean, tampered, corrupted, and a link out of the store."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
from support import hf_layout as hl
from support.cli import assert_one_line_error, run_cli, statuses
from support.hf import (
    LFS,
    all_ok,
    details,
    edit_tree,
    fresh_cache,
    fresh_local,
    hf,
)

# --------------------------------------------------------------------------------------------------------------------
# 8. Xet


@pytest.mark.parametrize("shared", [False, True])
def test_xet_clean(tmp_path, repo, shared):
    layout = fresh_cache(tmp_path, repo, xet=True, shared_store=shared)
    if shared:  # the fixture did move the LFS blob to the cache-wide store
        assert layout.blob_path(LFS).is_symlink()
        assert layout.payload_path(LFS).parent.parent == layout.cache_dir / "blobs"
    tree = json.loads(layout.tree_path.read_text())
    assert len(tree["files"][LFS]["xet_hash"]) == 64
    for opts in ((), ("--xet",)):
        r = hf(layout.repo_folder, *opts)
        assert r.returncode == 0, r.stdout + r.stderr
        assert statuses(r.stdout) == all_ok(repo)


def test_xet_tampered_listing(tmp_path, repo):
    layout = fresh_cache(tmp_path, repo, xet=True)
    real = json.loads(layout.tree_path.read_text())["files"][LFS]["xet_hash"]
    fake = ("0" if real[0] != "0" else "1") + real[1:]

    def tamper(doc):
        doc["files"][LFS]["xet_hash"] = fake

    edit_tree(layout.tree_path, tamper)
    r = hf(layout.repo_folder, "--xet")
    assert r.returncode == 1
    sym, detail = details(r.stdout)[LFS]
    assert sym == "*" and "xet" in detail and fake in detail and real in detail
    r = hf(layout.repo_folder)  # without --xet the SHA-256 still matches: the check above is real
    assert r.returncode == 0
    assert statuses(r.stdout) == all_ok(repo)


def test_xet_local_dir(tmp_path, repo):
    layout = fresh_local(tmp_path, repo, xet=True)
    r = hf(layout.local_dir, "--xet")
    assert r.returncode == 0, r.stdout + r.stderr
    edit_tree(layout.tree_path, lambda d: d["files"][LFS].__setitem__("xet_hash", "e" * 64))
    r = hf(layout.local_dir, "--xet")
    assert r.returncode == 1 and statuses(r.stdout)[LFS] == "*"


def test_shared_store_corrupted_blob(tmp_path, repo):
    layout = fresh_cache(tmp_path, repo, shared_store=True)
    hl.corrupt(layout.blob_path(LFS), 4096)  # follows the link into the shared store
    for opts in ((), ("--xet",)):
        r = hf(layout.repo_folder, *opts)
        assert r.returncode == 1
        sym, detail = details(r.stdout)[LFS]
        assert sym == "*" and hashlib.sha256(layout.payload_path(LFS).read_bytes()).hexdigest() in detail
    r = run_cli("build", str(layout.repo_folder), "-o", str(tmp_path / "m.json"))
    assert r.returncode == 1
    assert_one_line_error(r, LFS)


def test_shared_store_link_outside_the_store(tmp_path, repo):
    """A blob may link into the cache-wide store, and nowhere else."""
    layout = fresh_cache(tmp_path, repo, shared_store=True)
    blob = layout.blob_path(LFS)
    stray = tmp_path / "stray.bin"
    shutil.copyfile(layout.payload_path(LFS), stray)
    blob.unlink()
    blob.symlink_to(stray)
    r = hf(layout.repo_folder)
    assert r.returncode == 2
    sym, detail = details(r.stdout)[LFS]
    assert sym == "!" and "outside" in detail
