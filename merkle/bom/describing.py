"""The three ways to a BOM's facts (docs/bom.md B2), each through the entry
point the rest of merkle uses: a tree hashed by this run (`of_tree`, the
builder), a tree checked against signed bundles (`of_verified_tree`, the one
trust path and the tree check), and what bundles alone sign (`of_bundles`).
With `sha256`, hashing goes through merkle.bom.digests.SameRead: every
file's whole-file SHA-256 and BLAKE3 from the read that builds or checks it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

from merkle.bom.digests import SameRead
from merkle.bom.facts import Facts, of_manifest, of_oms, with_card
from merkle.building import BuildOptions, build_with
from merkle.errors import UsageError
from merkle.hashing.options import HashOptions
from merkle.report import Progress, Report
from merkle.signing.attestations import Store
from merkle.signing.envelope import BundleFile
from merkle.signing.trust import TrustPolicy
from merkle.source.listing import WalkOptions
from merkle.verifying.signed import open_signed, verify_opened
from merkle.verifying.tree import CheckOptions


def _hashing(sha256: bool, jobs: int | None, progress: Progress | None) -> tuple[HashOptions, SameRead | None]:
    same = SameRead(jobs, progress) if sha256 else None
    return HashOptions(jobs, progress, cluster=same), same


def of_tree(
    path: str | os.PathLike[str],
    options: BuildOptions = BuildOptions(),
    walk: WalkOptions = WalkOptions(),
    *,
    sha256: bool = False,
    jobs: int | None = None,
    progress: Progress | None = None,
    name: str | None = None,
    kind: str | None = None,
) -> Facts:
    """The facts of the tree under `path` as this run builds it (basis
    `built`), named `name` (default: the directory's name), with the model
    card read back through the manifest just built."""
    hashing, same = _hashing(sha256, jobs, progress)
    manifest = build_with(path, options, walk, hashing)
    name = name or os.path.basename(os.path.abspath(os.fspath(path)))
    facts = of_manifest(manifest, name, "built", same.whole if same else None, kind=kind)
    return with_card(facts, path, manifest, walk.revision, walk.layout)


def of_verified_tree(
    path: str | os.PathLike[str],
    bundles: Sequence[BundleFile],
    policy: TrustPolicy,
    store: Store | None = None,
    *,
    check: CheckOptions = CheckOptions(),
    walk: WalkOptions = WalkOptions(),
    sha256: bool = False,
    jobs: int | None = None,
    progress: Progress | None = None,
    kind: str | None = None,
) -> tuple[Facts | None, Report]:
    """The bundles through the one trust path, then the tree under `path`
    against them; the facts only when the tree verified (None otherwise:
    the Report says why).  Raises SignatureError, BundleError or
    PolicyError before any byte is read when the bundles cannot be trusted."""
    hashing, same = _hashing(sha256, jobs, progress)
    verified, report = verify_opened(path, bundles, policy, store=store, check=check, walk=walk, hashing=hashing)
    if not report.ok:
        return None, report
    signers = tuple(s.key_id for s in verified.signers)
    if verified.manifest is not None:
        facts = of_manifest(verified.manifest, verified.name, "verified", same.whole if same else None, signers, kind)
        facts = dataclasses.replace(facts, version=verified.version, expires=verified.expires)
        return with_card(facts, path, verified.manifest, walk.revision, walk.layout), report
    assert verified.oms is not None
    facts = of_oms(verified.oms, "verified", signers, kind)
    return with_card(facts, path, verified.oms, walk.revision, walk.layout), report


def of_bundles(
    bundles: Sequence[BundleFile], policy: TrustPolicy, store: Store | None = None, *, kind: str | None = None
) -> Facts:
    """What the bundles sign, through the one trust path, with no tree read
    (basis `signed`: no model card, no licenses)."""
    verified = open_signed(bundles, policy, store)
    signers = tuple(s.key_id for s in verified.signers)
    if verified.oms is not None:
        facts = of_oms(verified.oms, "signed", signers, kind)
    elif verified.manifest is not None:
        facts = of_manifest(verified.manifest, verified.name, "signed", None, signers, kind)
    else:
        raise UsageError(
            "a compact bundle signs only a root: a BOM needs its manifest beside it (BUNDLE.manifest)",
            bundles[0].path,
        )
    return dataclasses.replace(
        facts, card_problem="no tree given: README.md was not read", version=verified.version, expires=verified.expires
    )
