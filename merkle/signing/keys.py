"""Keys, signing and signature checks, with algorithms fixed by the verifier.

Allowed signature algorithms (never read from a bundle): ECDSA on P-256 with
SHA-256, P-384 with SHA-384, P-521 with SHA-512 (DER signatures, as OpenSSF
model-signing writes them), and Ed25519.  A key of any other type is refused
when it is loaded.  A key's id is the hex SHA-256 of its PEM public key, the
`hint` model-signing puts in its bundles; it helps pick a key and is never
a trust decision.
"""

from __future__ import annotations

import abc
import hashlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal, get_args

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from merkle.errors import FormatError, SignatureError, UsageError
from merkle.source.local import read_capped, write_atomic

if TYPE_CHECKING:
    from cryptography import x509

KeyType = Literal["ecdsa-p256", "ecdsa-p384", "ecdsa-p521", "ed25519"]
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


def check_public(key: object, where: str) -> PublicKey:
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


class RemoteKey(abc.ABC):
    """A private key kept where it cannot be read (a PKCS#11 token, a cloud
    KMS): it signs and tells its public key, and nothing of it is ever on
    this machine's disk (merkle.signing.pkcs11, merkle.signing.kms).
    `name`: what messages call it (its URI, without secrets); `public`: its
    public key, of an allowed type (check_public); `close`: what lets go of
    the session or client, called by `close()` or when the key is collected."""

    def __init__(self, name: str, public: PublicKey, close: Callable[[], object]) -> None:
        import weakref

        self.name = name
        self._public = public
        self._closer = weakref.finalize(self, close)

    def public_key(self) -> PublicKey:
        return self._public

    @abc.abstractmethod
    def sign_data(self, data: bytes) -> bytes:
        """A signature of `data` as sign_bytes makes one with a key file:
        ECDSA with the curve's hash, DER-encoded, or Ed25519."""

    def close(self) -> None:
        """Let go of the session or client (idempotent)."""
        self._closer()

    def __enter__(self) -> RemoteKey:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


SigningKey = PrivateKey | RemoteKey
"""What signs: a key file's private key, or a key that stays in its token or service."""


def curve_hash(key: ec.EllipticCurvePublicKey) -> hashes.HashAlgorithm:
    """The hash ECDSA uses with this key's curve (SHA-256, -384, -512)."""
    return _EC_HASHES[key.curve.name]()


def sign_bytes(key: SigningKey, data: bytes) -> bytes:
    if isinstance(key, RemoteKey):
        # A token or a service answers with bytes of its own: they are a
        # signature of `data` by this key only if they verify (a wrong
        # mechanism, a KMS that hashed a digest again, a swapped key).
        signature = key.sign_data(data)
        if not signature_ok(key.public_key(), signature, data):
            raise SignatureError("the signature it made does not verify with its public key", key.name)
        return signature
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(data)
    return key.sign(data, ec.ECDSA(_EC_HASHES[key.curve.name]()))


def legacy_signature(key: PublicKey, signature: bytes, data: bytes) -> str | None:
    """model-signing 0.2's signatures (over envelope.legacy_pae): ECDSA with
    the curve's hash or, as its certificate signer did on every curve,
    SHA-256.  The algorithm that verified, named as algorithm_name names
    them, else None."""
    if not isinstance(key, ec.EllipticCurvePublicKey):
        return None
    choices: tuple[type[hashes.HashAlgorithm], ...] = (_EC_HASHES[key.curve.name], hashes.SHA256)
    for algorithm in dict.fromkeys(choices):
        try:
            key.verify(signature, data, ec.ECDSA(algorithm()))
            return f"{algorithm_name(key).rsplit('-', 1)[0]}-{algorithm.name}"
        except InvalidSignature:
            pass
    return None


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
    if kind == "ecdsa-p521":
        return ec.generate_private_key(ec.SECP521R1())
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
    import getpass  # only to prompt (it loads the terminal's modules)

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
    check_public(key.public_key(), path)
    return key


def load_public_key(path: str) -> PublicKey:
    data = read_capped(path, MAX_KEY_BYTES)
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as e:
        if b"-----BEGIN CERTIFICATE-----" in data:
            # Trusting the key inside would skip the chain, its validity and its usage: a signature
            # question, answered as model_signing answers it (exit 1), with what to do instead.
            raise SignatureError(
                "a certificate, not a public key: verify certificate-signed bundles with a trusted CA", path
            ) from e
        raise FormatError("not a PEM public key", path) from e
    return check_public(key, path)


def load_certificates(paths: Sequence[str]) -> list[x509.Certificate]:
    if not paths:
        return []  # no --ca, --cert: cryptography's X.509, its largest part, stays unloaded
    from cryptography import x509

    certs = []
    for p in paths:
        try:
            certs.extend(x509.load_pem_x509_certificates(read_capped(p, MAX_KEY_BYTES)))
        except ValueError as e:
            raise FormatError("not PEM certificates", p) from e
    return certs
