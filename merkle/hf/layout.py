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

from merkle.errors import FormatError, SourceError, UnsupportedError, UsageError, option
from merkle.format import strictjson
from merkle.format.hub import GIT_BLOB, GIT_BLOB_SHA256, SHA256, HubId, git_blob_id, lfs_pointer
from merkle.format.origin import AnyOrigin, Origin
from merkle.format.paths import name_problem, path_problem
from merkle.source.layouts import LayoutOptions, check_repo
from merkle.source.local import Root, descend, kind_of, read_capped
from merkle.source.walk import Excluder, WalkedFile, WalkProblem, identity, walk

CACHE_FOLDER: Final = re.compile(r"(models|datasets|spaces)--(.+)")
COMMIT: Final = re.compile("[0-9a-f]{40}")
HF_DIR: Final = ".cache/huggingface"
MAX_TREE_BYTES: Final = 64 << 20  # about 300,000 entries; JSON decoding needs ~10x this
MAX_METADATA_BYTES: Final = 4096
MAX_REF_BYTES: Final = 256
_INCOMPLETE: Final = re.compile(r"(?P<etag>[0-9a-f]{40}|[0-9a-f]{64})(?:\.[0-9a-f]{8})?\.incomplete")
_LOCAL_INCOMPLETE: Final = re.compile(
    r"(?P<tag>[A-Za-z0-9_-]{27}=)\.(?P<etag>[0-9a-f]{40}|[0-9a-f]{64})(?:\.[0-9a-f]{8})?\.incomplete"
)
_XET_NAME: Final = re.compile("[0-9a-f]{64}")
_ETAG: Final = re.compile("[0-9a-f]{64}|[0-9a-f]{40}")


SUBMODULE: Final = "a submodule"
CACHE_PARTS: Final = frozenset({"blobs", "refs", "snapshots", "trees", ".no_exist"})
"""All that huggingface_hub keeps in a cache repo folder."""


def layout_for(path: str, origin: AnyOrigin | None, revision: str | None) -> str | None:
    """The Hugging Face layout a verifier reads `path` with (docs/hf.md,
    HF10): under a Hugging Face `origin`, the cache when `path` is named as
    that repository's cache folder (`models--ORG--NAME`) or one of its
    snapshots, a local_dir otherwise; without one, a cache snapshot when
    `revision` asks for one, else none (the plain tree)."""
    if origin is None:
        return None if revision is None else "hf-cache"
    if not isinstance(origin, Origin):  # a git origin: its work tree is read plain
        return None
    return "hf-cache" if _names_cache_of(path, origin) else "hf-local-dir"


def _names_cache_of(path: str, origin: Origin) -> bool:
    """Whether `path` is named as the origin's cache folder or one of its
    snapshots: names the user chose, outside what the tree holds."""
    if origin.repo is None:
        return False
    folder = f"{origin.repo_type}s--" + origin.repo.replace("/", "--")
    real = os.path.realpath(path.removeprefix("file://"))
    parent = os.path.dirname(real)
    return os.path.basename(real) == folder or (
        os.path.basename(parent) == "snapshots" and os.path.basename(os.path.dirname(parent)) == folder
    )


def hub_id_of_etag(etag: str) -> HubId | None:
    """What a cache blob name or local_dir etag claims: 64 hex digits are an
    LFS object id, 40 a git blob id; anything else is not a content address."""
    if not _ETAG.fullmatch(etag):
        return None
    return (SHA256, etag) if len(etag) == 64 else (GIT_BLOB, etag)


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
        if self.lfs_sha256:
            return SHA256, self.lfs_sha256
        return (GIT_BLOB if len(self.blob_id) == 40 else GIT_BLOB_SHA256), self.blob_id

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

    kind: Literal["cache", "local_dir", "git"]
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
    bad_metadata: dict[str, str] = field(default_factory=dict)
    """Present files whose download metadata is unusable: path -> reason."""
    bases: dict[str, Root] = field(default_factory=dict, repr=False)
    """The folders blobs are opened from (blobs/, the shared Xet store)."""
    remote_url: str | None = None
    """git: the clone's remote, without credentials."""
    on_remote: bool = False
    """git: the commit is a tip of the remote's branches as last fetched (not a local commit)."""
    listing: str = "the tree listing"
    """Who names each file's identity, in messages: the Hub's tree listing, or a git commit."""

    @property
    def origin(self) -> Origin | None:
        if self.revision is None or not COMMIT.fullmatch(self.revision):
            return None
        return Origin(self.revision, self.repo, self.repo_type)

    def expected(self, f: HfFile) -> HubId | None:
        """The Hub identity `f` must have: the tree listing's when there is
        one, else what its blob name or download metadata claims."""
        if self.tree is not None and f.path in self.tree:
            return self.tree[f.path].hub_id
        return hub_id_of_etag(f.etag) if f.etag else None

    def describe(self) -> str:
        what = {"cache": "cache snapshot", "local_dir": "local_dir checkout", "git": "git clone"}[self.kind]
        repo = self.repo or (self.remote_url if self.kind == "git" else None) or f"(unnamed {self.repo_type} repo)"
        hub = "Hugging Face " if self.kind != "git" or self.repo else ""
        return f"{hub}{what} of {repo} at {self.revision or 'an unknown revision'}"


def open_checkout(path: str, options: LayoutOptions | None = None, clones: bool = False) -> Checkout | None:
    """The checkout at `path` (a cache repo folder, one of its snapshots, or a
    local_dir), or None when `path` is none of these or is to be read plain.
    With `options.layout` None the folder's shape decides; "hf-cache" and
    "hf-local-dir" require that layout (UsageError for a path that is no
    cache folder or snapshot).  Bookkeeping folders that are symbolic links
    are not followed: nothing outside the checkout (or, for the cache, its
    repo folder and shared blob store) is read."""
    opts = options or LayoutOptions()
    name = os.fspath(path).removeprefix("file://")
    if opts.layout == "plain" or not os.path.isdir(name):
        return None
    if opts.repo_id is not None:
        check_repo(opts.repo_id)
    if opts.layout == "hf-local-dir":
        return _open_local_dir(name, opts)
    real = os.path.realpath(name)
    parent = os.path.dirname(real)
    if _is_repo_folder(real):
        folder, revision = real, opts.revision
        _no_strays(name, folder)
    elif os.path.basename(parent) == "snapshots" and _is_repo_folder(os.path.dirname(parent)):
        folder, snapshot = os.path.dirname(parent), os.path.basename(real)
        if not COMMIT.fullmatch(snapshot):
            raise FormatError("snapshot folder is not named by a 40-digit commit hash", name)
        if opts.revision is not None and _resolve_revision(folder, opts.revision) != snapshot:
            raise UsageError(f"{option('revision')} {opts.revision} is not this snapshot ({snapshot})", name)
        revision = snapshot
    elif opts.layout == "hf-cache":
        raise UsageError(
            "not a Hugging Face cache folder (models--ORG--NAME holding snapshots/) or one of its snapshots", name
        )
    elif _real_dir(os.path.join(name, ".cache")) and _real_dir(os.path.join(name, HF_DIR)):
        return _open_local_dir(name, opts)
    elif clones and opts.layout is None and os.path.lexists(os.path.join(name, ".git")):
        return open_clone(name, opts)
    else:
        return None
    return _open_cache(name, folder, revision, opts)


def _no_strays(shown: str, folder: str) -> None:
    """A cache repo folder holds only CACHE_PARTS.  Anything else means it is
    also a tree of its own, whose files reading the snapshot would leave
    unchecked: SourceError naming the first, and how to choose."""
    try:
        strays = sorted(set(os.listdir(folder)) - CACHE_PARTS)
    except OSError as e:
        raise SourceError(f"cannot list: {e.strerror or e}", shown) from e
    if strays:
        plain, local_dir = option('layout="plain"'), option('layout="hf-local-dir"')
        raise SourceError(
            f"not part of a Hugging Face cache folder (it holds only {', '.join(sorted(CACHE_PARTS))}); "
            f"to check the folder's own files, pass {plain} or {local_dir}",
            os.path.join(shown, strays[0]),
        )


def hub_cache_dir() -> str:
    """Where huggingface_hub keeps its cache: $HF_HUB_CACHE, else
    $HUGGINGFACE_HUB_CACHE, else $HF_HOME/hub, else
    ${XDG_CACHE_HOME:-~/.cache}/huggingface/hub."""
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface"
    )
    cache = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE") or os.path.join(home, "hub")
    return os.path.expandvars(os.path.expanduser(cache))


def cache_folder_of(repo: str, repo_type: str | None = None, cache_dir: str | None = None) -> str:
    """`ORG/NAME` -> its repo folder in the cache (`models--ORG--NAME`)."""
    check_repo(repo)
    cache = cache_dir or hub_cache_dir()
    folder = os.path.join(cache, f"{repo_type or 'model'}s--" + repo.replace("/", "--"))
    if not os.path.isdir(folder):
        raise SourceError(f"{repo} is not in the Hugging Face cache (no {folder})", repo)
    return folder


def _real_dir(path: str) -> bool:
    """A directory that is not a symbolic link."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def _is_repo_folder(path: str) -> bool:
    return bool(CACHE_FOLDER.fullmatch(os.path.basename(path))) and _real_dir(os.path.join(path, "snapshots"))


# -- the cache ---------------------------------------------------------------


def _open_cache(shown: str, folder: str, revision: str | None, opts: LayoutOptions) -> Checkout:
    m = CACHE_FOLDER.fullmatch(os.path.basename(folder))
    assert m is not None
    repo_type = m[1][:-1]
    named = m[2].replace("--", "/")
    if opts.repo_id is not None and opts.repo_id != named:
        raise UsageError(
            f"{option('repo_id')} {opts.repo_id} does not match the cache folder's repository {named}", shown
        )
    if opts.repo_type is not None and opts.repo_type != repo_type:
        raise UsageError(
            f"{option('repo_type')} {opts.repo_type} does not match the cache folder's ({repo_type})", shown
        )
    commit = _resolve_revision(folder, revision)
    snapshot = os.path.join(folder, "snapshots", commit)
    if not _real_dir(snapshot):
        what = "is a symbolic link" if os.path.islink(snapshot) else "does not exist"
        raise SourceError(f"snapshot of revision {commit} {what}", folder)
    checkout = Checkout("cache", snapshot, named, repo_type, commit)
    if opts.bookkeeping and _real_dir(os.path.join(folder, "trees")):
        checkout.tree_path = os.path.join(folder, "trees", commit + ".json")
        checkout.tree = read_tree(checkout.tree_path, folder)
    _walk_snapshot(checkout, os.path.join(folder, "blobs"))
    if opts.bookkeeping and _real_dir(os.path.join(folder, "blobs")):
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
    if _real_dir(os.path.join(folder, "refs")) and os.path.isfile(ref_file) and not os.path.islink(ref_file):
        text = read_capped(f"refs/{ref}", MAX_REF_BYTES, root=folder).decode("utf-8", "replace").strip()
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
    raise UsageError(
        f"{len(snapshots)} snapshots and no refs/main: choose one with {option('revision')} "
        f"({', '.join(s[:12] for s in snapshots[:4])}{', ...' if len(snapshots) > 4 else ''})",
        folder,
    )


def _walk_snapshot(checkout: Checkout, blobs: str) -> None:
    """List the snapshot: every file must be a link to a blob of this repo
    folder (or, where symlinks are unavailable, a regular file).  Each
    directory is opened down from the snapshot, never through a link, and
    must be the one listed; blobs are opened relative to blobs/."""
    try:
        fd, snapshot = Root.open(checkout.root)
    except SourceError as e:
        checkout.problems.append(WalkProblem(".", f"cannot list: {e.message}", True))
        return
    try:
        stack: list[tuple[str, tuple[int, int] | None]] = [("", None)]
        while stack:
            prefix, listed = stack.pop()
            rel = prefix.rstrip("/") or "."
            try:
                directory = descend(fd, prefix.rstrip("/").split("/")) if prefix else os.dup(fd)
            except SourceError as e:
                checkout.problems.append(WalkProblem(rel, f"cannot list: {e.message}", True))
                continue
            try:
                st = os.fstat(directory)
                if listed is not None and (st.st_dev, st.st_ino) != listed:
                    checkout.problems.append(WalkProblem(rel, "cannot list: changed while the tree was walked", True))
                    continue
                with os.scandir(directory) as it:
                    entries = list(it)
                for entry in entries:
                    rel = prefix + entry.name
                    problem = name_problem(entry.name)
                    if problem:
                        checkout.problems.append(
                            WalkProblem(ascii(rel)[1:-1], f"unsupported file name: {problem}", unmapped=True)
                        )
                        continue
                    try:
                        _visit_snapshot_entry(checkout, snapshot, entry, rel, blobs, stack)
                    except OSError as e:
                        checkout.problems.append(WalkProblem(rel, e.strerror or str(e)))
            except OSError as e:
                checkout.problems.append(WalkProblem(rel, f"cannot list: {e.strerror or e}", True))
            finally:
                os.close(directory)
    finally:
        os.close(fd)
    checkout.files.sort(key=lambda f: f.path)


def _visit_snapshot_entry(
    checkout: Checkout,
    snapshot: Root,
    entry: os.DirEntry[str],
    rel: str,
    blobs: str,
    stack: list[tuple[str, tuple[int, int] | None]],
) -> None:
    st = entry.stat(follow_symlinks=False)
    if stat.S_ISDIR(st.st_mode):
        stack.append((rel + "/", (st.st_dev, st.st_ino)))
    elif stat.S_ISREG(st.st_mode):  # a copy, as huggingface_hub makes where symlinks are not allowed
        where = os.path.join(checkout.root, *rel.split("/"))
        checkout.files.append(HfFile(WalkedFile(rel, where, st.st_size, identity(st), snapshot, rel)))
    elif not stat.S_ISLNK(st.st_mode):
        checkout.problems.append(WalkProblem(rel, f"{kind_of(st.st_mode)}, not a regular file"))
    else:
        _visit_snapshot_link(checkout, os.path.join(checkout.root, *rel.split("/")), rel, blobs)


def _visit_snapshot_link(checkout: Checkout, link: str, rel: str, blobs: str) -> None:
    """A snapshot link must name a blob of this repo folder (HF3); the blob is
    the file itself or, for a Xet download, a link into the cache-wide store
    `<cache>/blobs/<xx>/<xet hash>`.  The blob is opened relative to its
    folder, never through a link."""
    named = os.path.normpath(os.path.join(os.path.realpath(os.path.dirname(link)), os.readlink(link)))
    target = os.path.realpath(link)
    if os.path.dirname(named) != blobs:
        named = target  # a chain of links: judged by where it ends
    if os.path.dirname(named) != blobs:
        checkout.problems.append(WalkProblem(rel, "snapshot link points outside the cache folder's blobs/"))
        return
    etag = os.path.basename(named)
    store = os.path.join(os.path.dirname(os.path.dirname(blobs)), "blobs")
    if os.path.dirname(target) != blobs and not _in_shared_store(target, os.path.dirname(os.path.dirname(blobs))):
        checkout.problems.append(WalkProblem(rel, f"blob {etag[:80]} links outside blobs/ and the shared Xet store"))
        return
    try:
        blob = os.stat(target, follow_symlinks=False)
    except FileNotFoundError:
        checkout.broken[rel] = etag
        return
    if not stat.S_ISREG(blob.st_mode):
        checkout.problems.append(WalkProblem(rel, f"blob {etag[:80]} is {kind_of(blob.st_mode)}, not a regular file"))
        return
    folder = blobs if os.path.dirname(target) == blobs else store
    base = checkout.bases.get(folder)
    if base is None:
        st = os.stat(folder)
        base = checkout.bases[folder] = Root(folder, st.st_dev, st.st_ino)
    below = os.path.relpath(target, folder).replace(os.sep, "/")
    checkout.files.append(HfFile(WalkedFile(rel, target, blob.st_size, identity(blob), base, below), etag))


def _in_shared_store(path: str, cache: str) -> bool:
    """huggingface_hub's shared Xet blob store: `<cache>/blobs/<2 hex>/<64 hex>`,
    marked by `<cache>/blobs/.huggingface-shared-blobs`."""
    store = os.path.join(cache, "blobs")
    prefix, name = os.path.split(path)
    return (
        os.path.dirname(prefix) == store
        and bool(_XET_NAME.fullmatch(name))
        and name[:2] == os.path.basename(prefix)
        and os.path.isfile(os.path.join(store, ".huggingface-shared-blobs"))
    )


def _cache_partials(checkout: Checkout, blobs: str) -> None:
    """Unfinished downloads in blobs/, named by the file they were for.  A
    leftover of an attempt that was retried (its blob or file is complete)
    is not a partial download; without a tree listing, one that no present
    file explains is reported under its own name."""
    try:
        names = [n for n in os.listdir(blobs) if n.endswith(".incomplete")]
    except OSError:
        return
    present = {f.path for f in checkout.files} | set(checkout.broken)
    done = {f.etag for f in checkout.files if f.etag}
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
        elif checkout.tree is None and not (m and (m["etag"] in done or os.path.exists(os.path.join(blobs, m[1])))):
            checkout.partials.append(Partial(location, location, have))


# -- local_dir ---------------------------------------------------------------


def _open_local_dir(root: str, opts: LayoutOptions) -> Checkout:
    listing = walk(root, (*opts.exclude, HF_DIR), opts.follow_symlinks)
    checkout = Checkout("local_dir", root, opts.repo_id, opts.repo_type or "model", None, problems=listing.problems)
    hf_dir = os.path.join(root, HF_DIR)
    download = os.path.join(hf_dir, "download")
    meta = _read_download_metadata(download, checkout) if opts.bookkeeping and _real_dir(download) else {}
    for f in listing.files:
        etag, commit = meta.get(f.path, (None, None))
        checkout.files.append(HfFile(f, etag, commit))
    trees = os.path.join(hf_dir, "trees")
    has_trees = opts.bookkeeping and _real_dir(trees)
    revision = opts.revision
    if revision is not None:
        if not COMMIT.fullmatch(revision):
            raise UsageError(
                f"{option('revision')} for a local_dir checkout must be a 40-digit commit hash, not {revision!r}",
                root,
            )
        if revision not in checkout.revisions and not (
            has_trees and os.path.exists(os.path.join(trees, revision + ".json"))
        ):
            raise UsageError(
                f"{option('revision')} {revision}: no download metadata or tree listing of this checkout names it",
                root,
            )
    elif len(checkout.revisions) == 1:
        (revision,) = checkout.revisions
    elif not checkout.revisions and has_trees:
        revision = _only_tree(trees)
    checkout.revision = revision
    if revision is not None and has_trees:
        checkout.tree_path = os.path.join(trees, revision + ".json")
        checkout.tree = read_tree(checkout.tree_path, root)
    if opts.bookkeeping and _real_dir(download):
        _local_partials(checkout, download)
    return checkout


def open_clone(root: str, opts: LayoutOptions) -> Checkout:
    """A git clone, checked against its commit (HEAD, or `opts.revision`):
    the commit's files, read and checked from the repository's objects
    (merkle.git), are its tree listing; an LFS file's identity is its
    pointer's SHA-256 and size.  The repository is a Hub one when its remote
    is a Hub URL (or `opts.repo_id` says so)."""
    from merkle.git import hub_repo_of_url, open_repo

    repo = open_repo(root, opts.revision)
    assert repo is not None  # the caller saw a .git
    hub = hub_repo_of_url(repo.remote_url)
    repo_id, repo_type = (opts.repo_id, opts.repo_type or "model") if opts.repo_id else (hub or (None, "model"))
    tree: dict[str, TreeEntry] = {}
    problems: list[WalkProblem] = []
    for e in repo.entries.values():
        if e.kind == "submodule":  # its files, when checked out, are another repository's: untracked here
            problems.append(WalkProblem(e.path, f"{SUBMODULE} (commit {e.blob_id}): its files are not this commit's"))
        elif e.lfs is not None:
            oid, size = e.lfs
            tree[e.path] = TreeEntry(e.path, size, git_blob_id(lfs_pointer(oid, size)), oid, size)
        else:
            tree[e.path] = TreeEntry(e.path, e.size, e.blob_id)
    listing = walk(root, opts.exclude, opts.follow_symlinks)
    checkout = Checkout(
        "git",
        root,
        repo_id,
        repo_type,
        repo.commit,
        [HfFile(f) for f in listing.files],
        tree,
        problems=sorted(listing.problems + problems, key=lambda p: p.path),
        remote_url=repo.remote_url,
        on_remote=repo.on_remote,
        listing=f"commit {repo.commit[:12]}",
    )
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
            lines = _read_listed(m, MAX_METADATA_BYTES).decode("utf-8").split("\n")
            commit, etag, stamp = lines[0].strip(), lines[1].strip(), lines[2].strip()
            float(stamp)
        except (UnicodeDecodeError, IndexError, ValueError, FormatError, SourceError):
            checkout.bad_metadata[path] = f"download metadata {where} is malformed"
            continue
        if not COMMIT.fullmatch(commit) or hub_id_of_etag(etag) is None:
            checkout.bad_metadata[path] = f"download metadata {where} does not hold a commit and etag"
            continue
        found[path] = (etag, commit)
        checkout.revisions[commit] += 1
        checkout.known[path] = hub_id_of_etag(etag)  # type: ignore[assignment]
    return found


def _read_listed(f: WalkedFile, max_bytes: int) -> bytes:
    """A small listed file, opened down from its root, never through a link."""
    fd, st = f.open()
    try:
        if st.st_size > max_bytes:
            raise FormatError(f"{st.st_size} bytes, larger than the {max_bytes}-byte limit", f.abspath)
        data = os.read(fd, max_bytes + 1)
    except OSError as e:
        raise SourceError(e.strerror or str(e), f.abspath) from e
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise FormatError(f"larger than the {max_bytes}-byte limit", f.abspath)
    return data


def incomplete_key(path: str, etag: str) -> tuple[str, str, str]:
    """(folder, tag, etag) of a local_dir download of `path` in progress:
    huggingface_hub keeps it in `.cache/huggingface/download/<folder>/` as
    `<urlsafe b64 sha1(name + ".metadata")>.<etag>[.<8 hex>].incomplete`."""
    directory, _, base = path.rpartition("/")
    tag = base64.urlsafe_b64encode(hashlib.sha1((base + ".metadata").encode(), usedforsecurity=False).digest())
    return directory, tag.decode(), etag


def _local_partials(checkout: Checkout, download: str) -> None:
    """Unfinished local_dir downloads, named by their file when it is not
    present.  Leftovers of retried attempts (the file is there) are not
    partial; ones no listed file explains are reported only when there is no
    tree listing to tell which revision they belong to."""
    present = {f.path for f in checkout.files}
    done = {f.etag for f in checkout.files if f.etag}
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
        if owner is None and (checkout.tree is not None or m["etag"] in done):
            continue
        size = checkout.tree[owner].size if owner and checkout.tree and owner in checkout.tree else None
        checkout.partials.append(Partial(owner or location, location, f.size, size))


# -- tree listings -----------------------------------------------------------

_ENTRY_TYPES: Final[dict[str, Any]] = {"size": int, "blob_id": str, "lfs_sha256": str, "lfs_size": int, "xet_hash": str}
_HEX = {
    "blob_id": re.compile("[0-9a-f]{40}"),
    "lfs_sha256": re.compile("[0-9a-f]{64}"),
    "xet_hash": re.compile("[0-9a-f]{64}"),
}


def read_tree(path: str, root: str | None = None) -> dict[str, TreeEntry] | None:
    """The tree listing at `path` (None when absent), checked strictly:
    FormatError naming the file for anything malformed or hostile.  With
    `root` (a folder that holds `path`), it is opened down from there,
    never through a link."""
    if not os.path.exists(path):
        return None
    if root is not None:
        data = read_capped(os.path.relpath(path, root).replace(os.sep, "/"), MAX_TREE_BYTES, root=root)
    else:
        data = read_capped(path, MAX_TREE_BYTES, follow_symlinks=False)
    doc = strictjson.loads(data, path, MAX_TREE_BYTES)
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
        problem = path_problem(name) if isinstance(name, str) else "not a string"
        if problem and not problem.startswith("not in Unicode NFC"):  # the Hub allows other forms: never opened
            raise FormatError(f"path {ascii(name)}: {problem}")
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
        entries[name] = TreeEntry(
            name, info["size"], info["blob_id"], info.get("lfs_sha256"), info.get("lfs_size"), info.get("xet_hash")
        )
    return entries


def excluded(checkout: Checkout, patterns: tuple[str, ...]) -> Checkout:
    """`checkout` without the files `patterns` cover (build and verify exclusions)."""
    if not patterns:
        return checkout
    skip = Excluder(patterns)
    checkout.files = [f for f in checkout.files if not skip.covers(f.path)]
    checkout.problems = [p for p in checkout.problems if not skip.covers(p.path)]
    checkout.broken = {p: b for p, b in checkout.broken.items() if not skip.covers(p)}
    checkout.partials = [p for p in checkout.partials if not skip.covers(p.path)]
    return checkout
