"""Building a manifest: walk -> hash -> file entries -> dataset root."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from merkle._gc import paused
from merkle._native import native
from merkle.errors import FormatError, SourceError, UsageError, option
from merkle.format.leaves import LeafLayers
from merkle.format.manifest import DEFAULT_CHUNK_SIZE, DEFAULT_EXCLUDES, FileEntry, Manifest, check_chunk_size
from merkle.format.paths import case_collision
from merkle.format.zarr import MAX_DOC_BYTES, ROOT_DOCS, ZARR_CHUNK_SIZE, ZarrLayout, describe, is_zarr_root
from merkle.hashing.checkpoint import Checkpoint, hash_resumable, hash_stream_resumable, job
from merkle.hashing.cluster import Cluster
from merkle.hashing.engine import FileDigest
from merkle.hashing.identities import Identities
from merkle.hashing.options import HashOptions
from merkle.report import Progress
from merkle.source.layouts import LayoutOptions
from merkle.source.listing import Listing, WalkOptions, list_source
from merkle.source.remote import is_url
from merkle.source.walk import WalkedFile
from merkle.tree import rfc6962
from merkle.tree.hasher import DEFAULT_ALGORITHM, Algorithm, TreeHasher, tree_hasher


@dataclass(frozen=True)
class BuildOptions:
    """What a build records in the manifest: the parameters that change a
    digest or are signed with it (format rule M5, docs/hf.md M6).
    `algorithm` and `chunk_size` (None: 1 MiB, or 64 KiB for a zarr store,
    whose shards are read in small ranges); `exclude`, patterns left out of
    the walk, with `.git` unless `default_excludes` is False; `repo_id` and
    `repo_type`, the repository of a Hugging Face local_dir, which does not
    say (a cache folder names its own)."""

    algorithm: Algorithm = DEFAULT_ALGORITHM
    chunk_size: int | None = None
    exclude: tuple[str, ...] = ()
    default_excludes: bool = True
    repo_id: str | None = None
    repo_type: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "exclude", tuple(self.exclude))
        tree_hasher(self.algorithm)  # UnsupportedError for an algorithm this build refuses
        if self.chunk_size is not None:
            check_chunk_size(self.chunk_size)

    @property
    def exclusions(self) -> tuple[str, ...]:
        """The patterns the walk leaves out, as the manifest records them."""
        base = DEFAULT_EXCLUDES if self.default_excludes else ()
        return tuple(dict.fromkeys((*base, *self.exclude)))


def build(
    path: str | os.PathLike[str],
    *,
    algorithm: Algorithm = DEFAULT_ALGORITHM,
    chunk_size: int | None = None,
    exclude: Sequence[str] = (),
    default_excludes: bool = True,
    follow_symlinks: bool = False,
    jobs: int | None = None,
    progress: Progress | None = None,
    storage_options: dict[str, Any] | None = None,
    checkpoint: bool = False,
    resume: bool = False,
    cluster: Cluster | None = None,
    revision: str | None = None,
    repo_id: str | None = None,
    repo_type: str | None = None,
    layout: str | None = None,
    update: Manifest | None = None,
) -> Manifest:
    """Hash every file under directory `path` (or every object under an
    fsspec URL such as s3://bucket/prefix) into a Manifest, with its leaf
    layers (and, for object stores, per-object metadata) attached for
    `Manifest.save` to write beside it.  The keywords are those of
    BuildOptions (what the manifest records), WalkOptions (how the source
    is read) and HashOptions (how hashing runs); `build_with` takes the
    three objects.

    Raises SourceError, naming the file, if anything in the tree cannot be
    hashed faithfully: a refused symlink, a FIFO, an unreadable file, a file
    that changes while it is read.

    A Hugging Face cache folder, snapshot or local_dir checkout is built as
    such (docs/hf.md): the manifest records the repository and revision
    (`revision` picks a cache snapshot; `repo_id` and `repo_type` name a
    local_dir's repository) and each file's Hub identity, recomputed from its content;
    a file whose content does not match it is an IntegrityError.  Such a
    checkout is recognised by its shape unless `layout` says how to read
    `path` ("plain", "hf-cache", "hf-local-dir"); what was found is recorded
    in the manifest (its origin, and a local_dir's `.cache/huggingface` in
    its exclusions), since a verifier never looks at the shape (docs/hf.md,
    HF10).

    `update` (OLD, a manifest of this tree with the same algorithm and chunk
    size): each file whose identity (device, inode, size, mtime, ctime) is
    unchanged since a build or verify of this tree on this machine recorded
    it, and whose recorded root OLD lists, is taken from those records
    (merkle.hashing.identities, `progress.updated_files`) instead of read.
    The manifest is the same as without it."""
    hashing = HashOptions(jobs, progress, checkpoint, resume, cluster)
    options = BuildOptions(algorithm, chunk_size, tuple(exclude), default_excludes, repo_id, repo_type)
    walk = WalkOptions(follow_symlinks, storage_options, layout, revision)
    return build_with(path, options, walk, hashing, update=update)


def build_with(
    path: str | os.PathLike[str],
    options: BuildOptions = BuildOptions(),
    walk: WalkOptions = WalkOptions(),
    hashing: HashOptions = HashOptions(),
    *,
    update: Manifest | None = None,
) -> Manifest:
    """`build`, with its options as objects."""
    manifest, state = build_resumable(path, options, walk, hashing, update=update)
    if state is not None:
        state.discard()
    return manifest


@paused()
def build_resumable(
    path: str | os.PathLike[str],
    options: BuildOptions = BuildOptions(),
    walk: WalkOptions = WalkOptions(),
    hashing: HashOptions = HashOptions(),
    *,
    update: Manifest | None = None,
) -> tuple[Manifest, Checkpoint | None]:
    """`build_with`, with the checkpoint left open: the caller discards it
    once the manifest is safely written (or keeps it if that fails)."""
    hasher = tree_hasher(options.algorithm)
    patterns = options.exclusions
    reading = LayoutOptions(walk.layout, walk.revision, options.repo_id, options.repo_type)
    # A plain local tree is hashed while it is walked (engine.hash_stream);
    # its problems are then known only at the end, and checked before any
    # digest is used, in the same order as for a listing made up front.
    listing = list_source(path, patterns, walk, reading, stream=hashing.cluster is None)
    root = os.fspath(path)
    found = listing.found
    zarr_store = found is None and _zarr_root(listing, root)
    chunk_size = options.chunk_size
    if chunk_size is None:  # small chunks in a zarr store: a range read of a shard reads little more than asked
        chunk_size = ZARR_CHUNK_SIZE if zarr_store else DEFAULT_CHUNK_SIZE
    if found is None and (walk.revision or options.repo_id or options.repo_type):
        named = f"{option('revision')}, {option('repo_id')} and {option('repo_type')}"
        raise UsageError(f"{named} apply to Hugging Face checkouts", root)
    if found is not None and found.exclusions:
        # Recorded, so that any verifier (an older merkle, a plain copy) leaves the bookkeeping out too.
        patterns = (*patterns, *found.exclusions)
    if found is not None and options.repo_id and found.origin is None:
        raise UsageError(
            f"{option('repo_id')}: the checkout's revision is unknown (no download metadata or tree listing "
            f"names one), so no origin can be recorded; pass {option('revision')}",
            root,
        )
    state = None
    if hashing.keeps_checkpoint:
        state = Checkpoint.open(
            job(
                "build",
                root,
                dict(walk.storage_options) if walk.storage_options is not None else None,
                algorithm=hasher.name,
                chunk_size=chunk_size,
                exclude=list(patterns),
                follow_symlinks=walk.follow_symlinks,
                hf=found.kind if found is not None else None,  # the job's name for it, kept: checkpoints stay valid
                layout=walk.layout,
                revision=walk.revision,
                repo_id=options.repo_id,
                repo_type=options.repo_type,
            ),
            hashing.resume,
        )
    identities = _identities(root, hasher.name, chunk_size, state, hashing, update)
    try:
        manifest = _hash_and_describe(
            listing, root, hasher, chunk_size, patterns, zarr_store, identities or state, walk, hashing
        )
        if identities is not None:
            identities.check_unchanged()
    except BaseException:  # refused, failed or interrupted: what was finished stays for a resume
        if identities is not None:
            identities.keep()
        if state is not None:
            state.keep()
        raise
    if identities is not None:
        identities.save()
        if hashing.progress is not None:
            hashing.progress.updated_files = identities.reused_files
            hashing.progress.updated_bytes = identities.reused_bytes
    return manifest, state


def _identities(
    root: str, algorithm: str, chunk_size: int, state: Checkpoint | None, hashing: HashOptions, old: Manifest | None
) -> Identities | None:
    """The identity records of a local tree hashed here (merkle.hashing.identities):
    read for `update`, written by every such build."""
    if old is not None and hashing.resume:
        raise UsageError(f"{option('update')} and {option('resume')} do not go together", root)
    if hashing.cluster is not None or is_url(root):
        if old is not None:
            raise UsageError(f"{option('update')} applies to a local tree hashed on this machine", root)
        return None
    if old is not None and (old.algorithm != algorithm or old.chunk_size != chunk_size):
        raise UsageError(
            f"{option('update')}: OLD was built with {old.algorithm} and {old.chunk_size}-byte chunks, this build "
            f"uses {algorithm} and {chunk_size}-byte chunks (pass {option('algorithm')} and {option('chunk_size')})",
            root,
        )
    roots = {f.path: f.root for f in old.files} if old is not None else None
    return Identities.open_for(root, algorithm, chunk_size, roots, state)


def _hash_and_describe(
    listing: Listing,
    root: str,
    hasher: TreeHasher,
    chunk_size: int,
    patterns: tuple[str, ...],
    zarr_store: bool,
    state: Checkpoint | None,
    walk: WalkOptions,
    hashing: HashOptions,
) -> Manifest:
    jobs, progress = hashing.jobs, hashing.progress
    if listing.stream is not None:
        digests = hash_stream_resumable(
            _until_problem(listing), hasher, chunk_size, state, jobs, progress, walk.follow_symlinks
        )
        _check_listing(listing, root)
    else:
        _check_listing(listing, root)
        if hashing.cluster is not None:
            digests = hashing.cluster.hash_files(listing.files, hasher.name, chunk_size, listing.access)
        else:
            digests = hash_resumable(
                listing.files, hasher, chunk_size, state, jobs or listing.jobs, progress, listing.access.opener()
            )
    for d in digests:
        if d.error is not None:
            raise SourceError(d.error.message, root.rstrip("/") + "/" + d.path) from d.error
    found = listing.found
    hub = found.identities(jobs, progress) if found is not None and found.identities is not None else {}
    if hub or native is None:
        entries = [FileEntry(d.path, d.size, d.root, hub.get(d.path) if hub else None) for d in digests]
    else:  # a million small files: made in C, checked by Manifest.create as any entries
        entries = native.entries_from(FileEntry, digests)
    layers = LeafLayers({d.path: d.leaves for d in digests if len(d.leaves) > len(d.root)})
    origin = found.origin if found is not None else None
    zarr = _zarr_layout(listing, digests, hasher, chunk_size, root) if zarr_store else None
    manifest = Manifest.create(entries, hasher.name, chunk_size, patterns, layers, origin, zarr)
    return manifest.with_metadata(listing.metadata) if listing.metadata else manifest


def _check_listing(listing: Listing, root: str) -> None:
    """The listing's first problem, or two paths that differ only in case, as
    a SourceError."""
    if listing.problems:
        first = listing.problems[0]
        more = len(listing.problems) - 1
        tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        raise SourceError(first.reason + tail, root.rstrip("/") + "/" + first.path)
    clash = case_collision(f.path for f in listing.files)
    if clash:
        raise SourceError(f"{clash[0]!r} and {clash[1]!r} differ only in case", root)


def _until_problem(listing: Listing) -> Iterator[list[WalkedFile]]:
    """The walk's directories for hashing, until it meets a problem: the build
    will fail, so the rest is walked (every problem is counted) but not hashed."""
    assert listing.stream is not None
    for files in listing.stream:
        if not listing.problems:
            yield files


def _zarr_root(listing: Listing, root: str) -> bool:
    """Whether the source is a zarr store (rule Z1), known before hashing:
    a streamed local walk has not listed the root yet, so look."""
    if listing.stream is not None:
        local = root.removeprefix("file://")
        return any(os.path.isfile(os.path.join(local, name)) for name in ROOT_DOCS)
    return is_zarr_root([f.path for f in listing.files if "/" not in f.path])


def _zarr_layout(
    listing: Listing, digests: Sequence[FileDigest], hasher: TreeHasher, chunk_size: int, root: str
) -> ZarrLayout | None:
    """The store's layout from its metadata documents, each read again and
    checked against the digest just computed for it (a document changed in
    between fails the build)."""
    by_path = {f.path: f for f in listing.files}
    roots = {d.path: d.root for d in digests}
    opener = listing.access.opener()

    def read(key: str) -> bytes:
        src = by_path[key]
        if src.size > MAX_DOC_BYTES:
            raise FormatError(f"metadata document larger than {MAX_DOC_BYTES} bytes", key)
        data = bytearray(src.size)
        with opener(src) as reader:
            got = reader.read_into(0, memoryview(data)) if data else 0
            reader.check_end()
        if got != len(data) or rfc6962.content_root(hasher, data, chunk_size) != roots[key]:
            raise SourceError("changed while the store was built", root.rstrip("/") + "/" + key)
        return bytes(data)

    try:
        return describe(sorted(by_path), read)
    except FormatError as e:
        raise FormatError(f"not a zarr store: {e.message}", root.rstrip("/") + "/" + (e.path or "")) from e
