"""The hf_layout fixtures are faithful: huggingface_hub itself and git are the oracles, never our own code."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pytest
from huggingface_hub import hf_hub_download, scan_cache_dir, snapshot_download, try_to_load_from_cache
from huggingface_hub._local_folder import get_local_download_paths, read_download_metadata
from huggingface_hub._tree_cache import read_tree_cache, tree_cache_folder_for_local_dir
from huggingface_hub.errors import IncompleteSnapshotError
from huggingface_hub.hf_api import RepoFile
from huggingface_hub.utils._shared_blobs import is_shared_blobs_dir, shared_blobs_dir
from huggingface_hub.utils._verification import FolderVerification, collect_local_files, verify_maps
from huggingface_hub.utils._xet import is_valid_xet_hash
from huggingface_hub.utils.sha import git_hash
from support import hf_layout as hl

REPO_ID = "sentence-transformers/all-MiniLM-L6-v2"
LFS_FILE = "model.safetensors"
NESTED = "1_Pooling/config.json"
SPARSE = ("config.json", NESTED, "modules.json")


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> hl.RepoInfo:
    return hl.make_git_repo(hl.model_dir(), tmp_path_factory.mktemp("git") / "repo")


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory, repo: hl.RepoInfo) -> hl.CacheLayout:
    """A full cache, read-only for the tests (tests that corrupt build their own)."""
    return hl.make_cache(tmp_path_factory.mktemp("hf") / "cache", REPO_ID, repo)


def remote_from_tree(tree_cache_folder: Path | str, commit: str) -> dict[str, RepoFile]:
    """What `hf cache verify` gets from `list_repo_tree`, rebuilt from huggingface_hub's reading of the tree cache."""
    hl.forget_tree_cache()  # read the JSON file, not the in-process memo write_tree_cache seeded
    entries = read_tree_cache(str(tree_cache_folder), commit)
    assert entries is not None
    return {
        path: RepoFile(  # type: ignore[no-untyped-call]
            path=path,
            size=e.size,
            oid=e.blob_id,
            lfs=None if e.lfs_sha256 is None else {"size": e.lfs_size, "oid": e.lfs_sha256, "pointerSize": 0},
        )
        for path, e in entries.items()
    }


def verify(remote: dict[str, RepoFile], root: Path, commit: str) -> FolderVerification:
    return verify_maps(
        remote_by_path=remote, local_by_path=collect_local_files(root), revision=commit, verified_path=root
    )


def assert_clean(result: FolderVerification, n_files: int) -> None:
    assert (result.mismatches, result.missing_paths, result.extra_paths) == ([], [], [])
    assert result.checked_count == n_files


# --- the git repository -----------------------------------------------------------------------------------------------


def test_repo_holds_every_model_file(repo: hl.RepoInfo) -> None:
    on_disk = {p.relative_to(hl.model_dir()).as_posix() for p in hl.model_dir().rglob("*") if p.is_file()}
    assert set(repo.files) == on_disk
    assert re.fullmatch(r"[0-9a-f]{40}", repo.commit)
    assert repo.repo.run("rev-parse", "HEAD").decode().strip() == repo.commit


def test_blob_ids_and_lfs_hashes_match_huggingface_hub(repo: hl.RepoInfo) -> None:
    assert repo.lfs_paths == [LFS_FILE]
    assert not repo.files["config.json"].is_lfs
    for path, f in repo.files.items():
        content = f.read_bytes()
        assert f.size == len(content), path
        if f.is_lfs:
            assert f.lfs_sha256 == hashlib.sha256(content).hexdigest()
            assert f.lfs_size == len(content)
            assert f.etag == f.lfs_sha256
        else:
            assert f.blob_id == git_hash(content), path
            assert (f.lfs_sha256, f.lfs_size, f.pointer, f.etag) == (None, None, None, f.blob_id)


def test_git_lfs_agrees_on_what_is_lfs(repo: hl.RepoInfo) -> None:
    listed = repo.repo.run("lfs", "ls-files", "--long").decode().splitlines()
    # "<sha256> * <path>": the object is in .git/lfs and checked out in full.
    assert sorted(listed) == sorted(f"{repo.files[p].lfs_sha256} * {p}" for p in repo.lfs_paths)


def test_pointer_text_is_the_spec_form_and_the_tree_blob(repo: hl.RepoInfo) -> None:
    f = repo.files[LFS_FILE]
    pointer = repo.pointer_text(LFS_FILE)
    assert (
        pointer == (f"version https://git-lfs.github.com/spec/v1\noid sha256:{f.lfs_sha256}\nsize {f.size}\n").encode()
    )
    assert git_hash(pointer) == f.blob_id
    assert repo.repo.run("lfs", "pointer", f"--file={f.content_path}") == pointer
    with pytest.raises(ValueError):
        repo.pointer_text("config.json")


def test_extra_lfs_patterns_and_empty_files(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "weights.bin").write_bytes(b"\x00\x01" * 1000)
    (src / "notes.txt").write_text("hello\n")
    (src / "empty.bin").write_bytes(b"")
    info = hl.make_git_repo(src, tmp_path / "repo", lfs_patterns=["*.bin"])
    assert info.lfs_paths == ["sub/weights.bin"]  # git-lfs never makes a pointer for an empty file
    assert info.files["empty.bin"].blob_id == git_hash(b"")
    attributes = info.files[".gitattributes"]
    assert attributes.content_path == tmp_path / "repo" / ".gitattributes"
    assert b"*.bin filter=lfs" in attributes.read_bytes()
    assert attributes.blob_id == git_hash(attributes.read_bytes())
    weights = info.files["sub/weights.bin"]
    assert weights.content_path == src / "sub" / "weights.bin"
    assert weights.lfs_sha256 == hashlib.sha256(weights.read_bytes()).hexdigest()
    with pytest.raises(TypeError):
        hl.make_cache(tmp_path / "cache", "org/tiny", info, files="notes.txt")


def test_pointer_clone_has_pointer_files(tmp_path: Path, repo: hl.RepoInfo) -> None:
    clone = hl.clone_with_pointers(repo, tmp_path / "clone")
    for path, f in repo.files.items():
        expected = repo.pointer_text(path) if f.is_lfs else f.read_bytes()
        assert (clone / path).read_bytes() == expected, path
    listed = repo.repo.run("lfs", "ls-files", "--long", cwd=clone).decode().splitlines()
    assert listed == [f"{repo.files[LFS_FILE].lfs_sha256} - {LFS_FILE}"]  # "-": only the pointer is checked out


# --- cache_dir layout -------------------------------------------------------------------------------------------------


def test_scan_cache_dir_finds_the_repo(cache: hl.CacheLayout, repo: hl.RepoInfo) -> None:
    info = scan_cache_dir(cache.cache_dir)
    assert info.warnings == []
    assert info.incomplete_files == frozenset()
    (cached,) = info.repos
    assert (cached.repo_id, cached.repo_type, cached.repo_path) == (REPO_ID, "model", cache.repo_folder)
    (revision,) = cached.revisions
    assert revision.commit_hash == repo.commit
    assert revision.refs == frozenset({"main"})
    assert revision.snapshot_path == cache.snapshot
    assert {f.file_path.relative_to(cache.snapshot).as_posix() for f in revision.files} == set(repo.files)
    assert {f.blob_path for f in revision.files} == {cache.blob_path(p) for p in repo.files}
    assert cached.size_on_disk == sum(f.size for f in repo.files.values())


def test_huggingface_hub_resolves_files_offline(cache: hl.CacheLayout, repo: hl.RepoInfo) -> None:
    for path in repo.files:
        expected = str(cache.snapshot_path(path))
        assert try_to_load_from_cache(REPO_ID, path, cache_dir=cache.cache_dir) == expected
        assert hf_hub_download(REPO_ID, path, cache_dir=cache.cache_dir, local_files_only=True) == expected
    assert snapshot_download(REPO_ID, cache_dir=cache.cache_dir, local_files_only=True) == str(cache.snapshot)


def test_tree_cache_lists_every_file(cache: hl.CacheLayout, repo: hl.RepoInfo) -> None:
    assert cache.tree_path.is_file()
    hl.forget_tree_cache()
    entries = read_tree_cache(str(cache.repo_folder), repo.commit)
    assert entries is not None
    assert set(entries) == set(repo.files)
    for path, e in entries.items():
        f = repo.files[path]
        assert (e.size, e.blob_id, e.lfs_sha256, e.lfs_size, e.xet_hash) == (
            f.size,
            f.blob_id,
            f.lfs_sha256,
            f.lfs_size,
            None,
        )


def test_snapshot_entries_are_relative_links_into_blobs(cache: hl.CacheLayout, repo: hl.RepoInfo) -> None:
    blobs = cache.repo_folder / "blobs"
    for path, f in repo.files.items():
        link = cache.snapshot_path(path)
        assert link.is_symlink(), path
        target = os.readlink(link)
        assert not os.path.isabs(target)
        assert target == "../" * (path.count("/") + 2) + f"blobs/{f.etag}"
        assert link.resolve() == (blobs / f.etag).resolve()
        blob = cache.blob_path(path)
        assert blob.is_file() and not blob.is_symlink()
        assert not os.path.samefile(blob, f.content_path)  # a copy: corrupting it leaves the source intact
        data = blob.read_bytes()
        assert (hashlib.sha256(data).hexdigest() if f.is_lfs else git_hash(data)) == f.etag
    assert (cache.repo_folder / "refs" / "main").read_text() == repo.commit


def test_verify_maps_accepts_the_cache_and_catches_a_flipped_byte(tmp_path: Path, repo: hl.RepoInfo) -> None:
    layout = hl.make_cache(tmp_path / "cache", REPO_ID, repo)
    remote = remote_from_tree(layout.repo_folder, layout.commit)
    assert_clean(verify(remote, layout.snapshot, layout.commit), len(repo.files))

    hl.corrupt(layout.blob_path(LFS_FILE), 12345)
    hl.corrupt(layout.snapshot_path("config.json"), -1)  # through the link
    assert layout.blob_path(LFS_FILE).stat().st_size == repo.files[LFS_FILE].size
    result = verify(remote, layout.snapshot, layout.commit)
    assert [(m["path"], m["algorithm"], m["expected"]) for m in result.mismatches] == [
        ("config.json", "git-sha1", repo.files["config.json"].blob_id),
        (LFS_FILE, "sha256", repo.files[LFS_FILE].lfs_sha256),
    ]
    assert repo.files[LFS_FILE].read_bytes()[12345] != layout.blob_path(LFS_FILE).read_bytes()[12345]


def test_corrupt_flips_exactly_one_byte(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"abcdef")
    os.chmod(target, 0o444)
    before = target.stat()
    hl.corrupt(target, 2, keep_mtime=True)
    assert target.read_bytes() == b"ab" + bytes([ord("c") ^ 0xFF]) + b"def"
    after = target.stat()
    assert (after.st_mode, after.st_mtime_ns) == (before.st_mode, before.st_mtime_ns)
    with pytest.raises(ValueError):
        hl.corrupt(target, 6)


def test_sparse_cache_links_only_the_subset_but_lists_the_whole_commit(tmp_path: Path, repo: hl.RepoInfo) -> None:
    layout = hl.make_cache(tmp_path / "cache", REPO_ID, repo, files=SPARSE)
    assert layout.files == tuple(sorted(SPARSE))
    linked = {p.relative_to(layout.snapshot).as_posix() for p in layout.snapshot.rglob("*") if p.is_symlink()}
    assert linked == set(SPARSE)
    (cached,) = scan_cache_dir(layout.cache_dir).repos
    assert {f.file_path.relative_to(layout.snapshot).as_posix() for f in next(iter(cached.revisions)).files} == linked
    hl.forget_tree_cache()
    entries = read_tree_cache(str(layout.repo_folder), repo.commit)
    assert entries is not None and set(entries) == set(repo.files)
    # huggingface_hub itself uses the listing to tell the snapshot is partial.
    with pytest.raises(IncompleteSnapshotError):
        snapshot_download(REPO_ID, cache_dir=layout.cache_dir, local_files_only=True)
    got = snapshot_download(REPO_ID, cache_dir=layout.cache_dir, local_files_only=True, allow_patterns=list(SPARSE))
    assert got == str(layout.snapshot)
    result = verify(remote_from_tree(layout.repo_folder, layout.commit), layout.snapshot, layout.commit)
    assert (result.mismatches, result.extra_paths) == ([], [])
    assert set(result.missing_paths) == set(repo.files) - set(SPARSE)


def test_cache_without_tree_or_ref(tmp_path: Path, repo: hl.RepoInfo) -> None:
    layout = hl.make_cache(tmp_path / "cache", REPO_ID, repo, files=SPARSE, tree=False, ref=None)
    assert not (layout.repo_folder / "trees").exists() and not (layout.repo_folder / "refs").exists()
    hl.forget_tree_cache()
    assert read_tree_cache(str(layout.repo_folder), repo.commit) is None
    # Without a listing huggingface_hub cannot tell the snapshot is partial.
    got = snapshot_download(REPO_ID, revision=repo.commit, cache_dir=layout.cache_dir, local_files_only=True)
    assert got == str(layout.snapshot)


def test_incomplete_blob_is_where_an_interrupted_download_leaves_it(tmp_path: Path, repo: hl.RepoInfo) -> None:
    layout = hl.make_cache(tmp_path / "cache", REPO_ID, repo, files=SPARSE)
    f = repo.files[LFS_FILE]
    partial = hl.add_incomplete(layout, LFS_FILE, 4096)
    legacy = hl.add_incomplete(layout, NESTED, 10, legacy_name=True)
    assert partial.parent == legacy.parent == layout.repo_folder / "blobs"
    assert re.fullmatch(rf"{f.etag}\.[0-9a-f]{{8}}\.incomplete", partial.name)
    assert legacy.name == f"{repo.files[NESTED].blob_id}.incomplete"
    assert partial.read_bytes() == f.read_bytes()[:4096]
    assert not os.path.lexists(layout.snapshot_path(LFS_FILE)) and not layout.blob_path(LFS_FILE).exists()
    info = scan_cache_dir(layout.cache_dir)
    assert info.warnings == []
    assert {i.file_path: i.size_on_disk for i in info.incomplete_files} == {partial: 4096, legacy: 10}


def test_shared_store_layout_of_a_xet_download(tmp_path: Path, repo: hl.RepoInfo) -> None:
    layout = hl.make_cache(tmp_path / "cache", REPO_ID, repo, shared_store=True)
    hl.forget_tree_cache()
    entries = read_tree_cache(str(layout.repo_folder), repo.commit)
    assert entries is not None
    xet = entries[LFS_FILE].xet_hash
    assert xet is not None and is_valid_xet_hash(xet)
    assert all(e.xet_hash is None for p, e in entries.items() if p != LFS_FILE)

    assert is_shared_blobs_dir(shared_blobs_dir(layout.cache_dir))
    blob = layout.blob_path(LFS_FILE)
    assert blob.is_symlink() and os.readlink(blob) == f"../../blobs/{xet[:2]}/{xet}"
    assert layout.payload_path(LFS_FILE) == layout.cache_dir / "blobs" / xet[:2] / xet
    scanned = scan_cache_dir(layout.cache_dir)
    assert scanned.warnings == [] and len(scanned.repos) == 1
    assert snapshot_download(REPO_ID, cache_dir=layout.cache_dir, local_files_only=True) == str(layout.snapshot)

    remote = remote_from_tree(layout.repo_folder, layout.commit)
    assert_clean(verify(remote, layout.snapshot, layout.commit), len(repo.files))
    hl.corrupt(layout.snapshot_path(LFS_FILE), 0)  # two hops: snapshot -> blobs/<sha256> -> store payload
    assert [m["path"] for m in verify(remote, layout.snapshot, layout.commit).mismatches] == [LFS_FILE]


# --- local_dir layout -------------------------------------------------------------------------------------------------


def test_local_dir_metadata_and_tree(tmp_path: Path, repo: hl.RepoInfo) -> None:
    layout = hl.make_local_dir(tmp_path / "local", repo)
    for path, f in repo.files.items():
        meta = read_download_metadata(layout.local_dir, path)
        assert meta is not None, path
        assert (meta.filename, meta.commit_hash, meta.etag) == (path, repo.commit, f.etag)
        assert layout.metadata_path(path).is_file()
        assert layout.file_path(path).read_bytes() == f.read_bytes()
        got = hf_hub_download(REPO_ID, path, revision=repo.commit, local_dir=layout.local_dir, local_files_only=True)
        assert got == str(layout.file_path(path))
    assert layout.tree_path.is_file()
    folder = tree_cache_folder_for_local_dir(str(layout.local_dir))
    hl.forget_tree_cache()
    entries = read_tree_cache(folder, repo.commit)
    assert entries is not None and set(entries) == set(repo.files)
    assert_clean(verify(remote_from_tree(folder, repo.commit), layout.local_dir, repo.commit), len(repo.files))
    got = snapshot_download(
        REPO_ID, revision=repo.commit, local_dir=layout.local_dir, cache_dir=tmp_path / "nocache", local_files_only=True
    )
    assert got == str(layout.local_dir)


def test_local_dir_bit_rot_passes_metadata_but_not_verification(tmp_path: Path, repo: hl.RepoInfo) -> None:
    layout = hl.make_local_dir(tmp_path / "local", repo, files=[LFS_FILE, "config.json"])
    hl.corrupt(layout.file_path(LFS_FILE), 100, keep_mtime=True)
    meta = read_download_metadata(layout.local_dir, LFS_FILE)
    assert meta is not None and meta.etag == repo.files[LFS_FILE].lfs_sha256  # huggingface_hub cannot tell
    listing = remote_from_tree(tree_cache_folder_for_local_dir(str(layout.local_dir)), repo.commit)
    remote = {p: listing[p] for p in layout.files}
    assert [m["path"] for m in verify(remote, layout.local_dir, repo.commit).mismatches] == [LFS_FILE]


def test_local_dir_without_metadata(tmp_path: Path, repo: hl.RepoInfo) -> None:
    layout = hl.make_local_dir(tmp_path / "local", repo, files=SPARSE, metadata=False, tree=False)
    assert not (layout.local_dir / ".cache").exists()
    assert all(read_download_metadata(layout.local_dir, p) is None for p in SPARSE)


def test_local_incomplete_is_under_the_download_metadata_folder(tmp_path: Path, repo: hl.RepoInfo) -> None:
    layout = hl.make_local_dir(tmp_path / "local", repo, files=[NESTED, "config.json"])
    f = repo.files[NESTED]
    partial = hl.add_local_incomplete(layout, NESTED, 50)
    paths = get_local_download_paths(layout.local_dir, NESTED)
    official = paths.incomplete_path(f.etag)
    assert partial.parent == official.parent == layout.local_dir / ".cache" / "huggingface" / "download" / "1_Pooling"
    assert re.fullmatch(re.escape(official.stem) + r"\.[0-9a-f]{8}\.incomplete", partial.name)
    assert partial.read_bytes() == f.read_bytes()[:50]
    assert not layout.file_path(NESTED).exists()  # huggingface_hub deletes the old file before downloading
    assert read_download_metadata(layout.local_dir, NESTED) is None
    assert "incomplete" not in " ".join(collect_local_files(layout.local_dir))
    assert hl.add_local_incomplete(layout, "config.json", 1, legacy_name=True) == get_local_download_paths(
        layout.local_dir, "config.json"
    ).incomplete_path(repo.files["config.json"].etag)
