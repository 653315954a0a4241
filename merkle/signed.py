"""Verifying a directory against signed bundles: signatures -> statement ->
policy (expiry, rollback) -> content -> Report.

Nothing in a bundle is used before its signature checked out: not the
manifest, not the subject, not the sidecar of leaf hashes.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from . import oms
from .attest import Verified, open_bundles
from .engine import Progress
from .envelope import Bundle
from .errors import BundleError, FormatError, UsageError
from .manifest import MANIFEST_SUFFIX, SIDECAR_SUFFIX, Manifest, Summary
from .report import Report
from .signing import TrustPolicy
from .store import Store
from .verify import verify

if TYPE_CHECKING:
    from .hf.layout import Layout


def open_trusted(
    bundles: Sequence[tuple[Bundle, bytes, str]],
    policy: TrustPolicy,
    store: Store | None = None,
    now: datetime.datetime | None = None,
) -> Verified:
    """Signatures, statement and policy (expiry, and rollback when a store
    is given); the bundles are remembered in the store.  For a merkle
    statement, `Verified.manifest` carries the sidecar's leaf layers when the
    sidecar beside the first bundle authenticates against the signed roots."""
    verified = open_bundles([(b, src) for b, _, src in bundles], policy, now)
    first_source = bundles[0][2]
    if store is not None:
        store.check_version(verified, first_source)
        for _, data, _ in bundles:
            store.add(data, verified)
    manifest = verified.manifest
    if manifest is None and verified.summary is not None:
        manifest = _beside(verified.summary, first_source + MANIFEST_SUFFIX)
    if manifest is not None:
        layered = manifest.with_sidecar(first_source + SIDECAR_SUFFIX).with_metadata_from(first_source)
        verified = dataclasses.replace(verified, manifest=layered)
    return verified


def _beside(summary: Summary, path: str) -> Manifest | None:
    """The manifest kept beside a compact bundle, if any: accepted only when
    it is exactly the one the signed summary describes."""
    if not os.path.exists(path):
        return None
    try:
        manifest = Manifest.load(path, layers=False)
    except FormatError as e:
        raise BundleError(f"manifest beside the bundle is unusable: {e.message}", path) from e
    if manifest.summary != summary:
        raise BundleError("manifest beside the bundle is not the one the signed summary describes", path)
    return manifest.without_hub()  # the summary does not vouch for per-file Hub identities


def verify_signed(
    path: str | os.PathLike[str],
    bundles: Sequence[tuple[Bundle, bytes, str]],
    policy: TrustPolicy,
    *,
    store: Store | None = None,
    allow_extra: bool = False,
    exclude: Sequence[str] = (),
    follow_symlinks: bool = False,
    jobs: int | None = None,
    progress: Progress | None = None,
    now: datetime.datetime | None = None,
    sparse: bool = False,
    only: Sequence[str] | None = None,
    storage_options: dict[str, Any] | None = None,
    revision: str | None = None,
    layout: Layout | None = None,
) -> tuple[Verified, Report]:
    """Check signatures and policy, then the content under `path`.

    Raises SignatureError/BundleError/PolicyError (exit 1) before any byte of
    content is read when the bundles cannot be trusted."""
    verified = open_trusted(bundles, policy, store, now)
    if verified.summary is not None and verified.manifest is None:
        raise UsageError(
            f"a compact bundle needs its manifest ({bundles[0][2]}{MANIFEST_SUFFIX}) to check a tree; "
            "check single files with --proof")
    if verified.manifest is not None:
        report = verify(path, verified.manifest, allow_extra=allow_extra, exclude=exclude,
                        follow_symlinks=follow_symlinks, jobs=jobs, progress=progress, sparse=sparse, only=only,
                        storage_options=storage_options, revision=revision, layout=layout)
    else:
        assert verified.oms is not None
        if sparse or only is not None:
            raise UsageError("--sparse and --files need a merkle bundle; OpenSSF bundles are checked whole")
        report = oms.verify(path, verified.oms, jobs=jobs, progress=progress, layout=layout, revision=revision)
    return verified, report
