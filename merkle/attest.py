"""Signed manifests: in-toto statements over a manifest, signed in DSSE
envelopes inside Sigstore bundles, and the checks that open them.

Verification order (docs/signing.md):
  1. shape of each bundle (size capped before decoding; strict JSON);
  2. each signature against the trusted keys or CA (algorithms pinned);
  3. every bundle carries the same payload bytes (no mix-and-match), and
     at least `threshold` distinct trusted signers;
  4. only then the payload is parsed: statement, subject, predicate;
  5. subject digest equals the manifest's recomputed root;
  6. policy: not expired, not older than a version already seen.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from . import oms
from .envelope import PAYLOAD_TYPE, Bundle, Statement, pae
from .errors import BundleError, FormatError, PolicyError, SignatureError, UsageError
from .manifest import Manifest, Summary
from .signing import PrivateKey, Signer, TrustPolicy, key_id, sign_bytes
from .timestamps import format_time, parse_time

PREDICATE_TYPE: Final = "https://merkle.dev/manifest/v1"


def digest_key(algorithm: str) -> str:
    """The subject digest key for a dataset root: `merkle-blake3`, `merkle-sha256`."""
    return f"merkle-{algorithm}"


@dataclass(frozen=True)
class Verified:
    """A statement whose signatures checked out, parsed and shape-checked.
    Exactly one of `manifest` (merkle format) and `oms` is set."""

    name: str
    version: int
    expires: datetime.datetime | None
    signers: tuple[Signer, ...]
    payload: bytes
    manifest: Manifest | None = None
    oms: oms.OmsStatement | None = None
    summary: Summary | None = None
    """Set for every merkle statement; `manifest` is None for a compact one
    until the manifest beside the bundle is matched to it."""

    @property
    def root_hex(self) -> str:
        if self.summary is not None:
            return self.summary.root.hex()
        assert self.oms is not None
        return self.oms.subject_digest.hex()

    @property
    def payload_digest(self) -> str:
        return hashlib.sha256(self.payload).hexdigest()


def statement(
    manifest: Manifest,
    name: str,
    version: int = 1,
    expires: datetime.datetime | None = None,
    compact: bool = False,
) -> Statement:
    """The statement to sign.  `compact` signs the summary (root and
    parameters) instead of every entry: small for a million files; the
    manifest then travels beside the bundle, authenticated by the root."""
    if not name:
        raise UsageError("a signed manifest needs a subject name")
    if version < 1:
        raise UsageError("version must be a positive integer")
    body = {"summary": manifest.summary.to_dict()} if compact else {"manifest": manifest.to_dict()}
    predicate: dict[str, Any] = {**body, "version": version}
    if expires is not None:
        predicate["expires"] = format_time(expires)
    return Statement(((name, {digest_key(manifest.algorithm): manifest.root.hex()}),), PREDICATE_TYPE, predicate)


def sign_statement(stmt: Statement, key: PrivateKey, certificates: Sequence[bytes] = ()) -> Bundle:
    payload = stmt.to_payload()
    return sign_payload(payload, key, certificates)


def sign_payload(payload: bytes, key: PrivateKey, certificates: Sequence[bytes] = ()) -> Bundle:
    """A bundle over exactly these payload bytes (co-signers sign the same bytes)."""
    signature = sign_bytes(key, pae(PAYLOAD_TYPE, payload))
    public = key.public_key()
    kid = key_id(public)
    return Bundle(
        payload=payload,
        payload_type=PAYLOAD_TYPE,
        signature=signature,
        keyid="" if certificates else kid,
        key_hint="" if certificates else kid,
        certificates=tuple(certificates),
    )


def sign(
    manifest: Manifest,
    key: PrivateKey,
    *,
    name: str,
    version: int = 1,
    expires: datetime.datetime | None = None,
    certificates: Sequence[bytes] = (),
    compact: bool = False,
) -> Bundle:
    """Sign `manifest` as subject `name` at `version` (rollback protection
    compares versions per name), valid until `expires` when given."""
    return sign_statement(statement(manifest, name, version, expires, compact), key, certificates)


def open_bundles(
    bundles: Sequence[tuple[Bundle, str]],
    policy: TrustPolicy,
    now: datetime.datetime | None = None,
) -> Verified:
    """Steps 2-6 above for bundles already shape-checked (step 1)."""
    if not bundles:
        raise UsageError("no bundle given")
    signers = [policy.check(bundle, source) for bundle, source in bundles]  # 2.
    payload = bundles[0][0].payload
    for bundle, source in bundles[1:]:  # 3.
        if bundle.payload != payload:
            raise SignatureError("bundles sign different statements; co-signers must sign the same one", source)
    distinct = {s.key_id for s in signers}
    if len(distinct) < policy.threshold:
        raise SignatureError(
            f"{len(distinct)} distinct trusted signer(s), {policy.threshold} required", bundles[-1][1]
        )
    source = bundles[0][1]
    stmt = Statement.from_payload(payload, source)  # 4.
    try:
        verified = _interpret(stmt, tuple(signers), payload)
    except FormatError as e:
        raise BundleError(e.message, source) from e
    if verified.expires is not None:  # 6. (rollback needs the store: see store.py)
        moment = now or datetime.datetime.now(datetime.timezone.utc)
        if moment > verified.expires:
            raise PolicyError(f"statement for {verified.name!r} expired at {format_time(verified.expires)}", source)
    return verified


def _interpret(stmt: Statement, signers: tuple[Signer, ...], payload: bytes) -> Verified:
    if stmt.predicate_type == oms.PREDICATE_TYPE:
        parsed = oms.OmsStatement.from_statement(stmt)
        return Verified(parsed.name, 0, None, signers, payload, oms=parsed)
    if stmt.predicate_type != PREDICATE_TYPE:
        raise BundleError(f"unsupported predicateType {stmt.predicate_type!r}")
    if len(stmt.subjects) != 1:
        raise BundleError("a merkle statement has exactly one subject")
    name, digests = stmt.subjects[0]
    pred = stmt.predicate
    body = {"manifest", "summary"} & set(pred)
    if len(body) != 1 or not set(pred) - body <= {"version", "expires"} or "version" not in pred:
        raise BundleError("predicate must have manifest or summary, version, and optionally expires")
    version = pred["version"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise BundleError("predicate version must be a positive integer")
    expires = parse_time(pred["expires"], "predicate expires") if "expires" in pred else None
    manifest = Manifest.from_doc(pred["manifest"]) if "manifest" in pred else None  # 5. recomputes the root
    summary = manifest.summary if manifest is not None else Summary.from_doc(pred["summary"])
    want = digests.get(digest_key(summary.algorithm))
    if want != summary.root.hex():
        raise BundleError(f"subject digest {digest_key(summary.algorithm)} does not match the manifest root")
    if not name:
        raise BundleError("subject name is empty")
    return Verified(name, version, expires, signers, payload, manifest=manifest, summary=summary)

