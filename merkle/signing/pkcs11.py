"""Keys on PKCS#11 tokens (hardware tokens, HSMs, SoftHSM), named by RFC 7512
URIs: `pkcs11:token=LABEL;object=LABEL?module-path=/path/to/module.so&pin-source=file:/path/to/pin`.

Signing happens on the token (CKM_ECDSA over the curve's hash, the raw r||s
answer DER-encoded as key files' signatures are; CKM_EDDSA for Ed25519); the
private key never leaves it.  The public key is read from the token's public
key object (or certificate) of the same label and id.  A PIN comes from
`pin-source=file:...`, $MERKLE_PKCS11_PIN or a prompt on a terminal, never
from the command line: `pin-value=` is refused.  The binding is
python-pkcs11 (the `pkcs11` extra): a typed object API over the module with
the EC helpers (EC_POINT/EC_PARAMS to SubjectPublicKeyInfo, r||s to DER)
that PyKCS11, a thin SWIG wrapper, leaves to the caller.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import unquote

from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import load_der_public_key

from merkle.errors import KeyWarning, UsageError, install_hint
from merkle.signing.keys import MAX_KEY_BYTES, PublicKey, RemoteKey, check_public, curve_hash

PIN_ENV: Final = "MERKLE_PKCS11_PIN"
MODULE_ENV: Final = "MERKLE_PKCS11_MODULE"
PATH_ATTRIBUTES: Final = frozenset({"token", "object", "id", "type", "serial", "manufacturer", "model", "slot-id"})
QUERY_ATTRIBUTES: Final = frozenset({"module-path", "pin-source", "pin-value"})
"""The attributes merkle matches on (RFC 7512's others, such as slot-description,
library-* or module-name, are refused: an attribute that is accepted and not
checked would let a URI name one key and sign with another)."""
_ED25519_OID: Final = bytes.fromhex("06032b6570")  # 1.3.101.112, DER


@dataclass(frozen=True)
class Pkcs11Uri:
    """An RFC 7512 URI's attributes, percent-decoded: `path` (what
    identifies the token and the object) and `query` (how to reach them)."""

    path: dict[str, str]
    query: dict[str, str]
    text: str

    @classmethod
    def parse(cls, text: str) -> Pkcs11Uri:
        if not text.startswith("pkcs11:"):
            raise UsageError("not a PKCS#11 URI (pkcs11:...)", text)
        body, _, query = text[len("pkcs11:") :].partition("?")
        path = cls._pairs(body, ";", PATH_ATTRIBUTES, text)
        pairs = cls._pairs(query, "&", QUERY_ATTRIBUTES, text)
        if "pin-value" in pairs:
            raise UsageError(
                f"a PIN in the URI is on the command line, where every user of this machine can read it: "
                f"use pin-source=file:PATH, or ${PIN_ENV}",
                _shown(text),
            )
        if "object" not in path and "id" not in path:
            raise UsageError("name the key: object=LABEL or id=%XX..", _shown(text))
        if path.get("type", "private") != "private":
            raise UsageError("a signing key is type=private (or no type)", _shown(text))
        return cls(path, pairs, text)

    @staticmethod
    def _pairs(text: str, separator: str, known: frozenset[str], uri: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for part in text.split(separator) if text else []:
            name, eq, value = part.partition("=")
            if not eq or not name:
                raise UsageError(f"attribute {name or part!r} has no value", _shown(uri))
            if name not in known:
                # RFC 7512 2.3: an attribute a consumer does not know must not match anything.
                raise UsageError(f"unknown PKCS#11 URI attribute {name!r}", _shown(uri))
            if name in out:
                raise UsageError(f"attribute {name!r} given twice", _shown(uri))
            if name == "id" and not re.fullmatch(r"(%[0-9A-Fa-f]{2}|[A-Za-z0-9._~-])*", value):
                raise UsageError("attribute 'id' is not percent-encoded bytes (id=%01%02...)", _shown(uri))
            try:
                out[name] = unquote(value, errors="strict") if name != "id" else value
            except UnicodeDecodeError:
                raise UsageError(f"attribute {name!r} is not percent-encoded UTF-8", _shown(uri)) from None
        return out

    @property
    def key_id(self) -> bytes | None:
        """The CKA_ID: percent-encoded bytes (`id=%01%02`)."""
        raw = self.path.get("id")
        if raw is None:
            return None
        from urllib.parse import unquote_to_bytes

        return unquote_to_bytes(raw)


def _shown(uri: str) -> str:
    """The URI for messages, with the value of every attribute merkle does
    not read left out: a PIN given in the URI, under any spelling, is
    refused and never repeated into a log."""
    import re

    shown = {"module-path", "pin-source", *PATH_ATTRIBUTES}

    def mask(m: re.Match[str]) -> str:
        return m[0] if m[2] in shown else f"{m[1]}{m[2]}=..."

    return re.sub(r"([;?&:])([^;?&=]*)=[^;?&]*", mask, uri)


def open_pkcs11_key(uri: str) -> Pkcs11Key:
    """The private key `uri` names, on its token, logged in; UsageError (one
    line, exit 2) for everything a user can get wrong: no module, no such
    token or object, a wrong PIN, a key of a type merkle does not sign with."""
    try:
        import pkcs11
        from pkcs11 import exceptions as p11e
    except ImportError as e:
        raise UsageError(f"signing with a PKCS#11 token needs python-pkcs11: {install_hint('pkcs11')}") from e
    parsed = Pkcs11Uri.parse(uri)
    uri = _shown(uri)
    module = parsed.query.get("module-path") or os.environ.get(MODULE_ENV)
    if not module:
        raise UsageError(f"which PKCS#11 module? add ?module-path=/path/to/module.so, or set ${MODULE_ENV}", uri)
    try:
        lib = pkcs11.lib(module)
    except p11e.PKCS11Error as e:
        raise UsageError(f"cannot load the PKCS#11 module {module}: {_reason(e)}", uri) from e
    token = _token(lib, parsed, p11e)
    pin = _pin(parsed, token.label)
    try:
        session = token.open(user_pin=pin)
    except p11e.PinIncorrect as e:
        raise UsageError(f"wrong PIN for token {token.label!r}", uri) from e
    except p11e.PinLocked as e:
        raise UsageError(f"the PIN of token {token.label!r} is locked", uri) from e
    except p11e.PKCS11Error as e:
        raise UsageError(f"cannot log in to token {token.label!r}: {_reason(e)}", uri) from e
    try:
        key, public = _objects(session, parsed, pkcs11, p11e)
        try:
            always = bool(key[pkcs11.Attribute.ALWAYS_AUTHENTICATE])
        except p11e.PKCS11Error:
            always = False
        return Pkcs11Key(uri, session, key, public, pin if always else None)
    except BaseException:
        session.close()
        raise


def _reason(e: BaseException) -> str:
    return str(e).strip() or type(e).__name__


def _token(lib: Any, uri: Pkcs11Uri, p11e: Any) -> Any:
    match = {"token": "label", "serial": "serial", "manufacturer": "manufacturer_id", "model": "model"}
    wanted = {attr: uri.path[name] for name, attr in match.items() if name in uri.path}
    found = []
    initialized = pkcs11_flag("TOKEN_INITIALIZED")
    try:
        for token in lib.get_tokens():
            if initialized and not token.flags & initialized:
                continue  # an empty slot's token (SoftHSM always shows one): it holds no key
            if "slot-id" in uri.path and str(token.slot.slot_id) != uri.path["slot-id"]:
                continue
            values = {
                "label": token.label,
                "serial": token.serial.decode(errors="replace") if isinstance(token.serial, bytes) else token.serial,
                "manufacturer_id": token.manufacturer_id,
                "model": token.model,
            }
            if all(str(values[a]).strip() == v for a, v in wanted.items()):
                found.append(token)
    except p11e.PKCS11Error as e:
        raise UsageError(f"cannot list the module's tokens: {_reason(e)}", uri.text) from e
    if not found:
        named = {**wanted, **({"slot-id": uri.path["slot-id"]} if "slot-id" in uri.path else {})}
        what = ", ".join(f"{k}={v!r}" for k, v in named.items()) or "any"
        raise UsageError(f"no token matching {what}", uri.text)
    if len(found) > 1:
        raise UsageError(f"{len(found)} tokens match: name one with token=, serial=...", uri.text)
    return found[0]


def _pin(uri: Pkcs11Uri, label: str) -> str:
    source = uri.query.get("pin-source")
    if source is not None:
        return _pin_file(source, uri.text)
    value = os.environ.get(PIN_ENV)
    if value is not None:
        return value
    if not sys.stdin.isatty():
        raise UsageError(f"token {label!r} needs a PIN: pin-source=file:PATH in the URI, or ${PIN_ENV}", uri.text)
    import getpass

    return getpass.getpass(f"PIN for token {label!r}: ")


def _pin_file(source: str, shown: str) -> str:
    """The PIN in the file a `pin-source` names: a local absolute path
    (`file:/P`, `file:///P`, `file://localhost/P`, RFC 8089), a regular file
    no other user can write; one that others can read is used with a
    warning (container secrets are often mounted 0444)."""
    import stat
    import warnings
    from urllib.parse import urlsplit

    from merkle.errors import SourceError
    from merkle.source.local import open_regular

    parts = urlsplit(source)
    path = unquote(parts.path)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
        raise UsageError("pin-source must name a local file: pin-source=file:/absolute/path", shown)
    if not os.path.isabs(path):
        raise UsageError(
            "pin-source must be an absolute path (file:/absolute/path), never the working directory's", shown
        )
    fd, st = open_regular(path)
    try:
        if st.st_uid not in (os.geteuid(), 0):
            raise UsageError("the PIN file belongs to another user", path)
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise UsageError("the PIN file can be written by other users: chmod 600 it", path)
        if st.st_mode & (stat.S_IRGRP | stat.S_IROTH):
            warnings.warn(KeyWarning(f"{path}: the PIN file can be read by other users (chmod 600 it)"), stacklevel=2)
        data = os.read(fd, MAX_KEY_BYTES + 1)
    except OSError as e:
        raise SourceError(e.strerror or str(e), path) from e
    finally:
        os.close(fd)
    if len(data) > MAX_KEY_BYTES:
        raise UsageError("the PIN file is too large", path)
    try:
        return data.decode("utf-8", errors="strict").rstrip("\r\n")
    except UnicodeDecodeError:
        raise UsageError("the PIN file is not UTF-8 text", path) from None


def pkcs11_flag(name: str) -> int:
    import pkcs11

    return int(getattr(pkcs11.TokenFlag, name, 0))


def _objects(session: Any, uri: Pkcs11Uri, pkcs11: Any, p11e: Any) -> tuple[Any, PublicKey]:
    """The private key object and its public key: from the public key
    object, else the certificate, with the key's CKA_ID (tokens such as a
    YubiKey's PIV module label each object its own way), or with its label
    when it has no id; sign_bytes checks the pair whenever it signs."""
    attrs: dict[Any, Any] = {}
    if "object" in uri.path:
        attrs[pkcs11.Attribute.LABEL] = uri.path["object"]
    if uri.key_id is not None:
        attrs[pkcs11.Attribute.ID] = uri.key_id
    ObjectClass = pkcs11.ObjectClass
    try:
        private = list(session.get_objects({**attrs, pkcs11.Attribute.CLASS: ObjectClass.PRIVATE_KEY}))
    except p11e.PKCS11Error as e:
        raise UsageError(f"cannot search the token: {_reason(e)}", uri.text) from e
    if not private:
        raise UsageError("no private key on the token matches object=/id=", uri.text)
    if len(private) > 1:
        raise UsageError(f"{len(private)} private keys match: name one with object= and id=", uri.text)
    key = private[0]
    try:
        key_id = bytes(key[pkcs11.Attribute.ID])
    except p11e.PKCS11Error:
        key_id = b""
    same = {pkcs11.Attribute.ID: key_id} if key_id else {pkcs11.Attribute.LABEL: key.label}
    try:
        public = list(session.get_objects({**same, pkcs11.Attribute.CLASS: ObjectClass.PUBLIC_KEY}))
        if len(public) == 1:
            return key, _public_of(public[0], pkcs11, uri.text)
        certificates = list(session.get_objects({**same, pkcs11.Attribute.CLASS: ObjectClass.CERTIFICATE}))
        if len(certificates) == 1:
            from cryptography import x509

            cert = x509.load_der_x509_certificate(bytes(certificates[0][pkcs11.Attribute.VALUE]))
            return key, _allowed(cert.public_key(), uri.text)
    except (p11e.PKCS11Error, ValueError) as e:
        raise UsageError(f"cannot read the key's public key from the token: {_reason(e)}", uri.text) from e
    if len(public) > 1:
        raise UsageError(
            f"{len(public)} public keys share the key's id (or label): which is its own is unknown", uri.text
        )
    raise UsageError(
        "the token holds no public key or certificate of the key's id (or label): the public key cannot be read",
        uri.text,
    )


def _public_of(obj: Any, pkcs11: Any, where: str) -> PublicKey:
    from pkcs11.util.ec import encode_ec_public_key

    kind = obj.key_type
    if kind == pkcs11.KeyType.EC:
        try:
            der = encode_ec_public_key(obj)
        except Exception as e:  # the EC helpers know the named curves of their tables only
            raise UsageError(f"the key's curve is not one merkle signs with: {_reason(e)}", where) from e
        return _allowed(load_der_public_key(der), where)
    if kind == getattr(pkcs11.KeyType, "EC_EDWARDS", None):
        params = bytes(obj[pkcs11.Attribute.EC_PARAMS])
        if params != _ED25519_OID and b"edwards25519" not in params:
            raise UsageError("an Edwards key of another curve than Ed25519 is not allowed", where)
        point = bytes(obj[pkcs11.Attribute.EC_POINT])
        if len(point) == 34 and point[:2] == b"\x04\x20":  # a DER OCTET STRING, as most modules give it
            point = point[2:]
        if len(point) != 32:
            raise UsageError(f"an Ed25519 public key of {len(point)} bytes", where)
        return ed25519.Ed25519PublicKey.from_public_bytes(point)
    name = getattr(kind, "name", kind)
    raise UsageError(f"key type {name} is not allowed (ECDSA P-256/P-384/P-521 or Ed25519 only)", where)


def _allowed(key: object, where: str) -> PublicKey:
    """check_public, as a usage error: a token key of a type merkle does not
    sign with is bad input (K3), not a signature that failed."""
    from merkle.errors import SignatureError

    try:
        return check_public(key, where)
    except SignatureError as e:
        raise UsageError(e.message, where) from None


class Pkcs11Key(RemoteKey):
    """A private key on a token, in a logged-in session kept for the command.
    `pin`: kept only for a key that wants it for every signature
    (CKA_ALWAYS_AUTHENTICATE: smart cards' signature keys)."""

    def __init__(self, uri: str, session: Any, key: Any, public: PublicKey, pin: str | None = None) -> None:
        super().__init__(uri, public, session.close)
        self._key = key
        self._pin = pin

    def sign_data(self, data: bytes) -> bytes:
        import pkcs11
        from pkcs11 import exceptions as p11e
        from pkcs11.util.ec import encode_ecdsa_signature

        public = self._public
        try:
            login = {"pin": self._pin} if self._pin is not None else {}
            if isinstance(public, ed25519.Ed25519PublicKey):
                return bytes(self._key.sign(data, mechanism=pkcs11.Mechanism.EDDSA, **login))
            assert isinstance(public, ec.EllipticCurvePublicKey)
            digest = hashlib.new(curve_hash(public).name, data).digest()
            raw = bytes(self._key.sign(digest, mechanism=pkcs11.Mechanism.ECDSA, **login))
        except p11e.PKCS11Error as e:
            raise UsageError(f"the token did not sign: {_reason(e)}", self.name) from e
        return bytes(encode_ecdsa_signature(raw))
