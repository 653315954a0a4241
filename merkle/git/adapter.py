"""The "git" layout as the core reads it: merkle.source.layouts names this
module's PROVIDER in KNOWN_LAYOUTS (docs/hf.md, G1-G3).

A git work tree's files are its plain tree without `.git` (a submodule's
files are built as plain files: this commit does not vouch for them, so they
make the tree dirty).  What a build
records is where they come from: the commit, the remote's URL without
credentials and whether the files differ from the commit, which is known
only once every file's git identity was recomputed from its content (a
second read, as for the Hugging Face layouts' M7 identities; `--layout
plain` reads the tree without it).  A clean clone of a Hub repository (its
remote a Hub URL, or `--repo-id`) records the Hub origin and identities, as
a local_dir of the same commit does, when the commit is a tip of the
remote's branches as last fetched (not a local commit); any other clone a
git origin.  A
verifier reads a git origin's tree plain: the git layout is chosen only by a
build that recognises the folder, or by `--layout git`.
"""

from __future__ import annotations

import os

from merkle.errors import SourceError, UsageError
from merkle.format.hub import HubId
from merkle.format.origin import AnyOrigin, GitOrigin, Origin
from merkle.report import Progress
from merkle.source.layouts import Found, LayoutOptions
from merkle.source.walk import Excluder


class Git:
    """The LayoutProvider of git work trees."""

    def open(self, path: str, options: LayoutOptions) -> Found | None:
        name = os.fspath(path).removeprefix("file://")
        if options.layout is None and not os.path.lexists(os.path.join(name, ".git")):
            return None  # no git here (git_dir_of would say so): the git code is not even imported
        from merkle.git.repo import git_dir_of
        from merkle.hf.check import clone_identities
        from merkle.hf.layout import COMMIT, SUBMODULE, excluded, open_clone

        try:
            git_dir = git_dir_of(name)
        except SourceError:
            if options.layout is None and options.revision is None:
                return None  # a linked worktree or a submodule's checkout: read as the plain tree it is
            raise
        if git_dir is None:
            if options.layout == "git":
                raise UsageError("not a git work tree (no .git folder)", name)
            return None
        try:
            checkout = excluded(open_clone(name, options), options.exclude)
        except (SourceError, UsageError):
            if options.layout is None and options.revision is None:
                return None  # no git here, or a repository git cannot read: the plain tree, no origin claimed
            raise
        skip = Excluder(options.exclude)
        if checkout.tree is not None:
            checkout.tree = {p: e for p, e in checkout.tree.items() if not skip.covers(p)}
        # A submodule's files, when checked out, are built as the plain files they are; this commit does not
        # vouch for them, so they make the tree dirty.
        checkout.problems = [p for p in checkout.problems if not p.reason.startswith(SUBMODULE)]
        assert checkout.revision is not None
        commit = checkout.revision

        def origin(dirty: bool) -> AnyOrigin:
            if checkout.repo is not None and checkout.on_remote and not dirty and COMMIT.fullmatch(commit):
                return Origin(commit, checkout.repo, checkout.repo_type)
            return GitOrigin(commit, checkout.remote_url, dirty)

        # The origin as if the tree were clean, until the identities say whether it is: the build reads
        # it after them.
        found = Found("git", "git clone", checkout.root, [f.walked for f in checkout.files], checkout.problems,
                      origin(False), ())  # fmt: skip

        def identities(jobs: int | None, progress: Progress | None) -> dict[str, HubId]:
            ids, dirty = clone_identities(checkout, jobs, progress)
            found.origin = origin(dirty)
            return ids if isinstance(found.origin, Origin) else {}

        found.identities = identities
        return found

    def layout_for(self, path: str, origin: AnyOrigin | None, revision: str | None) -> str | None:
        return None  # a git origin's files are the plain tree (`.git` is left out of every walk)


PROVIDER = Git()
