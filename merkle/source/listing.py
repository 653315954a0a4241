"""One door for every source: a local directory (its plain tree or a layout,
merkle.source.layouts) or an fsspec URL becomes a sorted list of objects,
the problems met on the way, and how to open them."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from merkle.errors import UsageError, option
from merkle.source.layouts import Found, LayoutOptions, open_layout
from merkle.source.readers import Opener, local_opener
from merkle.source.remote import RemoteObject, filesystem_of, is_url, list_objects, remote_opener
from merkle.source.walk import WalkedFile, WalkProblem, walk_named, walk_stream
from merkle.source.walk import walk as walk_tree

REMOTE_JOBS = 16  # network reads wait, they do not compute: more workers than cores


@dataclass(frozen=True)
class WalkOptions:
    """How a source is read, the same for building, verifying and auditing.
    `follow_symlinks`: links to files inside the tree are read as those
    files (never a link out of it; docs/cli.md); `storage_options`: the
    fsspec options of an object store URL; `layout` and `revision`: how a
    local directory is read (merkle.source.layouts: "plain", "hf-cache",
    "hf-local-dir"; a cache folder's snapshot).  What is left out of the
    walk is not here: a build records it, a verifier takes the signed
    exclusions."""

    follow_symlinks: bool = False
    storage_options: Mapping[str, Any] | None = None
    layout: str | None = None
    revision: str | None = None


@dataclass(frozen=True)
class Access:
    """How a listing's objects are opened, as data another process can take
    (a Dask worker rebuilds its readers from it): local files, or an fsspec
    file system by protocol and storage options.  `fs`, the file system
    already open in this process, never leaves it."""

    follow_symlinks: bool = False
    """For files named by the user; a walked file is opened down from its
    root, never through a link (merkle.source.walk)."""
    protocol: str | None = None
    """The fsspec protocol; None for the local file system."""
    storage_options: Mapping[str, Any] = field(default_factory=dict)
    fs: Any = field(default=None, compare=False, repr=False)

    def __reduce__(self) -> tuple[type[Access], tuple[bool, str | None, dict[str, Any]]]:
        return Access, (self.follow_symlinks, self.protocol, dict(self.storage_options))

    def opener(self) -> Opener:
        """The readers of the listing's objects: the one place the local or
        remote reader is chosen, for the engine here and on every Dask
        worker."""
        if self.protocol is None:
            return local_opener(self.follow_symlinks)
        fs = self.fs if self.fs is not None else filesystem_of(self.protocol, dict(self.storage_options))
        return remote_opener(fs)


@dataclass
class Listing:
    files: Sequence[WalkedFile | RemoteObject]
    problems: list[WalkProblem]
    access: Access
    jobs: int | None = None
    metadata: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per-object store metadata (size, ETag, VersionId) for --fast audits."""
    found: Found | None = None
    """Set when a layout read the path (merkle.source.layouts): a Hugging
    Face cache snapshot or local_dir."""
    stream: Iterator[list[WalkedFile]] | None = None
    """With `list_source(..., stream=True)` on a plain local directory: the
    walk, one directory at a time; `files` and `problems` are complete only
    once it is exhausted (engine.hash_stream hashes as it goes)."""
    pruned: list[str] | None = None
    """What `exclude` left out of a plain local directory's walk (each file
    or directory a pattern matched, walk.Walk.pruned); None where the
    source was not walked that way (object stores, layouts, `only`)."""


def list_source(
    path: str | os.PathLike[str],
    exclude: Sequence[str],
    walk: WalkOptions = WalkOptions(),
    layout: LayoutOptions | None = None,
    stream: bool = False,
    only: Sequence[str] | None = None,
) -> Listing:
    """List `path`, leaving out what `exclude` covers, as `walk` says.  How
    a local directory is read is `layout` (merkle.source.layouts: a cache
    snapshot's files are opened in blobs/, a local_dir's .cache/huggingface
    is not part of the tree; "plain" is neither; its follow_symlinks and
    exclude are `walk`'s and `exclude`); its default, None, recognises a
    layout by its shape, which only `merkle build` (that records what it
    found) and `merkle hf verify` may do.

    `only`: the caller wants these canonical paths and nothing else; a
    plain local directory then looks each one up (walk.walk_named) rather
    than listing the tree, so checking a few files of a million reads only
    what it names.  Other sources are listed whole."""
    name = os.fspath(path)
    follow_symlinks = walk.follow_symlinks
    if is_url(name):
        if layout is not None and layout.layout not in (None, "plain"):
            raise UsageError(f"{option('layout')} applies to local directories", name)
        storage_options = dict(walk.storage_options or {})
        fs, objects, problems = list_objects(name, exclude, storage_options)
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        return Listing(
            objects,
            problems,
            Access(protocol=protocol, storage_options=storage_options, fs=fs),
            REMOTE_JOBS,
            {o.path: o.metadata() for o in objects},
        )
    local = name.removeprefix("file://")
    options = dataclasses.replace(layout or LayoutOptions(), follow_symlinks=follow_symlinks, exclude=tuple(exclude))
    found = open_layout(local, options)
    if found is not None:  # e.g. snapshot files are links into blobs/: opened there, confined to it
        return Listing(found.files, found.problems, Access(), found=found)
    if only is not None:
        named = walk_named(local, only, exclude, follow_symlinks)
        return Listing(named.files, named.problems, Access(follow_symlinks))
    if stream:
        result, directories = walk_stream(local, exclude, follow_symlinks)
        return Listing(result.files, result.problems, Access(follow_symlinks), stream=directories, pruned=result.pruned)
    listing = walk_tree(local, exclude, follow_symlinks)
    return Listing(listing.files, listing.problems, Access(follow_symlinks), pruned=listing.pruned)
