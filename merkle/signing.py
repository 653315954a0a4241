"""Keys, signing and signature checks, with algorithms fixed by the verifier.

Allowed signature algorithms (never read from a bundle): ECDSA on P-256 with
SHA-256, P-384 with SHA-384, P-521 with SHA-512 (DER signatures, as OpenSSF
model-signing writes them), and Ed25519.  A key of any other type is refused
when it is loaded.  A key's id is the hex SHA-256 of its PEM public key, the
`hint` model-signing puts in its bundles; it helps pick a key and is never
a trust decision.
"""

from __future__ import annotations

import datetime
import getpass
import hashlib
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from .envelope import Bundle
from .errors import FormatError, SignatureError, UsageError
from .sources.local import read_capped, write_atomic

KeyType = Literal["ecdsa-p256", "ecdsa-p384", "ed25519"]
KEY_TYPES: tuple[str, ...] = get_args(KeyType)
PASSPHRASE_ENV = "MERKLE_KEY_PASSPHRASE"
MAX_KEY_BYTES = 1 << 20
PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey

_EC_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "secp256r1": hashes.SHA256,
    "secp384r1": hashes.SHA384,
    "secp521r1": hashes.SHA512,
}


def _check_public(key: object, where: str) -> PublicKey:
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in _EC_HASHES:
        return key
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    kind = key.curve.name if isinstance(key, ec.EllipticCurvePublicKey) else type(key).__name__
    raise SignatureError(f"key type {kind} is not allowed (ECDSA P-256/P-384/P-521 or Ed25519 only)", where)


def algorithm_name(key: PublicKey) -> str:
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "ed25519"
    return {"secp256r1": "ecdsa-p256-sha256", "secp384r1": "ecdsa-p384-sha384", "secp521r1": "ecdsa-p521-sha512"}[
        key.curve.name
    ]


def public_pem(key: PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_id(key: PublicKey) -> str:
    """Hex SHA-256 of the PEM public key (model-signing's `hint`)."""
    return hashlib.sha256(public_pem(key)).hexdigest()


def sign_bytes(key: PrivateKey, data: bytes) -> bytes:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(data)
    return key.sign(data, ec.ECDSA(_EC_HASHES[key.curve.name]()))


def signature_ok(key: PublicKey, signature: bytes, data: bytes) -> bool:
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, data)
        else:
            key.verify(signature, data, ec.ECDSA(_EC_HASHES[key.curve.name]()))
        return True
    except InvalidSignature:
        return False


# -- keys on disk --------------------------------------------------------------


def generate(kind: KeyType = "ecdsa-p256") -> PrivateKey:
    if kind == "ecdsa-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "ecdsa-p384":
        return ec.generate_private_key(ec.SECP384R1())
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise UsageError(f"unknown key type {kind!r} (expected one of: {', '.join(KEY_TYPES)})")


def write_keypair(path: str, key: PrivateKey, passphrase: bytes | None = None) -> None:
    """Write PATH (private, mode 0600) and PATH.pub; never overwrite either."""
    for p in (path, path + ".pub"):
        if os.path.lexists(p):
            raise UsageError("already exists; not overwriting a key", p)
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    )
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    write_atomic(path, private, mode=0o600)
    write_atomic(path + ".pub", public_pem(key.public_key()))


def passphrase_from_environment(prompt: str, confirm: bool = False) -> bytes | None:
    """The passphrase from $MERKLE_KEY_PASSPHRASE, else from a prompt when
    stdin is a terminal; None when neither is available (never blocks)."""
    value = os.environ.get(PASSPHRASE_ENV)
    if value is not None:
        return value.encode("utf-8")
    if not sys.stdin.isatty():
        return None
    first = getpass.getpass(prompt)
    if confirm and getpass.getpass("Repeat passphrase: ") != first:
        raise UsageError("passphrases do not match")
    return first.encode("utf-8")


def load_private_key(path: str) -> PrivateKey:
    """A PEM private key (PKCS#8 or traditional OpenSSL), asking for the
    passphrase only if the key turns out to be encrypted."""
    data = read_capped(path, MAX_KEY_BYTES)
    try:
        try:
            key = serialization.load_pem_private_key(data, None)
        except TypeError:  # encrypted: cryptography wants a password
            passphrase = passphrase_from_environment(f"Passphrase for {path}: ")
            if passphrase is None:
                raise UsageError(f"key is encrypted: set {PASSPHRASE_ENV} (stdin is not a terminal)", path) from None
            try:
                key = serialization.load_pem_private_key(data, passphrase)
            except (ValueError, TypeError) as e:
                raise FormatError("wrong passphrase, or not a PEM private key", path) from e
    except (ValueError, UnsupportedAlgorithm) as e:
        raise FormatError("not a PEM private key", path) from e
    if not isinstance(key, (ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)):
        raise SignatureError(f"key type {type(key).__name__} is not allowed", path)
    _check_public(key.public_key(), path)
    return key


def load_public_key(path: str) -> PublicKey:
    data = read_capped(path, MAX_KEY_BYTES)
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as e:
        raise FormatError("not a PEM public key", path) from e
    return _check_public(key, path)


def load_certificates(paths: Sequence[str]) -> list[x509.Certificate]:
    certs = []
    for p in paths:
        try:
            certs.extend(x509.load_pem_x509_certificates(read_capped(p, MAX_KEY_BYTES)))
        except ValueError as e:
            raise FormatError("not PEM certificates", p) from e
    return certs


# -- trust ---------------------------------------------------------------------


@dataclass(frozen=True)
class Signer:
    """Who signed: the key id of the trusted key (or of the leaf certificate's
    key) that verified the signature."""

    key_id: str
    algorithm: str
    subject: str = ""


@dataclass(frozen=True)
class TrustPolicy:
    """Whom to believe: public keys, or CA certificates for X.509 chains.
    `threshold` distinct signers are required across the bundles."""

    keys: tuple[PublicKey, ...] = ()
    roots: tuple[x509.Certificate, ...] = ()
    threshold: int = 1

    def __post_init__(self) -> None:
        if not self.keys and not self.roots:
            raise UsageError("no trusted key or CA given (use --key PUB or --ca CERT)")
        if self.threshold < 1:
            raise UsageError("threshold must be at least 1")
        available = len({key_id(k) for k in self.keys}) + (len(self.roots) and self.threshold)
        if self.threshold > available and not self.roots:
            raise UsageError(f"threshold {self.threshold} is more than the {available} distinct trusted keys")

    def check(self, bundle: Bundle, source: str) -> Signer:
        """Step 1 of verification: who signed, before any payload field is read."""
        data = bundle.signed_bytes()
        if bundle.certificates:
            if not self.roots:
                raise SignatureError("bundle is signed with a certificate; verify it with --ca", source)
            leaf = _verify_chain(bundle.certificates, self.roots, source)
            key = _check_public(leaf.public_key(), source)
            if not signature_ok(key, bundle.signature, data):
                raise SignatureError("signature does not verify with the certificate's key", source)
            return Signer(key_id(key), algorithm_name(key), leaf.subject.rfc4514_string())
        for key in self.keys:
            if signature_ok(key, bundle.signature, data):
                return Signer(key_id(key), algorithm_name(key))
        if not self.keys:
            raise SignatureError("bundle is signed with a bare key; verify it with --key", source)
        raise SignatureError("signature does not verify with any trusted key", source)


def _verify_chain(chain_der: Sequence[bytes], roots: Sequence[x509.Certificate], source: str) -> x509.Certificate:
    """Leaf first; each certificate issued by the next, the last by a trusted
    root; all valid now; issuers are CAs.  Returns the leaf."""
    try:
        chain = [x509.load_der_x509_certificate(c) for c in chain_der]
    except ValueError as e:
        raise SignatureError("bundle certificate is not valid DER", source) from e
    now = datetime.datetime.now(datetime.timezone.utc)
    for cert in chain:
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise SignatureError(f"certificate {cert.subject.rfc4514_string()} is not valid now", source)
    roots_by_der = {r.public_bytes(serialization.Encoding.DER) for r in roots}
    for i, cert in enumerate(chain):
        if cert.public_bytes(serialization.Encoding.DER) in roots_by_der:
            return chain[0]  # reached a trusted root inside the chain
        issuers = list(roots) + chain[i + 1 : i + 2]
        for issuer in issuers:
            if issuer is not cert and _issued_by(cert, issuer):
                if issuer in roots:
                    return chain[0]
                break
        else:
            raise SignatureError(f"certificate {cert.subject.rfc4514_string()} is not issued by a trusted CA", source)
    raise SignatureError("certificate chain does not end at a trusted CA", source)


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        constraints = issuer.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return False
    if not constraints.ca:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
        return True
    except (ValueError, TypeError, InvalidSignature):
        return False
