"""Reading Hugging Face checkouts from disk, offline (docs/hf.md, HF2-HF5).

Two layouts, as huggingface_hub writes them:

* the cache: `models--ORG--NAME/{refs/<ref>, snapshots/<commit>/<path> ->
  ../../blobs/<etag>, blobs/<etag>, trees/<commit>.json}`, where a blob is
  named by its content address and an unfinished download is
  `blobs/<etag>[.<tag>].incomplete`;
* a `local_dir` checkout: the files themselves, plus
  `.cache/huggingface/download/<path>.metadata` (commit, etag, timestamp),
  `.cache/huggingface/trees/<commit>.json` and unfinished downloads as
  `.cache/huggingface/download/<dir>/<b64 sha1(name.metadata)>.<etag>.incomplete`.

Everything read here is untrusted: links must resolve to a blob of the same
repository folder, names must be content addresses, and the tree listing and
metadata files are parsed strictly, with errors that name the file.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import stat
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from .. import _json
from ..errors import FormatError, SourceError, UnsupportedError, UsageError
from ..manifest import Origin
from ..paths import name_problem, path_problem
from ..sources.local import kind_of, read_capped
from ..walk import Excluder, WalkedFile, WalkProblem, identity, walk
from .hub import GIT_BLOB, SHA256, HubId, git_blob_id, hub_id_of_etag, lfs_pointer

CACHE_FOLDER: Final = re.compile(r"(models|datasets|spaces)--(.+)")
COMMIT: Final = re.compile("[0-9a-f]{40}")
HF_DIR: Final = ".cache/huggingface"
MAX_TREE_BYTES: Final = 256 << 20
MAX_METADATA_BYTES: Final = 4096
MAX_REF_BYTES: Final = 256
_INCOMPLETE: Final = re.compile(r"(?P<etag>[0-9a-f]{40}|[0-9a-f]{64})(?:\.[0-9a-f]{8})?\.incomplete")
_LOCAL_INCOMPLETE: Final = re.compile(
    r"(?P<tag>[A-Za-z0-9_-]{27}=)\.(?P<etag>[0-9a-f]{40}|[0-9a-f]{64})(?:\.[0-9a-f]{8})?\.incomplete")
_XET_NAME: Final = re.compile("[0-9a-f]{64}")


@dataclass(frozen=True)
class TreeEntry:
    """One file of `trees/<commit>.json`: what the Hub listed for it."""

    path: str
    size: int
    blob_id: str
    lfs_sha256: str | None = None
    lfs_size: int | None = None
    xet_hash: str | None = None

    @property
    def hub_id(self) -> HubId:
        return (SHA256, self.lfs_sha256) if self.lfs_sha256 else (GIT_BLOB, self.blob_id)

    def inconsistency(self) -> str | None:
        """The listing checked against itself: an LFS file's blob_id is the git
        blob id of its pointer, and its LFS size is its size."""
        if self.lfs_sha256 is None:
            return None
        if self.lfs_size != self.size:
            return f"tree listing gives size {self.size} but LFS size {self.lfs_size}"
        if git_blob_id(lfs_pointer(self.lfs_sha256, self.size)) != self.blob_id:
            return "tree listing is inconsistent: blob_id is not the git id of the file's LFS pointer"
        return None


@dataclass(frozen=True)
class HfFile:
    """A file present in the checkout, and the content address its layout
    claims for it (the blob it links to, or its download metadata)."""

    walked: WalkedFile
    etag: str | None = None
    revision: str | None = None
    """Commit the download metadata names (local_dir only)."""

    @property
    def path(self) -> str:
        return self.walked.path


@dataclass(frozen=True)
class Partial:
    """An unfinished download: `have` bytes of `size` (None: unknown)."""

    path: str
    location: str
    have: int
    size: int | None = None


@dataclass
class Checkout:
    """A Hugging Face checkout as found on disk.  `files` are the present
    files (for the cache, opened through their blobs), `tree` the Hub's
    listing of the revision when the checkout keeps one."""

    kind: Literal["cache", "local_dir"]
    root: str
    repo: str | None
    repo_type: str
    revision: str | None
    files: list[HfFile] = field(default_factory=list)
    tree: dict[str, TreeEntry] | None = None
    tree_path: str | None = None
    partials: list[Partial] = field(default_factory=list)
    broken: dict[str, str] = field(default_factory=dict)
    """Snapshot links whose blob is gone: path -> blob name."""
    problems: list[WalkProblem] = field(default_factory=list)
    revisions: Counter[str] = field(default_factory=Counter)
    """local_dir: how many files each download metadata commit covers."""
    known: dict[str, HubId] = field(default_factory=dict)
    """Files the download metadata names, present or not (local_dir)."""

    @property
    def origin(self) -> Origin | None:
        if self.revision is None:
            return None
        return Origin(self.revision, self.repo, self.repo_type)

    def expected(self, f: HfFile) -> HubId | None:
        """The Hub identity `f` must have: the tree listing's when there is
        one, else what its blob name or download metadata claims."""
        if self.tree is not None and f.path in self.tree:
            return self.tree[f.path].hub_id
        return hub_id_of_etag(f.etag) if f.etag else None

    def describe(self) -> str:
        what = "cache snapshot" if self.kind == "cache" else "local_dir checkout"
        repo = self.repo or f"(unnamed {self.repo_type} repo)"
        return f"Hugging Face {what} of {repo} at {self.revision or 'an unknown revision'}"


def open_checkout(path: str, revision: str | None = None, repo: str | None = None) -> Checkout | None:
    """The checkout at `path` (a cache repo folder, one of its snapshots, or a
    local_dir), or None when `path` is none of these."""
    name = os.fspath(path).removeprefix("file://")
    if not os.path.isdir(name):
        return None
    real = os.path.realpath(name)
    parent = os.path.dirname(real)
    if _is_repo_folder(real):
        folder, snapshot = real, None
    elif os.path.basename(parent) == "snapshots" and _is_repo_folder(os.path.dirname(parent)):
        folder, snapshot = os.path.dirname(parent), os.path.basename(real)
        if revision is not None and revision != snapshot:
            raise UsageError(f"--revision {revision} does not match the snapshot {snapshot}", name)
        if not COMMIT.fullmatch(snapshot):
            raise FormatError("snapshot folder is not named by a 40-digit commit hash", name)
        revision = snapshot
    elif os.path.isdir(os.path.join(name, HF_DIR)):
        return _open_local_dir(name, revision, repo)
    else:
        return None
    return _open_cache(name, folder, revision, repo)


def _is_repo_folder(path: str) -> bool:
    return bool(CACHE_FOLDER.fullmatch(os.path.basename(path))) and os.path.isdir(os.path.join(path, "snapshots"))


# -- the cache ---------------------------------------------------------------


def _open_cache(shown: str, folder: str, revision: str | None, repo: str | None) -> Checkout:
    m = CACHE_FOLDER.fullmatch(os.path.basename(folder))
    assert m is not None
    repo_type = m[1][:-1]
    named = m[2].replace("--", "/")
    if repo is not None and repo != named:
        raise UsageError(f"--repo-id {repo} does not match the cache folder's repository {named}", shown)
    commit = _resolve_revision(folder, revision)
    snapshot = os.path.join(folder, "snapshots", commit)
    if not os.path.isdir(snapshot):
        raise SourceError(f"no snapshot for revision {commit}", folder)
    checkout = Checkout("cache", snapshot, named, repo_type, commit)
    checkout.tree_path = os.path.join(folder, "trees", commit + ".json")
    checkout.tree = read_tree(checkout.tree_path)
    _walk_snapshot(checkout, os.path.join(os.path.realpath(folder), "blobs"))
    _cache_partials(checkout, os.path.join(folder, "blobs"))
    return checkout


def _resolve_revision(folder: str, revision: str | None) -> str:
    """A commit hash from `revision` (a commit or a ref name), refs/main, or
    the only snapshot."""
    if revision is not None and COMMIT.fullmatch(revision):
        return revision
    ref = revision or "main"
    problem = path_problem(ref)
    if problem:
        raise UsageError(f"revision {ref!r}: {problem}", folder)
    ref_file = os.path.join(folder, "refs", ref)
    if os.path.isfile(ref_file):
        text = read_capped(ref_file, MAX_REF_BYTES).decode("utf-8", "replace").strip()
        if not COMMIT.fullmatch(text):
            raise FormatError("ref does not hold a 40-digit commit hash", ref_file)
        return text
    if revision is not None:
        raise UsageError(f"revision {revision!r} is neither a commit hash nor a ref of this cache folder", folder)
    snapshots = sorted(e for e in os.listdir(os.path.join(folder, "snapshots")) if COMMIT.fullmatch(e))
    if len(snapshots) == 1:
        return snapshots[0]
    if not snapshots:
        raise SourceError("no snapshot in this cache folder", folder)
    raise UsageError(f"{len(snapshots)} snapshots and no refs/main: choose one with --revision "
                     f"({', '.join(s[:12] for s in snapshots[:4])}{', ...' if len(snapshots) > 4 else ''})", folder)


def _walk_snapshot(checkout: Checkout, blobs: str) -> None:
    """List the snapshot: every file must be a link to a blob of this repo
    folder (or, where symlinks are unavailable, a regular file)."""
    stack = [("", checkout.root)]
    while stack:
        prefix, directory = stack.pop()
        try:
            with os.scandir(directory) as it:
                entries = list(it)
        except OSError as e:
            checkout.problems.append(WalkProblem(prefix.rstrip("/") or ".", f"cannot list: {e.strerror or e}", True))
            continue
        for entry in entries:
            rel = prefix + entry.name
            problem = name_problem(entry.name)
            if problem:
                checkout.problems.append(WalkProblem(ascii(rel)[1:-1], f"unsupported file name: {problem}"))
                continue
            try:
                _visit_snapshot_entry(checkout, entry, rel, blobs, stack)
            except OSError as e:
                checkout.problems.append(WalkProblem(rel, e.strerror or str(e)))
    checkout.files.sort(key=lambda f: f.path)


def _visit_snapshot_entry(
    checkout: Checkout, entry: os.DirEntry[str], rel: str, blobs: str, stack: list[tuple[str, str]]
) -> None:
    st = entry.stat(follow_symlinks=False)
    if stat.S_ISDIR(st.st_mode):
        stack.append((rel + "/", entry.path))
    elif stat.S_ISREG(st.st_mode):  # a copy, as huggingface_hub makes where symlinks are not allowed
        checkout.files.append(HfFile(WalkedFile(rel, entry.path, st.st_size, identity(st))))
    elif not stat.S_ISLNK(st.st_mode):
        checkout.problems.append(WalkProblem(rel, f"{kind_of(st.st_mode)}, not a regular file"))
    else:
        _visit_snapshot_link(checkout, entry.path, rel, blobs)


def _visit_snapshot_link(checkout: Checkout, link: str, rel: str, blobs: str) -> None:
    """A snapshot link must name a blob of this repo folder (HF3); the blob is
    the file itself or, for a Xet download, a link into the cache-wide store
    `<cache>/blobs/<xx>/<xet hash>`."""
    named = os.path.normpath(os.path.join(os.path.realpath(os.path.dirname(link)), os.readlink(link)))
    target = os.path.realpath(link)
    if os.path.dirname(named) != blobs:
        named = target  # a chain of links: judged by where it ends
    if os.path.dirname(named) != blobs:
        checkout.problems.append(WalkProblem(rel, "snapshot link points outside the cache folder's blobs/"))
        return
    etag = os.path.basename(named)
    if target != named and not _in_shared_store(target, os.path.dirname(os.path.dirname(blobs))):
        checkout.problems.append(WalkProblem(rel, f"blob {etag[:80]} links outside the cache"))
        return
    try:
        blob = os.stat(target, follow_symlinks=False)
    except FileNotFoundError:
        checkout.broken[rel] = etag
        return
    if not stat.S_ISREG(blob.st_mode):
        checkout.problems.append(WalkProblem(rel, f"blob {etag[:80]} is a {kind_of(blob.st_mode)}, not a regular file"))
        return
    checkout.files.append(HfFile(WalkedFile(rel, target, blob.st_size, identity(blob)), etag))


def _in_shared_store(path: str, cache: str) -> bool:
    """huggingface_hub's shared Xet blob store: `<cache>/blobs/<2 hex>/<64 hex>`,
    marked by `<cache>/blobs/.huggingface-shared-blobs`."""
    store = os.path.join(cache, "blobs")
    prefix, name = os.path.split(path)
    return (os.path.dirname(prefix) == store and bool(_XET_NAME.fullmatch(name))
            and name[:2] == os.path.basename(prefix)
            and os.path.isfile(os.path.join(store, ".huggingface-shared-blobs")))


def _cache_partials(checkout: Checkout, blobs: str) -> None:
    """Unfinished downloads in blobs/, named by the file they were for."""
    try:
        names = [n for n in os.listdir(blobs) if n.endswith(".incomplete")]
    except OSError:
        return
    present = {f.path for f in checkout.files}
    wanted: dict[str, str] = {}
    if checkout.tree is not None:
        for entry in checkout.tree.values():
            if entry.path not in present:
                wanted.setdefault(entry.hub_id[1], entry.path)
    for name in sorted(names):
        m = _INCOMPLETE.fullmatch(name)
        location = f"blobs/{name}"
        try:
            have = os.stat(os.path.join(blobs, name), follow_symlinks=False).st_size
        except OSError:
            continue
        owner = wanted.get(m["etag"]) if m else None
        if owner is not None and checkout.tree is not None:
            checkout.partials.append(Partial(owner, location, have, checkout.tree[owner].size))
        elif checkout.tree is None:  # no listing to say whose it is: it could be this revision's
            checkout.partials.append(Partial(location, location, have))


# -- local_dir ---------------------------------------------------------------


def _open_local_dir(root: str, revision: str | None, repo: str | None) -> Checkout:
    listing = walk(root, (".git", HF_DIR))
    checkout = Checkout("local_dir", root, repo, "model", None, problems=listing.problems)
    download = os.path.join(root, HF_DIR, "download")
    meta = _read_download_metadata(download, checkout)
    for f in listing.files:
        etag, commit = meta.get(f.path, (None, None))
        checkout.files.append(HfFile(f, etag, commit))
    if revision is None and len(checkout.revisions) == 1:
        (revision,) = checkout.revisions
    elif revision is None:
        revision = _only_tree(os.path.join(root, HF_DIR, "trees")) if not checkout.revisions else None
    elif not COMMIT.fullmatch(revision):
        raise UsageError(f"--revision for a local_dir checkout must be a 40-digit commit hash, not {revision!r}", root)
    checkout.revision = revision
    if revision is not None:
        checkout.tree_path = os.path.join(root, HF_DIR, "trees", revision + ".json")
        checkout.tree = read_tree(checkout.tree_path)
    _local_partials(checkout, download)
    return checkout


def _only_tree(trees: str) -> str | None:
    try:
        names = [n[:-5] for n in os.listdir(trees) if n.endswith(".json") and COMMIT.fullmatch(n[:-5])]
    except OSError:
        return None
    return names[0] if len(names) == 1 else None


def _read_download_metadata(download: str, checkout: Checkout) -> dict[str, tuple[str, str]]:
    """path -> (etag, commit) from every `<path>.metadata` file."""
    found: dict[str, tuple[str, str]] = {}
    if not os.path.isdir(download):
        return found
    for m in walk(download, ()).files:
        if not m.path.endswith(".metadata"):
            continue
        path = m.path[: -len(".metadata")]
        where = f"{HF_DIR}/download/{m.path}"
        try:
            lines = read_capped(m.abspath, MAX_METADATA_BYTES).decode("utf-8").split("\n")
            commit, etag, stamp = lines[0].strip(), lines[1].strip(), lines[2].strip()
            float(stamp)
        except (UnicodeDecodeError, IndexError, ValueError, FormatError, SourceError):
            checkout.problems.append(WalkProblem(path, f"download metadata {where} is malformed"))
            continue
        if not COMMIT.fullmatch(commit) or hub_id_of_etag(etag) is None:
            checkout.problems.append(WalkProblem(path, f"download metadata {where} does not hold a commit and etag"))
            continue
        found[path] = (etag, commit)
        checkout.revisions[commit] += 1
        checkout.known[path] = hub_id_of_etag(etag)  # type: ignore[assignment]
    return found


def incomplete_key(path: str, etag: str) -> tuple[str, str, str]:
    """(folder, tag, etag) of a local_dir download of `path` in progress:
    huggingface_hub keeps it in `.cache/huggingface/download/<folder>/` as
    `<urlsafe b64 sha1(name + ".metadata")>.<etag>[.<8 hex>].incomplete`."""
    directory, _, base = path.rpartition("/")
    tag = base64.urlsafe_b64encode(hashlib.sha1((base + ".metadata").encode(), usedforsecurity=False).digest())
    return directory, tag.decode(), etag


def _local_partials(checkout: Checkout, download: str) -> None:
    if not os.path.isdir(download):
        return
    present = {f.path for f in checkout.files}
    expected = dict(checkout.known)
    if checkout.tree is not None:
        expected.update((p, e.hub_id) for p, e in checkout.tree.items())
    wanted = {incomplete_key(p, hub[1]): p for p, hub in expected.items() if p not in present}
    for f in walk(download, ()).files:
        directory, _, base = f.path.rpartition("/")
        m = _LOCAL_INCOMPLETE.fullmatch(base)
        if m is None:
            continue
        owner = wanted.get((directory, m["tag"], m["etag"]))
        location = f"{HF_DIR}/download/{f.path}"
        size = checkout.tree[owner].size if owner and checkout.tree and owner in checkout.tree else None
        checkout.partials.append(Partial(owner or location, location, f.size, size))


# -- tree listings -----------------------------------------------------------

_ENTRY_TYPES: Final[dict[str, Any]] = {"size": int, "blob_id": str, "lfs_sha256": str, "lfs_size": int,
                                       "xet_hash": str}
_HEX = {"blob_id": re.compile("[0-9a-f]{40}"), "lfs_sha256": re.compile("[0-9a-f]{64}"),
        "xet_hash": re.compile("[0-9a-f]{64}")}


def read_tree(path: str) -> dict[str, TreeEntry] | None:
    """The tree listing at `path` (None when absent), checked strictly:
    FormatError naming the file for anything malformed or hostile."""
    if not os.path.exists(path):
        return None
    doc = _json.loads(read_capped(path, MAX_TREE_BYTES), path, MAX_TREE_BYTES)
    try:
        return parse_tree(doc)
    except FormatError as e:
        raise type(e)(f"tree listing: {e.message}", path) from e


def parse_tree(doc: Any) -> dict[str, TreeEntry]:
    if not isinstance(doc, dict) or not isinstance(doc.get("files"), dict):
        raise FormatError("not a huggingface_hub tree listing (no 'files' object)")
    if doc.get("format_version") != 1:
        raise UnsupportedError(f"format_version {doc.get('format_version')!r} is not supported (expected 1)")
    entries: dict[str, TreeEntry] = {}
    for name, info in doc["files"].items():
        problem = path_problem(name)
        if problem:
            raise FormatError(f"path {name!r}: {problem}")
        if not isinstance(info, dict):
            raise FormatError(f"{name}: entry is not an object")
        for key, kind in _ENTRY_TYPES.items():
            value = info.get(key)
            if value is None and key not in ("size", "blob_id"):
                continue
            if not isinstance(value, kind) or isinstance(value, bool):
                raise FormatError(f"{name}: {key} is missing or not a {kind.__name__}")
            if kind is int and value < 0:
                raise FormatError(f"{name}: {key} is negative")
            if key in _HEX and not _HEX[key].fullmatch(value):
                raise FormatError(f"{name}: {key} is not lower-case hex of the right length")
        entries[name] = TreeEntry(name, info["size"], info["blob_id"], info.get("lfs_sha256"), info.get("lfs_size"),
                                  info.get("xet_hash"))
    return entries


def excluded(checkout: Checkout, patterns: tuple[str, ...]) -> Checkout:
    """`checkout` without the files `patterns` cover (build and verify exclusions)."""
    if not patterns:
        return checkout
    skip = Excluder(patterns)
    checkout.files = [f for f in checkout.files if not skip.covers(f.path)]
    checkout.problems = [p for p in checkout.problems if not skip.covers(p.path)]
    return checkout
