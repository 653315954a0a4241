"""Signed manifests on disk: reading bundles, the one trust path, and the
checks that follow it (merkle.signing.writing signs).

Every entry point that accepts a bundle opens it with `open_signed` (the
CLI's verify, audit, prove, sign, `merkle.verify`, `merkle.open`,
`merkle.zarr.VerifiedStore`): bundles are read and shape-checked here, the
decision is merkle.signing.trust's (signatures, statement, expiry, rollback against
the store's history, all under the store's lock), and only then are the
files beside the first bundle read: the leaf sidecar (BUNDLE.leaves, which
must authenticate against the signed roots) and, for a compact bundle, its
manifest (BUNDLE.manifest, which must be the one the signed summary
describes).  Nothing in a bundle is used before its signature checked out.

The check of a tree that follows (merkle.verifying.tree, with the engine's
checkpoints and the listings of every source) is imported by the functions
that run it: `merkle verify --file` and `merkle.open` need only the trust
path.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from merkle.errors import BundleError, FormatError, MerkleError, UsageError, option
from merkle.format.manifest import MANIFEST_SUFFIX, SIDECAR_SUFFIX, Manifest, Summary
from merkle.signing import trust
from merkle.signing.attestations import Store, StoreChoice, as_store
from merkle.signing.envelope import BundleFile
from merkle.signing.keys import load_certificates, load_public_key
from merkle.signing.statements import Verified
from merkle.signing.trust import TrustPolicy

if TYPE_CHECKING:
    from merkle.hashing.options import HashOptions
    from merkle.report import Report
    from merkle.source.listing import WalkOptions
    from merkle.verifying.tree import CheckOptions


def read_bundles(paths: Sequence[str | os.PathLike[str]]) -> list[BundleFile]:
    return [BundleFile.read(os.fspath(p)) for p in paths]


def policy_from_files(
    keys: Sequence[str | os.PathLike[str]] = (),
    cas: Sequence[str | os.PathLike[str]] = (),
    *,
    threshold: int = 1,
    identities: Sequence[str] = (),
    issuers: Sequence[str] = (),
    subjects: Sequence[str] = (),
    min_version: int | None = None,
) -> TrustPolicy:
    """A TrustPolicy from public key files and CA certificate files."""
    return TrustPolicy(
        tuple(load_public_key(os.fspath(k)) for k in keys),
        tuple(load_certificates([os.fspath(c) for c in cas])),
        threshold,
        tuple(identities),
        tuple(issuers),
        tuple(subjects),
        min_version,
    )


def chosen_policy(
    keys: Sequence[str | os.PathLike[str]],
    cas: Sequence[str | os.PathLike[str]],
    policy: TrustPolicy | None,
    subject: str | None = None,
    min_version: int | None = None,
) -> TrustPolicy | None:
    """The policy of the keyword arguments `keys`/`cas`, or `policy` (not
    both); None if neither.  `subject` and `min_version`, when given, are
    added to it (TrustPolicy.subjects, .min_version)."""
    if policy is not None and (keys or cas):
        raise UsageError("give policy= or keys=/cas=, not both")
    chosen = policy_from_files(keys, cas) if keys or cas else policy
    if chosen is None or (subject is None and min_version is None):
        return chosen
    if subject is not None and chosen.subjects and subject not in chosen.subjects:
        raise UsageError(f"subject {subject!r} is not one the policy accepts ({', '.join(chosen.subjects)[:200]})")
    subjects = (subject,) if subject is not None else chosen.subjects
    floor = max((v for v in (min_version, chosen.min_version) if v is not None), default=None)  # never lowered
    return dataclasses.replace(chosen, subjects=subjects, min_version=floor)


def open_signed(
    bundles: Sequence[BundleFile],
    policy: TrustPolicy,
    store: Store | None,
    now: datetime.datetime | None = None,
    *,
    with_manifest: bool = True,
    results: bool = False,
    boms: bool = False,
    images: bool = False,
    accept: Callable[[Verified], object] | None = None,
    keep: bool = True,
) -> Verified:
    """The trust decision for `bundles` (merkle.signing.trust.decide, with the
    store's history when a store is given; the bundles are then kept in it).
    With `with_manifest`, a merkle statement's manifest comes back with the
    leaf sidecar beside the first bundle when it authenticates, and a
    compact statement's manifest is the one beside the bundle (None if there
    is none).  A signed policy result is refused unless `results`, a signed
    BOM unless `boms`, a signed container image unless `images`.  `accept`, when given, runs on the verified statement
    before the store keeps anything (a signed BOM's claims, merkle.bom.checking):
    what it raises keeps the bundle out of the store.  `keep` False: the
    store's records are checked, nothing is kept (a caller that keeps the
    bundle only once more checks held opens it again with `keep`).  Raises
    SignatureError/BundleError/PolicyError (exit 1)."""
    if not bundles:
        raise UsageError("no bundle given")
    shaped = [(b.bundle, b.path) for b in bundles]

    def decide(history: trust.History | None) -> Verified:
        verified = trust.decide(shaped, policy, history, now)
        _refuse_kind(verified, bundles[0].path, results=results, boms=boms, images=images)  # before it is kept
        if accept is not None:
            accept(verified)
        return verified

    if store is None:
        verified = decide(None)
    elif not keep:
        verified = decide(store.history())
    else:
        verified = store.decide([b.data for b in bundles], decide)
    if not with_manifest:
        return verified
    first = bundles[0].path
    manifest = verified.manifest
    if manifest is None and verified.summary is not None:
        manifest = _beside(verified.summary, first + MANIFEST_SUFFIX)
    if manifest is not None:
        layered = manifest.with_sidecar(first + SIDECAR_SUFFIX).with_metadata_from(first)
        verified = verified.with_manifest(layered)
    return verified


def _refuse_kind(verified: Verified, path: str, *, results: bool, boms: bool, images: bool) -> None:
    """A signed policy result, BOM or container image where the caller did not ask for one: refused before the
    store keeps the bundle or records its version."""
    if verified.result is not None and not results:
        raise UsageError(
            "a signed policy result: it attests a verdict on a tree, not the tree's files (read it with "
            f"{option('results=True')})",
            path,
        )
    if verified.bom is not None and not boms:
        raise UsageError(
            "a signed BOM: it describes a tree's files, it is not their manifest (check it with "
            f"{option('boms=True')})",
            path,
        )
    if verified.image is not None and not images:
        raise UsageError(
            "a signed container image: it names an image's manifest digest, not a tree's files (check it with "
            f"{option('images=True')})",
            path,
        )


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
    subject: str | None = None,
    min_version: int | None = None,
    **options: Any,
) -> tuple[Verified, Report]:
    """`merkle.verify_signed`: check the bundle files (signed by `keys`, CA
    certificates `cas`, or as `policy` says), then the tree under `path`, as
    `merkle verify PATH BUNDLE... --key PUB` does.  `attestations` holds the
    rollback records (True: the default store; False: none).  `subject`:
    the name the statement must be for (a valid bundle of another model from
    the same signer is refused); `min_version`: the lowest version accepted.
    `options` are
    merkle.verify's keywords (allow_extra, exclude, sparse, only, jobs...).

    Returns the verified statement and the Report of the content; raises
    SignatureError, BundleError or PolicyError (exit 1) before any content
    is read when the bundles cannot be trusted."""
    chosen = chosen_policy(keys, cas, policy, subject, min_version)
    if chosen is None:
        raise UsageError("a signed bundle needs keys=, cas= or policy= to be trusted")
    check, walk, hashing = _split(options)
    return verify_opened(
        path, read_bundles(bundles), chosen, store=as_store(attestations), check=check, walk=walk, hashing=hashing
    )


def _split(options: dict[str, Any]) -> tuple[CheckOptions, WalkOptions, HashOptions]:
    """merkle.verify's keywords, each to the options object with its name."""
    from merkle.hashing.options import HashOptions
    from merkle.source.listing import WalkOptions
    from merkle.verifying.tree import CheckOptions

    kinds = (CheckOptions, WalkOptions, HashOptions)
    parts: tuple[dict[str, Any], ...] = ({}, {}, {})
    for key, value in options.items():
        owner = next((i for i, kind in enumerate(kinds) if key in {f.name for f in dataclasses.fields(kind)}), None)
        if owner is None:
            raise TypeError(f"verify_signed() got an unexpected keyword argument {key!r}")
        parts[owner][key] = value
    return CheckOptions(**parts[0]), WalkOptions(**parts[1]), HashOptions(**parts[2])


def verify_opened(
    path: str | os.PathLike[str],
    bundles: Sequence[BundleFile],
    policy: TrustPolicy,
    *,
    store: Store | None = None,
    now: datetime.datetime | None = None,
    check: CheckOptions | None = None,
    walk: WalkOptions | None = None,
    hashing: HashOptions | None = None,
    head: int = 0,
) -> tuple[Verified, Report]:
    """Check signatures and policy, then the content under `path` (as
    `merkle.verifying.tree.verify_with` does, or for an OpenSSF statement as
    merkle.signing.oms.verify does: whole, with `hashing.jobs`).  An option
    left out is its class's default; `head` as verify_with's.

    Raises SignatureError/BundleError/PolicyError (exit 1) before any byte of
    content is read when the bundles cannot be trusted."""
    from merkle.hashing.options import HashOptions
    from merkle.source.listing import WalkOptions
    from merkle.verifying.tree import CheckOptions, verify_with

    check = CheckOptions() if check is None else check
    walk = WalkOptions() if walk is None else walk
    hashing = HashOptions() if hashing is None else hashing
    verified = open_signed(bundles, policy, store, now)
    if verified.summary is not None and verified.manifest is None:
        raise UsageError(
            f"a compact bundle needs its manifest ({bundles[0].path}{MANIFEST_SUFFIX}) to check a tree; "
            "check single files with a file proof"
        )
    if verified.manifest is not None:
        report = verify_with(path, verified.manifest, check, walk, hashing, head=head)
    else:
        assert verified.oms is not None
        if check.sparse or check.only is not None:
            raise UsageError("sparse checks and chosen files need a merkle bundle; OpenSSF bundles are checked whole")
        from merkle.signing import oms

        report = oms.verify(
            path,
            verified.oms,
            exclude=check.exclude,
            allow_extra=check.allow_extra,
            jobs=hashing.jobs,
            progress=hashing.progress,
            layout=walk.layout,
            revision=walk.revision,
        )
    return verified, report
