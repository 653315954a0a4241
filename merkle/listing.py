"""One door for every source: a local directory or an fsspec URL becomes a
sorted list of objects, the problems met on the way, and the opener that
reads them."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .engine import Listed, Opener, local_opener
from .walk import WalkProblem, walk

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


def list_source(
    path: str | os.PathLike[str],
    exclude: Sequence[str],
    follow_symlinks: bool = False,
    storage_options: dict[str, Any] | None = None,
) -> Listing:
    from .sources.remote import is_url

    name = os.fspath(path)
    if is_url(name):
        from .sources.remote import list_objects, remote_opener

        fs, objects, problems = list_objects(name, exclude, storage_options)
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        return Listing(objects, problems, remote_opener(fs), REMOTE_JOBS, {o.path: o.metadata() for o in objects},
                       (protocol, dict(storage_options or {})))
    listing = walk(name.removeprefix("file://"), exclude, follow_symlinks)
    return Listing(listing.files, listing.problems, local_opener(follow_symlinks))
