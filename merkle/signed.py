"""Verifying a directory against signed bundles: signatures -> statement ->
policy (expiry, rollback) -> content -> Report.

Nothing in a bundle is used before its signature checked out: not the
manifest, not the subject, not the sidecar of leaf hashes.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Sequence

from . import _json, oms
from .attest import Verified, open_bundles
from .engine import Progress
from .envelope import Bundle
from .errors import FormatError
from .manifest import MAX_MANIFEST_BYTES, SIDECAR_SUFFIX, Manifest
from .report import Report
from .signing import TrustPolicy, read_bundle_bytes
from .sources.local import read_capped
from .store import Store
from .verify import verify


def load_document(path: str, bundle: bool = False) -> Manifest | tuple[Bundle, bytes]:
    """Read a manifest or a bundle, telling them apart by shape: a bundle
    has a `mediaType`.  With `bundle=True` (a key or CA was given) the file
    can only be a bundle: it is capped at the bundle limit before decoding
    and anything else is a BundleError.  Bundles come back unverified."""
    if bundle:
        raw = read_bundle_bytes(path)
        return Bundle.from_json(raw, path), raw
    data = read_capped(path, MAX_MANIFEST_BYTES)
    doc = _json.loads(data, path, MAX_MANIFEST_BYTES)
    if isinstance(doc, dict) and ("mediaType" in doc or "dsseEnvelope" in doc):
        return Bundle.from_json(data, path), data
    try:
        manifest = Manifest.from_doc(doc)
    except FormatError as e:
        raise type(e)(e.message, path) from e
    return manifest.with_sidecar(path + SIDECAR_SUFFIX)


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
