"""Verifying a directory against a manifest: parse -> walk -> rehash -> Report."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from merkle._gc import paused
from merkle.errors import UsageError, option
from merkle.format.hub import MAX_POINTER_SIZE, SHA256, parse_lfs_pointer
from merkle.format.manifest import FileEntry, Manifest
from merkle.hashing.checkpoint import Checkpoint, Job, hash_resumable, job
from merkle.hashing.cluster import Cluster
from merkle.hashing.engine import FileDigest
from merkle.hashing.options import HashOptions
from merkle.report import Outcome, Progress, Report, Status
from merkle.source.layouts import LayoutOptions, choose_layout
from merkle.source.listing import Listing, WalkOptions, list_source
from merkle.source.readers import Listed
from merkle.source.remote import is_url
from merkle.source.walk import Excluder, WalkedFile, blocked_by
from merkle.tree.hasher import DIGEST_SIZE


@dataclass(frozen=True)
class CheckOptions:
    """How a verdict is reached.  Closed world: files the manifest does not
    list are EXTRA and fail, unless `allow_extra`; `exclude` hides extras
    (patterns, as a manifest's; a listed file is always checked);
    `sparse`: listed files absent on disk are ABSENT, not a failure (a
    partial checkout); `only`: check just these listed paths (nothing else
    is reported, and a name the manifest does not list is an error)."""

    allow_extra: bool = False
    exclude: tuple[str, ...] = ()
    sparse: bool = False
    only: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "exclude", tuple(self.exclude))
        if self.only is not None:
            object.__setattr__(self, "only", tuple(self.only))


def verify(
    path: str | os.PathLike[str],
    manifest: Manifest | str | os.PathLike[str],
    *,
    allow_extra: bool = False,
    exclude: Sequence[str] = (),
    follow_symlinks: bool = False,
    jobs: int | None = None,
    progress: Progress | None = None,
    sparse: bool = False,
    only: Sequence[str] | None = None,
    storage_options: dict[str, Any] | None = None,
    checkpoint: bool = False,
    resume: bool = False,
    cluster: Cluster | None = None,
    revision: str | None = None,
    layout: str | None = None,
) -> Report:
    """Check every file under `path` against `manifest` (a Manifest or the
    path of a manifest file).  The keywords are those of CheckOptions (how
    the verdict is reached), WalkOptions (how `path` is read) and
    HashOptions (how hashing runs); `verify_with` takes the three objects."""
    hashing = HashOptions(jobs, progress, checkpoint, resume, cluster)
    check = CheckOptions(allow_extra, tuple(exclude), sparse, None if only is None else tuple(only))
    return verify_with(path, manifest, check, WalkOptions(follow_symlinks, storage_options, layout, revision), hashing)


@paused()
def verify_with(
    path: str | os.PathLike[str],
    manifest: Manifest | str | os.PathLike[str],
    check: CheckOptions = CheckOptions(),
    walk: WalkOptions = WalkOptions(),
    hashing: HashOptions = HashOptions(),
    *,
    head: int = 0,
) -> Report:
    """Check every file under `path` against `manifest` (a Manifest or the
    path of a manifest file), as `check` says.  `head`: keep each file
    that verified's first bytes, up to this many, as they were hashed
    (Report.heads: what a policy reads of them, docs/policy.md P6).  Never raises for a bad file;
    it is reported.  Raises FormatError for a bad manifest, SourceError when
    `path` itself cannot be read.

    A git-lfs pointer file standing in for a listed file (a clone made
    without git-lfs, a failed smudge) is not downloaded, not corrupt: ABSENT
    with `sparse`, MISSING otherwise.

    How `path` is read comes from the manifest and the caller, never from
    what the tree holds (docs/hf.md, HF10): `walk.layout` ("plain",
    "hf-cache", "hf-local-dir"), else a recorded Hugging Face origin (its
    cache folder or a snapshot, by name, as the cache; anything else as a
    local_dir, without .cache/huggingface), else a plain tree.
    `walk.revision` picks the snapshot of a Hugging Face cache folder
    (alone, it asks for one).

    A checkpoint (`hashing.checkpoint`, `resume`) records the files hashed,
    as for a build; it is deleted once every file is hashed."""
    started = time.perf_counter()
    started_ns = time.time_ns()
    if not isinstance(manifest, Manifest):
        manifest = Manifest.load(manifest)
    chosen = choose_layout(path, manifest.origin, walk.layout, walk.revision)
    reading = LayoutOptions(chosen, walk.revision, bookkeeping=False)
    listing = list_source(path, manifest.exclude, walk, reading, only=check.only)
    if listing.found is None and walk.revision:
        raise UsageError(f"{option('revision')} applies to Hugging Face cache folders", os.fspath(path))
    outcomes, to_hash = _compare(manifest, listing, check)
    digests = _hash(path, manifest, listing, [w for _, w in to_hash], walk, hashing, head)
    hashed = 0
    heads: dict[str, bytes] = {}
    for (entry, _), digest in zip(to_hash, digests, strict=True):
        if digest.error is not None:
            outcomes.append(Outcome(entry.path, Status.ERROR, digest.error.message))
            continue
        hashed += entry.size
        if digest.root == entry.root:
            outcomes.append(Outcome(entry.path, Status.OK))
            if digest.head is not None:
                heads[entry.path] = digest.head
        else:
            outcomes.append(Outcome(entry.path, Status.MISMATCH, _diff_detail(manifest, entry, digest.leaves)))
    outcomes.sort(key=lambda o: o.path)
    report = Report(
        manifest.root,
        manifest.algorithm,
        tuple(outcomes),
        check.allow_extra,
        hashed,
        time.perf_counter() - started,
        heads=heads,
    )
    if report and check.only is None and hashing.cluster is None and not is_url(os.fspath(path)):
        from merkle.hashing.identities import remember  # written, never read, by a verify

        files = [w for _, w in to_hash]
        remember(os.fspath(path), manifest.algorithm, manifest.chunk_size, started_ns, zip(files, digests, strict=True))
    return report


def _compare(
    manifest: Manifest, listing: Listing, check: CheckOptions
) -> tuple[list[Outcome], list[tuple[FileEntry, Listed]]]:
    """The outcomes decided without reading content, and the listed files
    whose content is to be hashed, with their entries."""
    ignored = Excluder(check.exclude)  # the caller's exclusions only hide extras
    present = {f.path: f for f in listing.files}
    unreadable = tuple(p.path + "/" for p in listing.problems if p.unreadable_dir)
    outcomes: list[Outcome] = []
    to_hash: list[tuple[FileEntry, Listed]] = []

    problems = every_problem = {p.path: p for p in listing.problems}
    entries: Sequence[FileEntry] = manifest.files
    if check.only is not None:
        wanted = dict.fromkeys(check.only)
        entries = [e for e in manifest.files if e.path in wanted]
        listed = {e.path for e in entries}
        outcomes += [Outcome(p, Status.ERROR, "not listed in the manifest") for p in wanted if p not in listed]
        present = {p: f for p, f in present.items() if p in listed}
        problems = {p: v for p, v in problems.items() if p in listed}
    for entry in entries:
        found = present.pop(entry.path, None)
        if found is None:
            problem = problems.pop(entry.path, None)
            parent = blocked_by(entry.path, every_problem) if problem is None else None
            if parent is not None:  # behind a refused link or a special file: unknown, never absent
                outcomes.append(Outcome(entry.path, Status.ERROR, f"{parent.path}: {parent.reason}"))
            elif problem is None and entry.path.startswith(unreadable):
                outcomes.append(Outcome(entry.path, Status.ERROR, "inside a directory that cannot be listed"))
            elif problem is None:
                outcomes.append(Outcome(entry.path, Status.ABSENT if check.sparse else Status.MISSING))
            else:
                outcomes.append(Outcome(entry.path, Status.ERROR, problem.reason))
        elif found.size != entry.size:
            outcomes.append(
                _pointer_outcome(found, entry, check.sparse)
                or Outcome(entry.path, Status.MISMATCH, f"size {found.size}, expected {entry.size}")
            )
        else:
            to_hash.append((entry, found))
    for extra in present.values():
        if not ignored.covers(extra.path):
            outcomes.append(Outcome(extra.path, Status.EXTRA))
    for problem in problems.values():
        if ignored.covers(problem.path) and not problem.unmapped:
            continue
        # Something unhashable that the manifest does not list is extra, and
        # shown and counted even when extras are allowed; an unreadable
        # directory may hide listed files, and a name or key that names no
        # canonical path can match no entry, so both are errors.
        if problem.unreadable_dir or problem.unmapped:
            outcomes.append(Outcome(problem.path, Status.ERROR, problem.reason))
        else:
            outcomes.append(Outcome(problem.path, Status.EXTRA, problem.reason))
    return outcomes, to_hash


def _hash(
    path: str | os.PathLike[str],
    manifest: Manifest,
    listing: Listing,
    files: Sequence[Listed],
    walk: WalkOptions,
    hashing: HashOptions,
    head: int = 0,
) -> list[FileDigest]:
    if hashing.cluster is not None:
        return hashing.cluster.hash_files(files, manifest.algorithm, manifest.chunk_size, listing.access)
    state = None
    if hashing.keeps_checkpoint:
        state = Checkpoint.open(checkpoint_job(path, manifest, walk), hashing.resume)
    try:
        digests = hash_resumable(
            files,
            manifest.hasher,
            manifest.chunk_size,
            state,
            hashing.jobs or listing.jobs,
            hashing.progress,
            listing.access.opener(),
            head,
        )
    except BaseException:  # interrupted: what was finished stays for a resume
        if state is not None:
            state.keep()
        raise
    if state is not None:
        state.discard()
    return digests


def checkpoint_job(path: str | os.PathLike[str], manifest: Manifest, walk: WalkOptions = WalkOptions()) -> Job:
    """What the checkpoint of `verify_with(path, manifest, ..., walk)` is
    valid for (merkle.hashing.checkpoint): how the files are read and
    hashed, never the manifest's roots."""
    return job(
        "verify",
        os.fspath(path),
        dict(walk.storage_options) if walk.storage_options is not None else None,
        algorithm=manifest.algorithm,
        chunk_size=manifest.chunk_size,
        exclude=list(manifest.exclude),
        follow_symlinks=walk.follow_symlinks,
        layout=choose_layout(path, manifest.origin, walk.layout, walk.revision),
        revision=walk.revision,
    )


def _pointer_outcome(found: Listed, entry: FileEntry, sparse: bool) -> Outcome | None:
    """For a local file whose size differs: a verdict when it is a git-lfs
    pointer (docs/hf.md, HF8).  A pointer to this entry's content (size
    field, and object id = the signed Hub identity) is not downloaded:
    ABSENT with `sparse`, else MISSING.  Without a Hub identity to check the
    object id against it is MISSING even when sparse; to other content,
    MISMATCH."""
    if not isinstance(found, WalkedFile) or found.size >= MAX_POINTER_SIZE:
        return None
    pointer = parse_lfs_pointer(found.head(MAX_POINTER_SIZE) or b"")
    if pointer is None:
        return None
    if pointer[1] != entry.size or (entry.hub is not None and entry.hub != (SHA256, pointer[0])):
        return Outcome(entry.path, Status.MISMATCH, "git-lfs pointer to other content")
    if entry.hub is None:
        return Outcome(
            entry.path,
            Status.MISSING,
            "git-lfs pointer: content not downloaded (its object id cannot "
            "be checked: the manifest records no Hub identity)",
        )
    return Outcome(entry.path, Status.ABSENT if sparse else Status.MISSING, "git-lfs pointer: content not downloaded")


def _diff_detail(manifest: Manifest, entry: FileEntry, leaves: bytes) -> str:
    """Which chunks differ, as byte ranges, when the leaf sidecar lets us say."""
    if manifest.layers is None:
        return "content differs"
    expected = manifest.layers.leaf_hashes(entry, manifest.chunk_size)
    got = [leaves[i : i + DIGEST_SIZE] for i in range(0, len(leaves), DIGEST_SIZE)]
    bad = [i for i, (a, b) in enumerate(zip(got, expected, strict=True)) if a != b]
    ranges: list[list[int]] = []
    for i in bad:
        if ranges and ranges[-1][1] == i:
            ranges[-1][1] = i + 1
        else:
            ranges.append([i, i + 1])
    cs = manifest.chunk_size
    shown = ", ".join(f"{a * cs}-{min(b * cs, entry.size)}" for a, b in ranges[:3])
    more = f" and {len(ranges) - 3} more ranges" if len(ranges) > 3 else ""
    return f"{len(bad)} of {len(expected)} chunks differ, bytes {shown}{more}"
