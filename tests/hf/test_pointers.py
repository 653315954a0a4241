"""git-lfs pointer files (docs/hf.md HF8): a pointer where the weights should be is not the weights, in a
local_dir, as a cache blob and against a manifest; a pointer to other content is a mismatch.  Pointers made by a
real `GIT_LFS_SKIP_SMUDGE=1 git clone`."""

from __future__ import annotations

import shutil

import pytest
from support import hf_layout as hl
from support.cli import assert_one_line_error, run_cli, statuses
from support.hf import (
    LFS,
    all_ok,
    details,
    fresh_cache,
    fresh_local,
    hf,
    replace_blob,
)


def other_pointer(pointer: bytes, *, oid: bool = True) -> bytes:
    """The pointer of other content: one hex digit of the oid changed, or the size off by one."""
    sha, size = hl.parse_lfs_pointer(pointer)  # type: ignore[misc]
    if oid:
        new = ("0" if sha[0] != "0" else "1") + sha[1:]
        return pointer.replace(sha.encode(), new.encode())
    return pointer.replace(b"size %d\n" % size, b"size %d\n" % (size + 1))


def test_pointer_in_local_dir_is_not_downloaded(tmp_path, repo, clone):
    layout = fresh_local(tmp_path, repo)
    shutil.copyfile(clone / LFS, layout.file_path(LFS))
    r = hf(layout.local_dir)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"~ {LFS}  (git-lfs pointer: content not downloaded)" in r.stdout.splitlines()
    assert statuses(r.stdout) == {**all_ok(repo), LFS: "~"}
    r = hf(layout.local_dir, "--require-all")
    assert r.returncode == 1
    assert f"- {LFS}  (git-lfs pointer: content not downloaded)" in r.stdout.splitlines()


@pytest.mark.parametrize("oid", [True, False], ids=["other-oid", "other-size"])
def test_pointer_to_other_content_is_mismatch(tmp_path, repo, clone, oid):
    layout = fresh_local(tmp_path, repo)
    layout.file_path(LFS).write_bytes(other_pointer((clone / LFS).read_bytes(), oid=oid))
    r = hf(layout.local_dir)
    assert r.returncode == 1
    assert statuses(r.stdout) == {**all_ok(repo), LFS: "*"}


@pytest.mark.parametrize("tree", [True, False])
def test_pointer_as_cache_blob(tmp_path, repo, tree):
    layout = fresh_cache(tmp_path, repo, tree=tree)
    replace_blob(layout, LFS, repo.pointer_text(LFS))
    r = hf(layout.repo_folder)
    assert r.returncode == 0, r.stdout + r.stderr
    assert details(r.stdout)[LFS] == ("~", "git-lfs pointer: content not downloaded")
    r = hf(layout.repo_folder, "--require-all")
    assert r.returncode == 1 and statuses(r.stdout)[LFS] == "-"
    replace_blob(layout, LFS, other_pointer(repo.pointer_text(LFS)))
    r = hf(layout.repo_folder)
    assert r.returncode == 1 and statuses(r.stdout)[LFS] == "*"


def test_pointer_without_tree_uses_metadata(tmp_path, repo, clone):
    layout = fresh_local(tmp_path, repo, tree=False)
    shutil.copyfile(clone / LFS, layout.file_path(LFS))
    r = hf(layout.local_dir)
    assert r.returncode == 0, r.stdout + r.stderr
    assert statuses(r.stdout)[LFS] == "~"


def test_merkle_verify_pointer_clone_against_manifest(repo, clone, local_manifest):
    r = run_cli("verify", str(clone), str(local_manifest))
    assert r.returncode == 1
    assert statuses(r.stdout) == {**all_ok(repo), LFS: "-"}
    assert details(r.stdout)[LFS] == ("-", "git-lfs pointer: content not downloaded")
    r = run_cli("verify", str(clone), str(local_manifest), "--sparse")
    assert r.returncode == 0, r.stdout + r.stderr
    assert statuses(r.stdout) == {**all_ok(repo), LFS: "~"}


@pytest.mark.parametrize("oid", [True, False], ids=["other-oid", "other-size"])
def test_merkle_verify_pointer_to_other_content(tmp_path, repo, clone, local_manifest, oid):
    work = tmp_path / "clone"
    shutil.copytree(clone, work, symlinks=True)
    (work / LFS).write_bytes(other_pointer((clone / LFS).read_bytes(), oid=oid))
    r = run_cli("verify", str(work), str(local_manifest), "--sparse")
    assert r.returncode == 1
    assert statuses(r.stdout) == {**all_ok(repo), LFS: "*"}


def test_build_refuses_pointer_blob(tmp_path, repo):
    layout = fresh_cache(tmp_path, repo)
    replace_blob(layout, LFS, repo.pointer_text(LFS))
    out = tmp_path / "m.json"
    r = run_cli("build", str(layout.repo_folder), "-o", str(out))
    assert r.returncode == 1
    assert_one_line_error(r, LFS, "pointer")
    assert not out.exists()
