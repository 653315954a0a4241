"""The trust options of the command line (--key, --ca, --cert-identity,
--cert-issuer, --threshold, --store) as the one trust path takes them, and
how a verified statement is shown.  What verify, audit and prove need of
signing: the signing commands themselves are cli/signing.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from merkle.display import shown
from merkle.errors import UsageError
from merkle.format.timestamps import format_time
from merkle.signing.attestations import Store
from merkle.verifying.signed import open_signed, policy_from_files

if TYPE_CHECKING:
    import argparse

    from merkle.signing.envelope import BundleFile
    from merkle.signing.statements import Verified
    from merkle.signing.trust import TrustPolicy


def trust_policy(args: argparse.Namespace, prefix: str = "") -> TrustPolicy:
    keys, cas = getattr(args, f"{prefix}key"), getattr(args, f"{prefix}ca")
    flag = f"--{prefix.replace('_', '-')}"
    loaded = getattr(args, "loaded_policy", None) if not prefix else None
    name = getattr(args, "expect_name", None) if not prefix else None
    expect: dict[str, Any] = {
        "subjects": (name,) if name is not None else (),
        "min_version": getattr(args, "min_version", None) if not prefix else None,
    }
    if not keys and not cas and loaded is not None and loaded.signers is not None:  # the policy names its signers
        s = loaded.signers
        return policy_from_files(
            s.keys, s.cas, threshold=s.threshold, identities=s.identities, issuers=s.issuers, **expect
        )
    if not keys and not cas:
        raise UsageError(f"no trusted key or CA given (use {flag}key PUB or {flag}ca CERT)")
    if (args.cert_identity or args.cert_issuer) and not cas:
        raise UsageError(f"--cert-identity and --cert-issuer apply to certificate chains: add {flag}ca CERT")
    return policy_from_files(
        keys, cas, threshold=args.threshold, identities=args.cert_identity, issuers=args.cert_issuer, **expect
    )


def store_for(args: argparse.Namespace) -> Store | None:
    return None if getattr(args, "no_store", False) else Store(args.store)


def open_bundles(
    args: argparse.Namespace,
    bundles: list[BundleFile],
    *,
    with_manifest: bool = True,
    images: bool = False,
    prefix: str = "",
) -> Verified:
    """The one trust path (merkle.verifying.signed.open_signed) with the command line's policy and store."""
    policy = trust_policy(args, prefix)
    return open_signed(bundles, policy, store_for(args), with_manifest=with_manifest, images=images)


def describe(verified: Verified) -> str:
    signers = ", ".join(
        f"{shown(s.key_id[:16])} ({s.algorithm}{', ' + shown(s.subject) if s.subject else ''})"
        for s in verified.signers
    )
    kind = (
        "OpenSSF model-signing statement"
        if verified.oms
        else f"version {verified.version}"
        if verified.version is not None
        else "no version"
    )
    expires = f", expires {format_time(verified.expires)}" if verified.expires else ""
    return f"signature ok: '{shown(verified.name)}' {kind}{expires}, signed by {signers}"


def verified_dict(verified: Verified) -> dict[str, Any]:
    return {
        "name": verified.name,
        "format": "oms" if verified.oms else "merkle",
        "version": verified.version,
        "expires": format_time(verified.expires) if verified.expires else None,
        "signers": [
            {
                "key_id": s.key_id,
                "algorithm": s.algorithm,
                "subject": s.subject,
                "issuer": s.issuer,
                "names": list(s.names),
            }
            for s in verified.signers
        ],
    }
