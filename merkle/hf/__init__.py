"""Hugging Face checkouts: the cache, its snapshots and local_dir downloads.

    checkout on disk -> layout (links, blob names, trees/<commit>.json,
    download metadata) -> Hub identities (sha256 / git blob id) -> Report

`verify_checkout` checks every present file offline against the Hub's own
identities; `merkle.build` on a checkout records the repository, revision
and those identities in the manifest; `readme_license` applies a license
policy to a README.md whose bytes were verified first.  docs/hf.md has the
rules.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from merkle.hf.check import HubReport, verify_checkout
    from merkle.hf.layout import Checkout, open_checkout
    from merkle.hf.license import check_license, parse_allowed
    from merkle.hf.readme import hub_readme_license, open_snapshot_file, readme_license, verified_readme

_EXPORTS = {
    "Checkout": "merkle.hf.layout",
    "HubReport": "merkle.hf.check",
    "check_license": "merkle.hf.license",
    "open_checkout": "merkle.hf.layout",
    "parse_allowed": "merkle.hf.license",
    "readme_license": "merkle.hf.readme",
    "verified_readme": "merkle.hf.readme",
    "hub_readme_license": "merkle.hf.readme",
    "open_snapshot_file": "merkle.hf.readme",
    "verify_checkout": "merkle.hf.check",
}
"""Each name of the package's face -> the module that defines it, imported
on first use: the core's layout registry imports merkle.hf.adapter, and a
build of a plain folder must not pay for the rest (PEP 562)."""
__all__ = [
    "Checkout",
    "HubReport",
    "check_license",
    "hub_readme_license",
    "open_checkout",
    "open_snapshot_file",
    "parse_allowed",
    "readme_license",
    "verified_readme",
    "verify_checkout",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'merkle.hf' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
