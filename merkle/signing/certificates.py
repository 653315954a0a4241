"""X.509 for the trust decision (merkle.signing.trust, step V2): a bundle's
certificate chain checked against trusted CAs, and the names and issuers a
verifier may pin read from its leaf.  Imported only when a bundle carries
a certificate: a bundle signed with a bare key never loads cryptography's
X.509 (the largest part of its start-up).
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    VerificationError,
)
from cryptography.x509.verification import Store as CertificateStore

from merkle.errors import SignatureError

# Fulcio's OIDC issuer extensions: v1 holds the raw string, v2 a DER UTF8String.
_OIDC_ISSUER_V1 = ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
_OIDC_ISSUER_V2 = ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
_USAGE_NAMES = {
    ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
    ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
    ExtendedKeyUsageOID.CODE_SIGNING: "codeSigning",
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "emailProtection",
}


def verify_chain(
    chain_der: Sequence[bytes], roots: Sequence[x509.Certificate], source: str, now: datetime.datetime
) -> x509.Certificate:
    """The leaf (first) must be valid now, for code signing (extended key
    usage, as Sigstore and OpenSSF model-signing require), and lead through
    the intermediates in the bundle to a trusted CA (path building, validity,
    CA constraints and signatures by cryptography's X.509 verifier).
    Returns the leaf."""
    try:
        chain = [x509.load_der_x509_certificate(c) for c in chain_der]
        for cert in chain:  # parsed lazily: names and extensions now (messages quote them), not mid-check
            _ = (cert.subject.rfc4514_string(), cert.issuer.rfc4514_string(), cert.extensions)
    except ValueError as e:
        raise SignatureError(
            "bundle certificate is not valid DER (or holds a malformed name or extension)", source
        ) from e
    leaf = chain[0]
    for cert in chain:
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise SignatureError(f"certificate {cert.subject.rfc4514_string()} is not valid now", source)
    try:
        usage = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    except ValueError as e:
        raise SignatureError(f"certificate {leaf.subject.rfc4514_string()} has a malformed extension", source) from e
    if usage is None or ExtendedKeyUsageOID.CODE_SIGNING not in usage:
        have = ", ".join(_USAGE_NAMES.get(u, u.dotted_string) for u in usage) if usage else "no extended key usage"
        raise SignatureError(f"certificate {leaf.subject.rfc4514_string()} is not for code signing ({have})", source)
    verifier = (
        PolicyBuilder()
        .store(CertificateStore(list(roots)))
        .time(now)
        .extension_policies(ca_policy=_CA_POLICY, ee_policy=_LEAF_POLICY)
        .build_client_verifier()
    )
    try:
        verifier.verify(leaf, chain[1:])
    except VerificationError as e:
        reason = " ".join(str(e).split())
        raise SignatureError(
            f"certificate {leaf.subject.rfc4514_string()} is not issued by a trusted CA ({reason})", source
        ) from e
    return leaf


def _must_be_ca(policy: object, cert: x509.Certificate, value: x509.BasicConstraints) -> None:
    if not value.ca:
        raise ValueError("issuer is not a CA")


def _may_sign_certificates(policy: object, cert: x509.Certificate, value: x509.KeyUsage | None) -> None:
    if value is not None and not value.key_cert_sign:
        raise ValueError("issuer's key usage does not allow signing certificates")


def _may_issue_code_signing(policy: object, cert: x509.Certificate, value: x509.ExtendedKeyUsage | None) -> None:
    """A CA whose extended key usage is limited (a TLS-only subordinate CA)
    issues no code-signing certificate: its limits bind what it issues, as
    the Web PKI and Windows read an intermediate's EKU."""
    if value is not None and not {ExtendedKeyUsageOID.CODE_SIGNING, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE} & set(
        value
    ):
        have = ", ".join(_USAGE_NAMES.get(u, u.dotted_string) for u in value) or "none"
        raise ValueError(f"CA {cert.subject.rfc4514_string()} is not for code signing (extended key usage: {have})")


def _may_sign_data(policy: object, cert: x509.Certificate, value: x509.KeyUsage | None) -> None:
    if value is not None and not value.digital_signature:
        raise ValueError("leaf's key usage does not allow digital signatures")


_CA_POLICY = (
    ExtensionPolicy.permit_all()
    .require_present(x509.BasicConstraints, Criticality.AGNOSTIC, _must_be_ca)
    .may_be_present(x509.KeyUsage, Criticality.AGNOSTIC, _may_sign_certificates)
    .may_be_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, _may_issue_code_signing)
)
_LEAF_POLICY = ExtensionPolicy.permit_all().may_be_present(x509.KeyUsage, Criticality.AGNOSTIC, _may_sign_data)


def alternative_names(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        return ()
    names: list[str] = []
    for kind in (x509.RFC822Name, x509.UniformResourceIdentifier, x509.DNSName):
        names.extend(str(v) for v in sans.get_values_for_type(kind))
    return tuple(names)


def oidc_issuers(cert: x509.Certificate) -> set[str]:
    found = set()
    for ext in cert.extensions:
        if ext.oid in (_OIDC_ISSUER_V1, _OIDC_ISSUER_V2) and isinstance(ext.value, x509.UnrecognizedExtension):
            raw = ext.value.value
            if ext.oid == _OIDC_ISSUER_V2 and len(raw) >= 2 and raw[0] == 0x0C and raw[1] == len(raw) - 2:
                raw = raw[2:]  # DER UTF8String of under 128 bytes
            try:
                found.add(raw.decode("utf-8"))
            except UnicodeDecodeError:
                continue
    return found
