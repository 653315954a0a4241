"""One door for every source: a local directory or an fsspec URL becomes a
sorted list of objects, the problems met on the way, and the opener that
reads them."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from merkle.errors import UsageError
from merkle.source.readers import Listed, Opener, local_opener
from merkle.source.walk import WalkedFile, WalkProblem, walk, walk_stream

if TYPE_CHECKING:
    from merkle.hf.layout import Checkout, HfOptions

REMOTE_JOBS = 16  # network reads wait, they do not compute: more workers than cores


@dataclass
class Listing:
    files: Sequence[Listed]
    problems: list[WalkProblem]
    opener: Opener
    jobs: int | None = None
    metadata: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per-object store metadata (size, ETag, VersionId) for --fast audits."""
    fs_spec: tuple[str, dict[str, Any]] | None = None
    """(protocol, storage options) to rebuild the file system elsewhere (Dask)."""
    hf: Checkout | None = None
    """Set when the source is a Hugging Face cache snapshot or local_dir."""
    stream: Iterator[list[WalkedFile]] | None = None
    """With `list_source(..., stream=True)` on a plain local directory: the
    walk, one directory at a time; `files` and `problems` are complete only
    once it is exhausted (engine.hash_stream hashes as it goes)."""


def list_source(
    path: str | os.PathLike[str],
    exclude: Sequence[str],
    follow_symlinks: bool = False,
    storage_options: dict[str, Any] | None = None,
    hf: HfOptions | None = None,
    stream: bool = False,
) -> Listing:
    """List `path`, leaving out what `exclude` covers.  How a local
    directory is read is `hf.layout` (see merkle.hf.layout: a cache
    snapshot's files are opened in blobs/, a local_dir's .cache/huggingface
    is not part of the tree; "plain" is neither); its default, None,
    recognises a checkout by its shape, which only `merkle build` (that
    records what it found) and `merkle hf verify` may do."""
    from merkle.source.remote import is_url

    name = os.fspath(path)
    if is_url(name):
        from merkle.source.remote import list_objects, remote_opener

        if hf is not None and hf.layout not in (None, "plain"):
            raise UsageError("--layout applies to local directories", name)

        fs, objects, problems = list_objects(name, exclude, storage_options)
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        return Listing(
            objects,
            problems,
            remote_opener(fs),
            REMOTE_JOBS,
            {o.path: o.metadata() for o in objects},
            (protocol, dict(storage_options or {})),
        )
    local = name.removeprefix("file://")
    from merkle.hf.layout import HfOptions, excluded, open_checkout

    options = dataclasses.replace(hf or HfOptions(), follow_symlinks=follow_symlinks, exclude=tuple(exclude))
    checkout = open_checkout(local, options)
    if checkout is not None:  # snapshot files are links into blobs/: opened there, confined to it
        checkout = excluded(checkout, tuple(exclude))
        problems = checkout.problems + [
            WalkProblem(p, f"broken link: blobs/{b} does not exist") for p, b in checkout.broken.items()
        ]
        problems.sort(key=lambda p: p.path)
        return Listing([f.walked for f in checkout.files], problems, local_opener(False), hf=checkout)
    if stream:
        result, directories = walk_stream(local, exclude, follow_symlinks)
        return Listing(result.files, result.problems, local_opener(follow_symlinks), stream=directories)
    listing = walk(local, exclude, follow_symlinks)
    return Listing(listing.files, listing.problems, local_opener(follow_symlinks))
