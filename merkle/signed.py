"""Verifying a directory against signed bundles: signatures -> statement ->
policy (expiry, rollback) -> content -> Report.

Nothing in a bundle is used before its signature checked out: not the
manifest, not the subject, not the sidecar of leaf hashes.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Sequence

from . import oms
from .attest import Verified, open_bundles
from .engine import Progress
from .envelope import Bundle
from .manifest import SIDECAR_SUFFIX
from .report import Report
from .signing import TrustPolicy
from .store import Store
from .verify import verify


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
) -> tuple[Verified, Report]:
    """Check signatures and policy, then the content under `path`.

    Raises SignatureError/BundleError/PolicyError (exit 1) before any byte of
    content is read when the bundles cannot be trusted."""
    verified = open_bundles([(b, src) for b, _, src in bundles], policy, now)
    first_source = bundles[0][2]
    if store is not None:
        store.check_version(verified, first_source)
    if verified.manifest is not None:
        manifest = verified.manifest.with_sidecar(first_source + SIDECAR_SUFFIX)
        report = verify(path, manifest, allow_extra=allow_extra, exclude=exclude,
                        follow_symlinks=follow_symlinks, jobs=jobs, progress=progress)
    else:
        assert verified.oms is not None
        report = oms.verify(path, verified.oms, jobs=jobs, progress=progress)
    if store is not None:
        for _, data, _ in bundles:
            store.add(data, verified)
    return verified, report
