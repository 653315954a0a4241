"""How a local directory is read: its plain tree, or a layout an
integration knows (a Hugging Face cache folder's snapshot; a local_dir
without its download bookkeeping).

Layouts are found by name in KNOWN_LAYOUTS, as fsspec finds file systems in
`known_implementations`: the provider of a layout is named as
"module:attribute" and imported the first time it is needed, so the core
imports no integration, and an integration adds a layout with one line here.
A provider implements `LayoutProvider`: it opens a path as one of its
layouts (or recognises one by its shape, for `merkle build`, which records
what it found), says which of its layouts a verifier reads a path with
under a signed origin (docs/hf.md, HF10), and may record per-file
identities in a build (M7).

Which layout a verifier reads is decided by `choose_layout`, from the
signed statement and the caller, never from what the tree holds.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Protocol

from merkle.errors import FormatError, UsageError, option
from merkle.source.remote import is_url

if TYPE_CHECKING:
    from merkle.format.hub import HubId
    from merkle.format.origin import AnyOrigin
    from merkle.report import Progress
    from merkle.source.walk import WalkedFile, WalkProblem

PLAIN: Final = "plain"
KNOWN_LAYOUTS: Final[Mapping[str, str]] = {
    "hf-cache": "merkle.hf.adapter:PROVIDER",
    "hf-local-dir": "merkle.hf.adapter:PROVIDER",
    "git": "merkle.git.adapter:PROVIDER",
}
"""Layout name -> "module:attribute" of its LayoutProvider, in the order
`open_layout` asks them to recognise a path."""
LAYOUTS: Final = (PLAIN, *KNOWN_LAYOUTS)


@dataclass(frozen=True)
class LayoutOptions:
    """How to read a local directory.  `layout` None recognises a layout by
    what the folder holds (only a build, which records what it found, and an
    integration's own check may ask for that); "plain" is the tree itself;
    any other name is that layout, required.  `revision` picks a version of
    the source (a cache snapshot); `repo_id` and `repo_type` name the
    repository a build records when the layout does not (docs/hf.md, M6);
    `bookkeeping` reads what the layout keeps about its files (listings,
    download metadata), needed to build or to check a checkout against its
    own claims, not against a manifest.  `exclude` and `follow_symlinks` are
    the walk's."""

    layout: str | None = None
    revision: str | None = None
    repo_id: str | None = None
    repo_type: str | None = None
    bookkeeping: bool = True
    follow_symlinks: bool = False
    exclude: tuple[str, ...] = (".git",)


@dataclass
class Found:
    """What a layout found at a path: the files to read, each opened where
    the layout says (below its base, never through a link), the problems
    met, and what a build records of it."""

    layout: str
    """The layout's name (a key of KNOWN_LAYOUTS)."""
    kind: str
    """What was found, in the provider's words (a build's checkpoint records it)."""
    root: str
    """The folder the files' paths are relative to (a cache snapshot), for messages."""
    files: list[WalkedFile]
    problems: list[WalkProblem]
    origin: AnyOrigin | None = None
    """The repository and revision a build records (M6), when known."""
    exclusions: tuple[str, ...] | None = ()
    """What a plain reading of the same path must leave out to read the same
    files (a local_dir's bookkeeping), recorded with a build so that every
    verifier leaves it out too; None when no exclusion can say it (a cache
    snapshot's files are elsewhere)."""
    identities: Callable[[int | None, Progress | None], Mapping[str, HubId]] | None = field(default=None, repr=False)
    """Per-file identities a build records (M7), recomputed from content and
    required to equal what the layout claims: `identities(jobs, progress)`."""


class LayoutProvider(Protocol):
    """An integration's layouts (KNOWN_LAYOUTS)."""

    def open(self, path: str, options: LayoutOptions) -> Found | None:
        """`path` (a local directory) read as `options.layout`, one of this
        provider's layouts (UsageError when `path` does not have it), or, with
        `options.layout` None, as the layout of this provider its shape shows;
        None when it shows none.  `options.exclude` is applied."""
        ...

    def layout_for(self, path: str, origin: AnyOrigin | None, revision: str | None) -> str | None:
        """The layout of this provider a verifier reads `path` with when the
        signed statement records `origin` and the caller gives `revision`,
        decided by names the user chose, never by what the tree holds; None
        when neither asks for one of this provider's layouts (and so always
        when both are None: `choose_layout` then asks no provider)."""
        ...


def provider(layout: str) -> LayoutProvider:
    """The provider of a layout in KNOWN_LAYOUTS, imported on first use."""
    target = KNOWN_LAYOUTS.get(layout)
    if target is None:
        raise UsageError(f"layout {layout!r} is not one of {', '.join(LAYOUTS)}")
    module, _, attribute = target.partition(":")
    found: LayoutProvider = getattr(importlib.import_module(module), attribute)
    return found


def _providers() -> Iterator[LayoutProvider]:
    seen: set[str] = set()
    for layout, target in KNOWN_LAYOUTS.items():
        if target not in seen:
            seen.add(target)
            yield provider(layout)


def check_layout(layout: str | None) -> str | None:
    if layout is not None and layout not in LAYOUTS:
        raise UsageError(f"layout {layout!r} is not one of {', '.join(LAYOUTS)}")
    return layout


def choose_layout(
    path: str | os.PathLike[str], origin: AnyOrigin | None, layout: str | None = None, revision: str | None = None
) -> str:
    """How a verifier reads `path` (docs/hf.md, HF10), decided by the signed
    statement and the caller, never by what the tree holds: an explicit
    `layout`; else, for an object store under an origin, its objects; else
    the layout a provider names for `origin` and `revision` (for a Hugging
    Face origin, the cache when `path` is named as that repository's cache
    folder or one of its snapshots, a local_dir otherwise; `revision` alone
    asks for a cache snapshot); else the plain tree."""
    if layout is not None:
        return check_layout(layout) or PLAIN
    if origin is not None and is_url(os.fspath(path)):
        return PLAIN  # an object store holds the files alone
    if origin is None and revision is None:
        return PLAIN  # nothing asks for a layout: no provider is imported (a plain manifest's verify)
    for p in _providers():
        chosen = p.layout_for(os.fspath(path), origin, revision)
        if chosen is not None:
            return chosen
    return PLAIN


def check_repo(repo_id: str) -> str:
    """`repo_id`, or UsageError when it is not a Hub repository id."""
    from merkle.format.origin import check_repo_id

    try:
        return check_repo_id(repo_id)
    except FormatError as e:
        raise UsageError(f"{option('repo_id')}: {e.message}") from e


def open_layout(path: str, options: LayoutOptions) -> Found | None:
    """`path` read as `options.layout` says (see LayoutOptions), or None
    when it is to be read as a plain tree (a layout "plain", a path that is
    not a directory, or, recognising, a folder no provider knows)."""
    layout = check_layout(options.layout)
    if layout == PLAIN or not os.path.isdir(path):
        return None
    if options.repo_id is not None:
        check_repo(options.repo_id)
    if layout is not None:
        return provider(layout).open(path, options)
    for p in _providers():
        found = p.open(path, options)
        if found is not None:
            return found
    return None
