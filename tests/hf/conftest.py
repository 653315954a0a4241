"""The Hugging Face tests' shared fixtures: the real model's repository, committed by real git and git-lfs
once per test process (pytest-xdist runs one per CPU), and the clean layouts, keys, bundles and manifests made
from it.  All read-only for the tests: a test that damages a layout makes a fresh copy (support.hf.fresh_cache)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from support import hf_layout as hl
from support.cli import run_cli
from support.hf import (
    LFS,
    README,
    REPO_ID,
)

# --------------------------------------------------------------------------------------------------------------------
# The 90 MB repository is committed once per test process; layouts that tests damage are fresh copies


@pytest.fixture(scope="session")
def repo(tmp_path_factory) -> hl.RepoInfo:
    return hl.make_git_repo(hl.model_dir(), tmp_path_factory.mktemp("git") / "repo")


@pytest.fixture(scope="session")
def cache(tmp_path_factory, repo) -> hl.CacheLayout:
    """A full, clean cache: read-only for the tests."""
    return hl.make_cache(tmp_path_factory.mktemp("hub") / "cache", REPO_ID, repo)


@pytest.fixture(scope="session")
def local(tmp_path_factory, repo) -> hl.LocalDirLayout:
    """A full, clean local_dir: read-only for the tests."""
    return hl.make_local_dir(tmp_path_factory.mktemp("ld") / "model", repo)


@pytest.fixture(scope="session")
def key(tmp_path_factory) -> Path:
    k = tmp_path_factory.mktemp("keys") / "release"
    r = run_cli("keygen", "-o", str(k))
    assert r.returncode == 0, r.stderr
    return k


@pytest.fixture(scope="session")
def bundle(tmp_path_factory, cache, key) -> Path:
    """A bundle signed over the FULL cache repo folder."""
    out = tmp_path_factory.mktemp("signed") / "model.bundle"
    r = run_cli(
        "build", str(cache.repo_folder), "--sign", str(key), "-o", str(out), "--store", str(out.parent / "store")
    )
    assert r.returncode == 0, r.stderr
    return out


@pytest.fixture(scope="session")
def cache_manifest(tmp_path_factory, cache) -> Path:
    out = tmp_path_factory.mktemp("manifest") / "cache.json"
    r = run_cli("build", str(cache.repo_folder), "-o", str(out))
    assert r.returncode == 0, r.stderr
    return out


@pytest.fixture(scope="session")
def card_repos(tmp_path_factory):
    """Repositories whose model card says something else: made by committing a copy of the model whose README.md was
    edited (`variant(name)` builds each once)."""
    made: dict[str, hl.RepoInfo] = {}
    original = (hl.model_dir() / README).read_bytes()
    assert b"\nlicense: apache-2.0\n" in original
    edits = {
        "other": b"\nlicense: other\nlicense_name: my-license\nlicense_link: LICENSE\n",
        "none": b"\n",
        "broken": b"\nlicense: [apache-2.0\n",
    }

    def variant(name: str) -> hl.RepoInfo:
        if name not in made:
            base = tmp_path_factory.mktemp(f"card-{name}")
            src = base / "src"
            shutil.copytree(hl.model_dir(), src)
            (src / README).write_bytes(original.replace(b"\nlicense: apache-2.0\n", edits[name], 1))
            made[name] = hl.make_git_repo(src, base / "repo")
        return made[name]

    return variant


@pytest.fixture(scope="session")
def clone(tmp_path_factory, repo) -> Path:
    """A real `GIT_LFS_SKIP_SMUDGE=1 git clone`: model.safetensors is its pointer."""
    dest = hl.clone_with_pointers(repo, tmp_path_factory.mktemp("clone") / "repo")
    assert hl.parse_lfs_pointer((dest / LFS).read_bytes()) == (repo.files[LFS].lfs_sha256, repo.files[LFS].size)
    return dest


@pytest.fixture(scope="session")
def local_manifest(tmp_path_factory, local) -> Path:
    out = tmp_path_factory.mktemp("lm") / "local.json"
    r = run_cli("build", str(local.local_dir), "-o", str(out), "--repo-id", REPO_ID)
    assert r.returncode == 0, r.stderr
    return out
