"""Building a manifest: walk -> hash -> file entries -> dataset root."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

from merkle.errors import FormatError, SourceError, UsageError, option
from merkle.format.leaves import LeafLayers
from merkle.format.manifest import DEFAULT_CHUNK_SIZE, DEFAULT_EXCLUDES, FileEntry, Manifest, check_chunk_size
from merkle.format.paths import case_collision
from merkle.format.zarr import MAX_DOC_BYTES, ROOT_DOCS, ZARR_CHUNK_SIZE, ZarrLayout, describe, is_zarr_root
from merkle.hashing.checkpoint import Checkpoint, hash_resumable, hash_stream_resumable, job
from merkle.hashing.cluster import Cluster
from merkle.hashing.engine import FileDigest
from merkle.report import Progress
from merkle.source.layouts import LayoutOptions
from merkle.source.listing import Listing, list_source
from merkle.source.walk import WalkedFile
from merkle.tree import rfc6962
from merkle.tree.hasher import DEFAULT_ALGORITHM, Algorithm, TreeHasher, tree_hasher


def exclusions(exclude: Sequence[str], default_excludes: bool) -> tuple[str, ...]:
    base = DEFAULT_EXCLUDES if default_excludes else ()
    return tuple(dict.fromkeys((*base, *exclude)))


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
) -> Manifest:
    """Hash every file under directory `path` (or every object under an
    fsspec URL such as s3://bucket/prefix) into a Manifest, with its leaf
    layers (and, for object stores, per-object metadata) attached for
    `Manifest.save` to write beside it.

    Raises SourceError, naming the file, if anything in the tree cannot be
    hashed faithfully: a refused symlink, a FIFO, an unreadable file, a file
    that changes while it is read.

    With `checkpoint`, finished objects are recorded as they complete in a
    checkpoint in the user's private directory (merkle.hashing.checkpoint), kept if
    the build fails and deleted once it succeeds.  With `resume` (which
    implies `checkpoint`), a build with the same source and parameters
    reuses the objects such a checkpoint holds whose identity is unchanged;
    `progress.resumed_files` and `resumed_bytes` count them.  Without
    `resume` no checkpoint is read.

    With `cluster` (merkle.dask.DaskCluster(client), or any
    merkle.hashing.cluster.Cluster), hashing runs there; the manifest is
    identical to a local build.

    A Hugging Face cache folder, snapshot or local_dir checkout is built as
    such (docs/hf.md): the manifest records the repository and revision
    (`revision` picks a cache snapshot; `repo_id` and `repo_type` name a
    local_dir's repository) and each file's Hub identity, recomputed from its content;
    a file whose content does not match it is an IntegrityError.  Such a
    checkout is recognised by its shape unless `layout` says how to read
    `path` ("plain", "hf-cache", "hf-local-dir"); what was found is recorded
    in the manifest (its origin, and a local_dir's `.cache/huggingface` in
    its exclusions), since a verifier never looks at the shape (docs/hf.md,
    HF10)."""
    manifest, state = build_resumable(
        path,
        algorithm=algorithm,
        chunk_size=chunk_size,
        exclude=exclude,
        default_excludes=default_excludes,
        follow_symlinks=follow_symlinks,
        jobs=jobs,
        progress=progress,
        storage_options=storage_options,
        checkpoint=checkpoint,
        resume=resume,
        cluster=cluster,
        revision=revision,
        repo_id=repo_id,
        repo_type=repo_type,
        layout=layout,
    )
    if state is not None:
        state.discard()
    return manifest


def build_resumable(
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
) -> tuple[Manifest, Checkpoint | None]:
    """`build`, with the checkpoint left open: the caller discards it once
    the manifest is safely written (or keeps it if that fails)."""
    if not isinstance(checkpoint, bool) or not isinstance(resume, bool):
        raise UsageError(
            "checkpoint and resume take True or False: checkpoints are kept in a private "
            "per-user directory ($MERKLE_CHECKPOINTS), never at a path given"
        )
    if resume and cluster is not None:
        raise UsageError("resume: a build on a cluster keeps no checkpoint")
    hasher = tree_hasher(algorithm)
    if chunk_size is not None:
        check_chunk_size(chunk_size)
    patterns = exclusions(exclude, default_excludes)
    reading = LayoutOptions(layout, revision, repo_id, repo_type)
    # A plain local tree is hashed while it is walked (engine.hash_stream);
    # its problems are then known only at the end, and checked before any
    # digest is used, in the same order as for a listing made up front.
    listing = list_source(path, patterns, follow_symlinks, storage_options, reading, stream=cluster is None)
    root = os.fspath(path)
    found = listing.found
    zarr_store = found is None and _zarr_root(listing, root)
    if chunk_size is None:  # small chunks in a zarr store: a range read of a shard reads little more than asked
        chunk_size = ZARR_CHUNK_SIZE if zarr_store else DEFAULT_CHUNK_SIZE
    if found is None and (revision or repo_id or repo_type):
        named = f"{option('revision')}, {option('repo_id')} and {option('repo_type')}"
        raise UsageError(f"{named} apply to Hugging Face checkouts", root)
    if found is not None and found.exclusions:
        # Recorded, so that any verifier (an older merkle, a plain copy) leaves the bookkeeping out too.
        patterns = (*patterns, *found.exclusions)
    if found is not None and repo_id and found.origin is None:
        raise UsageError(
            f"{option('repo_id')}: the checkout's revision is unknown (no download metadata or tree listing "
            f"names one), so no origin can be recorded; pass {option('revision')}",
            root,
        )
    state = None
    if (checkpoint or resume) and cluster is None:
        state = Checkpoint.open(
            job(
                "build",
                root,
                storage_options,
                algorithm=hasher.name,
                chunk_size=chunk_size,
                exclude=list(patterns),
                follow_symlinks=follow_symlinks,
                hf=found.kind if found is not None else None,  # the job's name for it, kept: checkpoints stay valid
                layout=layout,
                revision=revision,
                repo_id=repo_id,
                repo_type=repo_type,
            ),
            resume,
        )
    try:
        manifest = _hash_and_describe(
            listing,
            root,
            hasher,
            chunk_size,
            patterns,
            zarr_store,
            state,
            jobs,
            progress,
            follow_symlinks,
            algorithm,
            cluster,
        )
    except BaseException:  # refused, failed or interrupted: what was finished stays for a resume
        if state is not None:
            state.keep()
        raise
    return manifest, state


def _hash_and_describe(
    listing: Listing,
    root: str,
    hasher: TreeHasher,
    chunk_size: int,
    patterns: tuple[str, ...],
    zarr_store: bool,
    state: Checkpoint | None,
    jobs: int | None,
    progress: Progress | None,
    follow_symlinks: bool,
    algorithm: Algorithm,
    cluster: Cluster | None,
) -> Manifest:
    if listing.stream is not None:
        digests = hash_stream_resumable(
            _until_problem(listing), hasher, chunk_size, state, jobs, progress, follow_symlinks
        )
        _check_listing(listing, root)
    else:
        _check_listing(listing, root)
        if cluster is not None:
            digests = cluster.hash_files(listing.files, algorithm, chunk_size, listing.access)
        else:
            digests = hash_resumable(
                listing.files, hasher, chunk_size, state, jobs or listing.jobs, progress, listing.access.opener()
            )
    for d in digests:
        if d.error is not None:
            raise SourceError(d.error.message, root.rstrip("/") + "/" + d.path) from d.error
    found = listing.found
    hub = found.identities(jobs, progress) if found is not None and found.identities is not None else {}
    entries = [FileEntry(d.path, d.size, d.root, hub.get(d.path) if hub else None) for d in digests]
    layers = LeafLayers({d.path: d.leaves for d in digests if len(d.leaves) > len(d.root)})
    origin = found.origin if found is not None else None
    zarr = _zarr_layout(listing, digests, hasher, chunk_size, root) if zarr_store else None
    manifest = Manifest.create(entries, algorithm, chunk_size, patterns, layers, origin, zarr)
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
