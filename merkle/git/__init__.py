"""git work trees (docs/hf.md, "A git clone"): a commit's files, read from
the repository's own objects and checked by their ids from the commit down.

An integration, like merkle.hf: the core never imports it.  Everything in
`.git` is untrusted input, written by whoever can write the clone: git is
run with no system, global or user configuration, no hooks, pager, prompt
or network, and reads only objects, never the index or the work tree (which
is where clean filters and fsmonitor would run).  Each object read is hashed
here against its id, so a tree or a pointer blob that was swapped on disk is
found; trust still starts at the commit, which is HEAD (what the clone says
it is) unless the caller pins one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from merkle.git.repo import GitEntry, GitRepo, hub_repo_of_url, open_repo, public_url

__all__ = ["GitEntry", "GitRepo", "hub_repo_of_url", "open_repo", "public_url"]


def __getattr__(name: str) -> Any:
    """The names of merkle.git.repo, imported on first use: the core's layout
    registry imports merkle.git.adapter, and a build of a folder without
    .git must not pay for the rest (PEP 562)."""
    if name not in __all__:
        raise AttributeError(f"module 'merkle.git' has no attribute {name!r}")
    from merkle.git import repo

    return getattr(repo, name)
