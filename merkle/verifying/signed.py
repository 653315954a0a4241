"""Signed manifests on disk: reading bundles, the one trust path, signing.

Every entry point that accepts a bundle opens it with `open_signed` (the
CLI's verify, audit, prove, sign, `merkle.verify`, `merkle.open`,
`merkle.zarr.VerifiedStore`): bundles are read and shape-checked here, the
decision is merkle.signing.trust's (signatures, statement, expiry, rollback against
the store's history, all under the store's lock), and only then are the
files beside the first bundle read: the leaf sidecar (BUNDLE.leaves, which
must authenticate against the signed roots) and, for a compact bundle, its
manifest (BUNDLE.manifest, which must be the one the signed summary
describes).  Nothing in a bundle is used before its signature checked out.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from merkle.errors import BundleError, FormatError, MerkleError, UsageError
from merkle.format.manifest import MANIFEST_SUFFIX, METADATA_SUFFIX, SIDECAR_SUFFIX, Manifest, Summary
from merkle.hashing.engine import Progress
from merkle.report import Report
from merkle.signing import oms, statements, trust
from merkle.signing.attestations import Store
from merkle.signing.envelope import Bundle, read_bundle_bytes
from merkle.signing.keys import PrivateKey, load_certificates, load_public_key
from merkle.signing.statements import Verified
from merkle.signing.trust import History, TrustPolicy
from merkle.source.local import write_atomic
from merkle.verifying.tree import verify

if TYPE_CHECKING:
    from merkle.hf.layout import Layout

SignedInput = tuple[Bundle, bytes, str]
"""A bundle as read (shape-checked, not trusted), its bytes and its file."""

StoreChoice = Store | str | os.PathLike[str] | bool
"""The `attestations` parameter: where rollback records live: True for the default store, a directory or a
Store, False for none (no rollback check, nothing recorded)."""


def read_bundles(paths: Sequence[str | os.PathLike[str]]) -> list[SignedInput]:
    out = []
    for p in paths:
        path = os.fspath(p)
        raw = read_bundle_bytes(path)
        out.append((Bundle.from_json(raw, path), raw, path))
    return out


def policy_from_files(
    keys: Sequence[str | os.PathLike[str]] = (),
    cas: Sequence[str | os.PathLike[str]] = (),
    *,
    threshold: int = 1,
    identities: Sequence[str] = (),
    issuers: Sequence[str] = (),
) -> TrustPolicy:
    """A TrustPolicy from public key files and CA certificate files."""
    return TrustPolicy(
        tuple(load_public_key(os.fspath(k)) for k in keys),
        tuple(load_certificates([os.fspath(c) for c in cas])),
        threshold,
        tuple(identities),
        tuple(issuers),
    )


def chosen_policy(
    keys: Sequence[str | os.PathLike[str]], cas: Sequence[str | os.PathLike[str]], policy: TrustPolicy | None
) -> TrustPolicy | None:
    """The policy of the keyword arguments `keys`/`cas`, or `policy` (not both); None if neither."""
    if policy is not None and (keys or cas):
        raise UsageError("give policy= or keys=/cas=, not both")
    return policy_from_files(keys, cas) if keys or cas else policy


def as_store(store: StoreChoice) -> Store | None:
    if store is True:
        return Store()
    if store is False:
        return None
    return store if isinstance(store, Store) else Store(os.fspath(store))


def open_signed(
    bundles: Sequence[SignedInput],
    policy: TrustPolicy,
    store: Store | None,
    now: datetime.datetime | None = None,
    *,
    with_manifest: bool = True,
) -> Verified:
    """The trust decision for `bundles` (merkle.signing.trust.decide, with the
    store's history when a store is given; the bundles are then kept in it).
    With `with_manifest`, a merkle statement's manifest comes back with the
    leaf sidecar beside the first bundle when it authenticates, and a
    compact statement's manifest is the one beside the bundle (None if there
    is none).  Raises SignatureError/BundleError/PolicyError (exit 1)."""
    if not bundles:
        raise UsageError("no bundle given")
    shaped = [(b, src) for b, _, src in bundles]
    if store is None:
        verified = trust.decide(shaped, policy, None, now)
    else:
        verified = store.decide(
            [data for _, data, _ in bundles], lambda history: trust.decide(shaped, policy, history, now)
        )
    if not with_manifest:
        return verified
    first = bundles[0][2]
    manifest = verified.manifest
    if manifest is None and verified.summary is not None:
        manifest = _beside(verified.summary, first + MANIFEST_SUFFIX)
    if manifest is not None:
        layered = manifest.with_sidecar(first + SIDECAR_SUFFIX).with_metadata_from(first)
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


def trusted_manifest(
    source: Manifest | str | os.PathLike[str],
    policy: TrustPolicy | None,
    attestations: StoreChoice = True,
) -> Manifest:
    """The manifest to check reads against, for `merkle.open` and
    VerifiedStore: a Manifest as given, an unsigned manifest file (no
    policy), or a bundle file opened with `open_signed` (policy required)."""
    if isinstance(source, Manifest):
        if policy is not None:
            raise UsageError("a Manifest object is already trusted: keys and CAs apply to bundle files")
        return source
    path = os.fspath(source)
    if policy is None:
        try:
            return Manifest.load(path)
        except FormatError:
            if _is_bundle(path):
                raise UsageError("a signed bundle needs keys= or cas= to be trusted", path) from None
            raise
    try:
        bundles = read_bundles([path])
    except BundleError:
        if _is_manifest(path):
            raise UsageError("an unsigned manifest cannot be checked with keys", path) from None
        raise
    verified = open_signed(bundles, policy, as_store(attestations))
    if verified.manifest is None:
        if verified.summary is not None:
            raise UsageError(f"a compact bundle needs its manifest beside it ({path}{MANIFEST_SUFFIX})", path)
        raise UsageError("verified reads need a merkle bundle (OpenSSF bundles carry no chunk tree)", path)
    return verified.manifest


def _is_manifest(path: str) -> bool:
    try:
        Manifest.load(path, layers=False)
        return True
    except MerkleError:
        return False


def _is_bundle(path: str) -> bool:
    try:
        read_bundles([path])
        return True
    except MerkleError:
        return False


def verify_signed(
    path: str | os.PathLike[str],
    bundles: Sequence[str | os.PathLike[str]],
    *,
    keys: Sequence[str | os.PathLike[str]] = (),
    cas: Sequence[str | os.PathLike[str]] = (),
    policy: TrustPolicy | None = None,
    attestations: StoreChoice = True,
    **options: Any,
) -> tuple[Verified, Report]:
    """`merkle.verify_signed`: check the bundle files (signed by `keys`, CA
    certificates `cas`, or as `policy` says), then the tree under `path`, as
    `merkle verify PATH BUNDLE... --key PUB` does.  `attestations` holds the
    rollback records (True: the default store; False: none).  `options` are
    merkle.verify's (allow_extra, exclude, sparse, only, jobs...).

    Returns the verified statement and the Report of the content; raises
    SignatureError, BundleError or PolicyError (exit 1) before any content
    is read when the bundles cannot be trusted."""
    chosen = chosen_policy(keys, cas, policy)
    if chosen is None:
        raise UsageError("a signed bundle needs keys=, cas= or policy= to be trusted")
    return verify_opened(path, read_bundles(bundles), chosen, store=as_store(attestations), **options)


def verify_opened(
    path: str | os.PathLike[str],
    bundles: Sequence[SignedInput],
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
    verified = open_signed(bundles, policy, store, now)
    if verified.summary is not None and verified.manifest is None:
        raise UsageError(
            f"a compact bundle needs its manifest ({bundles[0][2]}{MANIFEST_SUFFIX}) to check a tree; "
            "check single files with a file proof"
        )
    if verified.manifest is not None:
        report = verify(
            path,
            verified.manifest,
            allow_extra=allow_extra,
            exclude=exclude,
            follow_symlinks=follow_symlinks,
            jobs=jobs,
            progress=progress,
            sparse=sparse,
            only=only,
            storage_options=storage_options,
            revision=revision,
            layout=layout,
        )
    else:
        assert verified.oms is not None
        if sparse or only is not None:
            raise UsageError("sparse checks and chosen files need a merkle bundle; OpenSSF bundles are checked whole")
        report = oms.verify(path, verified.oms, jobs=jobs, progress=progress, layout=layout, revision=revision)
    return verified, report


# -- signing -------------------------------------------------------------------------


def self_check(bundle: Bundle, key: PrivateKey, output: str, store: Store | None = None) -> Verified:
    """Open what was just signed, as a verifier would (catches a bad key or
    statement before anyone else meets it); the chain is the verifier's
    business, and no history applies, except that a version this key
    signed (or this machine verified) before with another root is refused:
    every verifier that saw that one would refuse this one forever."""
    plain = dataclasses.replace(bundle, certificates=())
    verified = trust.decide([(plain, output)], TrustPolicy(keys=(key.public_key(),)), History())
    if store is not None:
        trust.check_reuse(store.history(), verified, output)
    return verified


def write_signed(
    output: str,
    bundle: Bundle,
    key: PrivateKey,
    manifest: Manifest | None,
    store: Store | None,
    *,
    compact: bool = False,
) -> Verified:
    """Check `bundle`, then write it to `output` with the leaf sidecar and
    object metadata of `manifest` beside it, and with `compact` the manifest
    itself (OUTPUT.manifest): each file atomically, the bundle last, so a
    bundle on disk always has its companions.  Keep it in `store`."""
    verified = self_check(bundle, key, output, store)
    data = bundle.to_json()
    if compact and manifest is not None:
        write_atomic(output + MANIFEST_SUFFIX, manifest.to_json())
    if manifest is not None and manifest.layers is not None:
        write_atomic(output + SIDECAR_SUFFIX, manifest.layers.to_bytes(manifest))
    if manifest is not None and manifest.metadata:
        write_atomic(output + METADATA_SUFFIX, (json.dumps(dict(manifest.metadata)) + "\n").encode())
    write_atomic(output, data)
    if store is not None:
        store.add(data, verified)
    return verified


def sign(
    manifest: Manifest,
    key: PrivateKey | str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    name: str,
    version: int | None = None,
    expires: datetime.datetime | None = None,
    certificates: Sequence[bytes] = (),
    compact: bool = False,
    attestations: StoreChoice = True,
) -> Verified:
    """Sign `manifest` as subject `name` and write the bundle to `output`
    (with OUTPUT.leaves, and OUTPUT.manifest when `compact`).  `version`,
    when given, makes verifiers refuse older versions of `name` from this
    signer; `key` is a private key or a PEM key file."""
    from merkle.signing.keys import load_private_key

    private = load_private_key(os.fspath(key)) if isinstance(key, (str, os.PathLike)) else key
    out = os.fspath(output)
    bundle = statements.sign(
        manifest, private, name=name, version=version, expires=expires, certificates=certificates, compact=compact
    )
    return write_signed(out, bundle, private, manifest, as_store(attestations), compact=compact)
