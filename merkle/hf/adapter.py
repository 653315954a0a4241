"""The Hugging Face layouts ("hf-cache", "hf-local-dir") as the core reads
them: merkle.source.layouts names this module's PROVIDER in KNOWN_LAYOUTS.

A cache snapshot's files are read from the blobs their links name, a
local_dir's without `.cache/huggingface`; a build records the repository
and revision (the origin, M6), each file's Hub identity recomputed from its
content (M7) and, for a local_dir, its bookkeeping in the exclusions.
"""

from __future__ import annotations

import functools
import os

from merkle.format.origin import AnyOrigin
from merkle.source.layouts import Found, LayoutOptions
from merkle.source.walk import WalkProblem

_CACHE_PREFIXES = ("models--", "datasets--", "spaces--")


def _may_be_checkout(name: str) -> bool:
    """Whether `name` has a shape `open_checkout` recognises when no layout
    is asked for (a cache repo folder, one of its snapshots, a local_dir
    with .cache): a look costing a few system calls, so that building a plain
    folder never imports the layouts' code.  A superset of what is
    recognised: anything it passes is looked at again, fully."""
    real = os.path.realpath(name)
    parent = os.path.dirname(real)
    return (
        os.path.basename(real).startswith(_CACHE_PREFIXES)
        or os.path.basename(parent) == "snapshots"
        or os.path.lexists(os.path.join(name, ".cache"))
    )


class HuggingFace:
    """The LayoutProvider of Hugging Face checkouts."""

    def open(self, path: str, options: LayoutOptions) -> Found | None:
        if options.layout is None and not _may_be_checkout(os.fspath(path).removeprefix("file://")):
            return None
        from merkle.hf.check import hub_identities
        from merkle.hf.layout import HF_DIR, excluded, open_checkout

        checkout = open_checkout(path, options)
        if checkout is None:
            return None
        checkout = excluded(checkout, options.exclude)
        problems = checkout.problems + [
            WalkProblem(p, f"broken link: blobs/{b} does not exist") for p, b in checkout.broken.items()
        ]
        problems.sort(key=lambda p: p.path)
        cache = checkout.kind == "cache"
        return Found(
            "hf-cache" if cache else "hf-local-dir",
            checkout.kind,
            checkout.root,
            [f.walked for f in checkout.files],
            problems,
            checkout.origin,
            None if cache else (HF_DIR,),
            functools.partial(hub_identities, checkout),
        )

    def layout_for(self, path: str, origin: AnyOrigin | None, revision: str | None) -> str | None:
        from merkle.hf.layout import layout_for

        return layout_for(os.fspath(path), origin, revision)


PROVIDER = HuggingFace()
