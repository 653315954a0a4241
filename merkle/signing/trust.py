"""Every trust decision merkle makes, in one place, with no I/O.

    bundles (shape-checked) + TrustPolicy + History + now  ->  Verified

Whoever verifies a signed manifest (the CLI's verify, audit, prove, --proof
and --file, `merkle.open`, `merkle.verify`, `merkle.zarr.VerifiedStore`, the
co-signing in `merkle sign`) comes through `decide`; `merkle.verifying.signed`
does the reading around it, `merkle.signing.writing` the signer's own check
and the writing.  The steps (docs/signing.md V2-V6):

  V2 each signature, against the trusted keys, or against the leaf of a
     certificate chain that leads to a trusted CA, is for code signing and
     carries the pinned identity;
  V4 every bundle carries the same payload; `threshold` distinct signers;
  V5 only then the payload is parsed (merkle.signing.statements.interpret);
  V6 not expired; not older than a version this signer's statement for this
     subject had before (rollback), looked up in `History`.

History is keyed by (signer identity, subject name): another publisher's
model of the same name, or another model of the same name, never blocks
this one.  Only statements with an explicit version take part (a statement
signed without --version carries none and leaves no record), so re-signing
a model after an edit never fails; an unversioned statement is refused only
where this signer has published versions of this subject before.

What is X.509 (chains, key usages, names) is merkle.signing.certificates,
imported only when a bundle carries a certificate: cryptography's X.509
costs a check with a bare key more than the rest of it.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from merkle.errors import BundleError, FormatError, PolicyError, SignatureError, UsageError
from merkle.format.timestamps import format_time
from merkle.signing.envelope import LEGACY_PREDICATE_TYPE, Bundle, Statement
from merkle.signing.keys import PublicKey, algorithm_name, check_public, key_id, legacy_signature, signature_ok
from merkle.signing.statements import Verified, interpret

if TYPE_CHECKING:
    from cryptography import x509


@dataclass(frozen=True)
class Signer:
    """Who signed: the key id of the trusted key (or of the leaf certificate's
    key) that verified the signature, and for certificates the leaf's subject,
    issuer and subject alternative names."""

    key_id: str
    algorithm: str
    subject: str = ""
    issuer: str = ""
    names: tuple[str, ...] = ()
    pinned: tuple[str, ...] = ()
    """The verifier's pinned identities (TrustPolicy.identities) this
    certificate carries, and ..."""
    pinned_issuers: tuple[str, ...] = ()
    """... the pinned issuers it carries."""
    legacy: bool = field(default=False, compare=False)
    """The signature verified over model-signing 0.2's encoding
    (envelope.legacy_pae): its statement must be of that release's type."""

    @property
    def identity(self) -> str:
        """What rollback records are kept under: the key for a bare key; for
        a certificate the identity the verifier pinned (and the issuer it
        pinned, if any), else its issuer, subject and names: a renewed or
        reissued certificate of the same pinned identity keeps the records of
        the one before it, whatever else changed in it."""
        if not self.issuer:
            return f"key:{self.key_id}"
        if self.pinned:
            return "x509-pinned:" + json.dumps(
                [sorted(self.pinned_issuers), sorted(self.pinned)], separators=(",", ":")
            )
        return "x509:" + json.dumps([self.issuer, self.subject, sorted(self.names)], separators=(",", ":"))


@dataclass(frozen=True)
class TrustPolicy:
    """Whom to believe: public keys, or CA certificates for X.509 chains.
    `threshold` distinct signers are required across the bundles.  With
    certificates, `identities` (any of them) must be the leaf's subject (RFC
    4514) or one of its subject alternative names, and `issuers` (any of
    them) the leaf's issuer (RFC 4514) or its Fulcio OIDC issuer."""

    keys: tuple[PublicKey, ...] = ()
    roots: tuple[x509.Certificate, ...] = ()
    threshold: int = 1
    identities: tuple[str, ...] = ()
    issuers: tuple[str, ...] = ()
    subjects: tuple[str, ...] = ()
    """When given, the statement must be for one of these subject names (the
    name it was signed as): another model's valid bundle from the same
    signer is refused, whatever its files."""
    min_version: int | None = None
    """When given, the statement must carry this version or a later one,
    where no rollback record can say so (a fresh machine or container)."""

    def __post_init__(self) -> None:
        if self.min_version is not None and self.min_version < 1:
            raise UsageError("the lowest version accepted must be a positive integer")
        if not self.keys and not self.roots:
            raise UsageError("no trusted key or CA given")
        if self.threshold < 1:
            raise UsageError("threshold must be at least 1")
        if (self.identities or self.issuers) and not self.roots:
            raise UsageError("certificate identities and issuers apply to CA-signed bundles: give a CA")
        distinct = len({key_id(k) for k in self.keys})
        if self.threshold > distinct and not self.roots:
            raise UsageError(f"threshold {self.threshold} is more than the {distinct} distinct trusted keys")

    def check(self, bundle: Bundle, source: str, now: datetime.datetime) -> Signer:
        """V2: who signed, before any payload field is read."""
        data = bundle.signed_bytes()
        if bundle.certificates:
            if not self.roots:
                raise SignatureError("bundle is signed with a certificate; verify it with a trusted CA", source)
            from merkle.signing import certificates  # X.509, imported only for a certificate

            leaf = certificates.verify_chain(bundle.certificates, self.roots, source, now)
            key = check_public(leaf.public_key(), source)
            algorithm = algorithm_name(key)
            legacy = False
            if not signature_ok(key, bundle.signature, data):
                old = _legacy(bundle.legacy_signed_bytes(), bundle, key)
                if old is None:
                    raise SignatureError("signature does not verify with the certificate's key", source)
                algorithm, legacy = old, True
            signer = Signer(
                key_id(key),
                algorithm,
                leaf.subject.rfc4514_string(),
                leaf.issuer.rfc4514_string(),
                certificates.alternative_names(leaf),
                legacy=legacy,
            )
            return self._check_identity(signer, leaf, source)
        for key in self.keys:
            if signature_ok(key, bundle.signature, data):
                return Signer(key_id(key), algorithm_name(key))
        legacy_bytes = bundle.legacy_signed_bytes()  # made once: it may be large
        for key in self.keys:
            old = _legacy(legacy_bytes, bundle, key)
            if old is not None:
                return Signer(key_id(key), old, legacy=True)
        if not self.keys:
            raise SignatureError("bundle is signed with a bare key; verify it with a trusted public key", source)
        raise SignatureError("signature does not verify with any trusted key", source)

    def _check_identity(self, signer: Signer, leaf: x509.Certificate, source: str) -> Signer:
        """The signer with the pinned identities and issuers it carries; SignatureError if none."""
        pinned = {signer.subject, *signer.names} & set(self.identities)
        if self.identities and not pinned:
            seen = ", ".join([signer.subject, *signer.names]) or "none"
            raise SignatureError(f"certificate identity is not a trusted one (it has: {seen})", source)
        pinned_issuers: set[str] = set()
        if self.issuers:
            from merkle.signing.certificates import oidc_issuers

            issuers = {signer.issuer, *oidc_issuers(leaf)}
            pinned_issuers = issuers & set(self.issuers)
            if not pinned_issuers:
                raise SignatureError(
                    f"certificate issuer is not a trusted one (it has: {', '.join(sorted(issuers))})", source
                )
        return dataclasses.replace(signer, pinned=tuple(sorted(pinned)), pinned_issuers=tuple(sorted(pinned_issuers)))


def _legacy(legacy: bytes | None, bundle: Bundle, key: PublicKey) -> str | None:
    """The algorithm of a model-signing 0.2 signature over `legacy`
    (bundle.legacy_signed_bytes), marked as such, else None."""
    if legacy is None:
        return None
    algorithm = legacy_signature(key, bundle.signature, legacy)
    return None if algorithm is None else f"{algorithm} (model-signing 0.2 encoding)"


@dataclass(frozen=True)
class Seen:
    """The highest explicit version of a subject verified from one signer."""

    version: int
    root: str


IMAGE_RECORDS: Final = "image\x00"
"""Prefix of the subject names of image statements in the records: an
image and a model signed under one name are versioned apart (a model's
version 3 does not make its image's version 1 a rollback)."""


def record_name(verified: Verified) -> str:
    """The name `verified`'s version is recorded and checked under."""
    return IMAGE_RECORDS + verified.name if verified.image is not None else verified.name


@dataclass(frozen=True)
class History:
    """What this machine verified before: signer identity -> subject name ->
    Seen.  Immutable; `after` gives the history that includes a statement."""

    records: Mapping[str, Mapping[str, Seen]] = field(default_factory=dict)

    def seen(self, signer: Signer, name: str) -> Seen | None:
        return self.records.get(signer.identity, {}).get(name)

    def after(self, verified: Verified) -> History:
        if verified.version is None or (verified.summary is None and verified.image is None):
            return self  # unversioned and OpenSSF statements leave no record
        records = {identity: dict(names) for identity, names in self.records.items()}
        for signer in verified.signers:
            names = records.setdefault(signer.identity, {})
            held = names.get(record_name(verified))
            if held is None or verified.version > held.version:
                names[record_name(verified)] = Seen(verified.version, verified.root_hex)
        return History(records)

    def check(self, verified: Verified, source: str) -> None:
        """V6, rollback: refuse a version older than one a signer of this
        statement published for this subject, the same version with another
        root (freeze, or mix), and an unversioned statement where versioned
        ones were seen.  An OpenSSF statement carries no version: it is an
        unversioned statement like any other, never a way around the records;
        model-signing 0.2's names no model, so it could stand for any: it is
        refused once any versioned statement from its signer was verified."""
        if verified.result is not None:  # a verdict on a tree, not a version of it
            return
        bom = verified.bom is not None
        if verified.oms is not None and verified.oms.legacy:
            for signer in verified.signers:
                names = sorted(self.records.get(signer.identity, {}))
                if names:
                    raise PolicyError(
                        "rollback: a model-signing 0.2 statement names no model, and versioned statements "
                        f"from the same signer were verified before ({', '.join(map(repr, names[:3]))})",
                        source,
                    )
        what = "the BOM" if bom else "the OpenSSF statement" if verified.oms is not None else "the statement"
        other = "another root than the BOM's" if bom else "another root"
        for signer in verified.signers:
            held = self.seen(signer, record_name(verified))
            if held is None:
                continue
            if verified.version is None:
                # A signed BOM restates a version of its subject (merkle:version, statements._bom_version); one
                # that gives none (of a tree hashed by its signer, or made before BOMs recorded it) is accepted
                # when it names the root of this signer's newest verified version.  BOMs leave no record.
                if bom and verified.root_hex == held.root:
                    continue
                tail = " and names another root than" if bom else ", and"
                raise PolicyError(
                    f"rollback: {what} for {verified.name!r} has no version{tail} version "
                    f"{held.version} from the same signer was verified before",
                    source,
                )
            if verified.version < held.version:
                raise PolicyError(
                    f"rollback: version {verified.version} of {verified.name!r}{' (a BOM)' if bom else ''} is older "
                    f"than version {held.version} from the same signer, verified before",
                    source,
                )
            if verified.version == held.version and verified.root_hex != held.root:
                raise PolicyError(
                    f"version {verified.version} of {verified.name!r} from the same signer was "
                    f"verified before with {other}",
                    source,
                )

    def to_doc(self) -> dict[str, Any]:
        return {
            identity: {name: {"version": s.version, "root": s.root} for name, s in sorted(names.items())}
            for identity, names in sorted(self.records.items())
        }

    @classmethod
    def from_doc(cls, doc: object, where: str) -> History:
        """Strict: a store index edited by hand or damaged is a FormatError."""
        if not isinstance(doc, dict):
            raise FormatError("malformed attestation index: versions must be an object", where)
        records: dict[str, dict[str, Seen]] = {}
        for identity, names in doc.items():
            if not isinstance(names, dict):
                raise FormatError(
                    f"malformed attestation index: versions of {identity[:80]!r} must be an object", where
                )
            for name, seen in names.items():
                ok = (
                    isinstance(seen, dict)
                    and set(seen) == {"version", "root"}
                    and type(seen["version"]) is int
                    and seen["version"] >= 1
                    and isinstance(seen["root"], str)
                    and re.fullmatch("[0-9a-f]{64}", seen["root"]) is not None
                )
                if not ok:
                    raise FormatError(
                        f"malformed attestation index: the record of {name[:80]!r} must be {{version, root}}", where
                    )
                records.setdefault(identity, {})[name] = Seen(seen["version"], seen["root"])
        return cls(records)


def check_reuse(history: History, verified: Verified, source: str) -> None:
    """For a signer: refuse to sign a version of a subject that this signer's
    history holds with another root (an edit signed without bumping the
    version), which every verifier that saw the first would refuse as a
    freeze.  Older versions and unversioned statements are the signer's
    choice (a verifier that saw newer ones refuses them, V6)."""
    if verified.version is None:
        return
    for signer in verified.signers:
        held = history.seen(signer, record_name(verified))
        if held is not None and held.version == verified.version and held.root != verified.root_hex:
            raise PolicyError(
                f"version {verified.version} of {verified.name!r} was signed or verified before with "
                "another root: verifiers that saw it would refuse this statement; sign the new "
                "content with a higher version",
                source,
            )


def decide(
    bundles: Sequence[tuple[Bundle, str]],
    policy: TrustPolicy,
    history: History | None = None,
    now: datetime.datetime | None = None,
) -> Verified:
    """V2-V6 for bundles already shape-checked (V1).  `history` None: no
    rollback check (the caller keeps no store).  Raises SignatureError,
    BundleError or PolicyError (all exit 1)."""
    if not bundles:
        raise UsageError("no bundle given")
    moment = now or datetime.datetime.now(datetime.timezone.utc)
    signers = [policy.check(bundle, source, moment) for bundle, source in bundles]  # V2
    payload = bundles[0][0].payload
    for bundle, source in bundles[1:]:  # V4
        if bundle.payload != payload:
            raise SignatureError("bundles sign different statements; co-signers must sign the same one", source)
    distinct = {s.key_id for s in signers}
    if len(distinct) < policy.threshold:
        raise SignatureError(f"{len(distinct)} distinct trusted signer(s), {policy.threshold} required", bundles[-1][1])
    source = bundles[0][1]
    stmt = Statement.from_payload(payload, source)  # V5
    if any(s.legacy for s in signers) and stmt.predicate_type != LEGACY_PREDICATE_TYPE:
        raise SignatureError("signature does not verify with any trusted key", source)  # 0.2's encoding: 0.2 only
    try:
        verified = interpret(stmt, tuple(signers), payload)
    except FormatError as e:
        raise BundleError(e.message, source) from e
    if verified.expires is not None and moment > verified.expires:  # V6
        raise PolicyError(f"statement for {verified.name!r} expired at {format_time(verified.expires)}", source)
    if policy.subjects and verified.name not in policy.subjects:
        want = " or ".join(repr(n) for n in policy.subjects[:3])
        raise PolicyError(f"the statement is for {verified.name!r}, not {want}", source)
    if policy.min_version is not None and (verified.version is None or verified.version < policy.min_version):
        got = "no version" if verified.version is None else f"version {verified.version}"
        raise PolicyError(
            f"the statement for {verified.name!r} has {got}; version {policy.min_version} or later is required",
            source,
        )
    if history is not None:
        history.check(verified, source)
    return verified
