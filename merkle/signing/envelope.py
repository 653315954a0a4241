"""DSSE envelopes, in-toto statements and Sigstore bundle JSON.

Signed bytes stay opaque: a Bundle keeps the payload exactly as it was
signed, and nothing here re-serializes it.  Parsing is strict and capped;
`Bundle.from_json` checks only the shape (it cannot know whom to trust):
signatures are checked in `signing.py` before the payload is parsed.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any, Final

from merkle.errors import BundleError, FormatError
from merkle.format import strictjson
from merkle.source.local import read_capped

BUNDLE_MEDIA_TYPE: Final = "application/vnd.dev.sigstore.bundle.v0.3+json"
PAYLOAD_TYPE: Final = "application/vnd.in-toto+json"
STATEMENT_TYPE: Final = "https://in-toto.io/Statement/v1"
MAX_BUNDLE_BYTES: Final = 256 << 20
_BUNDLE_KEYS: Final = {"mediaType", "verificationMaterial", "dsseEnvelope"}
_OPTIONAL_MATERIAL: Final = {"tlogEntries", "timestampVerificationData"}


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 Pre-Authentication Encoding: what is actually signed."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


LEGACY_PREDICATE_TYPE: Final = "https://model_signing/Digests/v0.1"
"""The statement of model-signing 0.2 (OMS 11: its files are the subjects)."""
MAX_LEGACY_PAYLOAD: Final = 16 << 20
"""0.2's encoding is tried on payloads up to this size (a file list; its
repr costs up to four times the payload, for each trusted key)."""


def legacy_pae(payload_type: str, payload: bytes) -> bytes:
    """What model-signing 0.2 signed instead of the PAE (a bug it kept for
    compatibility, OMS 11.1): "DSSEV1", and the payload as Python's repr of
    bytes.  Accepted only for statements of LEGACY_PREDICATE_TYPE (rule O11)."""
    return f"DSSEV1 {len(payload_type)} {payload_type} {len(payload)} {payload!r}".encode()


def b64decode(value: Any, where: str) -> bytes:
    if not isinstance(value, str):
        raise BundleError(f"{where} is not a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as e:
        raise BundleError(f"{where} is not valid base64") from e


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass(frozen=True)
class Bundle:
    """A Sigstore v0.3 bundle holding one DSSE envelope with one signature.

    `key_hint` is the publicKey hint (hex SHA-256 of the signer's PEM public
    key) and `certificates` the DER chain, leaf first; either may be empty.
    Neither is trusted: they only help pick a key or build a chain."""

    payload: bytes
    payload_type: str
    signature: bytes
    keyid: str = ""
    key_hint: str = ""
    certificates: tuple[bytes, ...] = ()

    def signed_bytes(self) -> bytes:
        return pae(self.payload_type, self.payload)

    def legacy_signed_bytes(self) -> bytes | None:
        """legacy_pae of a payload that names model-signing 0.2's statement
        type (a hint only: the statement parsed after the signature checked
        must be of that type), else None."""
        if len(self.payload) > MAX_LEGACY_PAYLOAD or LEGACY_PREDICATE_TYPE.encode() not in self.payload:
            return None
        return legacy_pae(self.payload_type, self.payload)

    def to_json(self) -> bytes:
        material: dict[str, Any]
        if self.certificates:
            chain = [{"rawBytes": b64encode(c)} for c in self.certificates]
            material = {"x509CertificateChain": {"certificates": chain}, "tlogEntries": []}
        else:
            material = {"publicKey": {"hint": self.key_hint}, "tlogEntries": []}
        doc = {
            "mediaType": BUNDLE_MEDIA_TYPE,
            "verificationMaterial": material,
            "dsseEnvelope": {
                "payload": b64encode(self.payload),
                "payloadType": self.payload_type,
                "signatures": [{"sig": b64encode(self.signature), "keyid": self.keyid}],
            },
        }
        return (strictjson.dumps(doc) + "\n").encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes, source: str = "bundle") -> Bundle:
        """Check the bundle's shape; BundleError (naming `source`) otherwise:
        malformed JSON included, since a bundle is trusted or it is not."""
        try:
            return cls._from_doc(strictjson.loads(data, source, MAX_BUNDLE_BYTES))
        except FormatError as e:
            raise BundleError(e.message, source) from e

    @classmethod
    def _from_doc(cls, doc: Any) -> Bundle:
        if not isinstance(doc, dict):
            raise BundleError("bundle is not a JSON object")
        if doc.get("mediaType") != BUNDLE_MEDIA_TYPE:
            raise BundleError(f"unsupported bundle mediaType {doc.get('mediaType')!r} (expected {BUNDLE_MEDIA_TYPE})")
        unknown = set(doc) - _BUNDLE_KEYS
        if unknown:
            raise BundleError(f"unknown bundle key {sorted(unknown)[0]!r}")
        if "dsseEnvelope" not in doc:
            raise BundleError("bundle has no dsseEnvelope (message signatures are not supported)")
        hint, certs = _material(doc.get("verificationMaterial"))
        env = doc["dsseEnvelope"]
        if not isinstance(env, dict) or set(env) != {"payload", "payloadType", "signatures"}:
            raise BundleError("dsseEnvelope must have exactly payload, payloadType and signatures")
        if env["payloadType"] != PAYLOAD_TYPE:
            raise BundleError(f"unsupported payloadType {env['payloadType']!r} (expected {PAYLOAD_TYPE})")
        sigs = env["signatures"]
        if not isinstance(sigs, list) or len(sigs) != 1:
            count = len(sigs) if isinstance(sigs, list) else "no"
            raise BundleError(f"envelope has {count} signatures; a bundle carries exactly one")
        sig = sigs[0]
        if not isinstance(sig, dict) or not {"sig"} <= set(sig) <= {"sig", "keyid"}:
            raise BundleError("signature entry must have 'sig' and optionally 'keyid'")
        keyid = sig.get("keyid")
        keyid = "" if keyid is None else keyid  # absent, "" or null: OMS 11.1 (older model-signing wrote null)
        if not isinstance(keyid, str):
            raise BundleError("signature keyid is not a string")
        signature = b64decode(sig["sig"], "signature")
        if not signature:
            raise BundleError("signature is empty")
        return cls(
            payload=b64decode(env["payload"], "payload"),
            payload_type=env["payloadType"],
            signature=signature,
            keyid=keyid,
            key_hint=hint,
            certificates=certs,
        )


def _material(material: Any) -> tuple[str, tuple[bytes, ...]]:
    if not isinstance(material, dict):
        raise BundleError("verificationMaterial is not an object")
    kinds = set(material) - _OPTIONAL_MATERIAL
    if len(kinds) != 1 or not kinds <= {"publicKey", "x509CertificateChain", "certificate"}:
        raise BundleError("verificationMaterial must hold exactly one of publicKey, x509CertificateChain, certificate")
    if not isinstance(material.get("tlogEntries", []), list):
        raise BundleError("tlogEntries is not a list")
    if "publicKey" in material:
        key = material["publicKey"]
        if isinstance(key, dict) and "rawBytes" in key:
            # model-signing before 1.1 (OMS 11.1): base64 of the signer's PEM key, and its keyDetails.  Like a
            # hint, never trusted: the signature is checked against the verifier's own keys.
            if set(key) - {"rawBytes", "keyDetails"} or not isinstance(key.get("keyDetails", ""), str):
                raise BundleError("publicKey must hold a string hint, or rawBytes and keyDetails")
            b64decode(key["rawBytes"], "publicKey rawBytes")
            return "", ()
        hint = key.get("hint", "") if isinstance(key, dict) else None
        if not isinstance(hint, str) or (isinstance(key, dict) and set(key) - {"hint"}):
            raise BundleError("publicKey must be an object with a string hint")
        return hint, ()
    if "certificate" in material:
        cert = material["certificate"]
        if not isinstance(cert, dict) or set(cert) != {"rawBytes"}:
            raise BundleError("certificate must be an object with rawBytes")
        return "", (b64decode(cert["rawBytes"], "certificate"),)
    chain = material["x509CertificateChain"]
    certs = chain.get("certificates") if isinstance(chain, dict) else None
    if not isinstance(certs, list) or not certs or set(chain) != {"certificates"}:
        raise BundleError("x509CertificateChain must hold a non-empty certificates list")
    out = []
    for i, c in enumerate(certs):
        if not isinstance(c, dict) or set(c) != {"rawBytes"}:
            raise BundleError(f"certificates[{i}] must be an object with rawBytes")
        out.append(b64decode(c["rawBytes"], f"certificates[{i}]"))
    return "", tuple(out)


def _manifest_at(text: str, pos: int) -> tuple[Any, int]:
    from merkle.format.manifest import MANIFEST_FIELDS

    return strictjson.object_at(text, pos, MANIFEST_FIELDS)


# A merkle statement carries its manifest in predicate.manifest: its file list
# is read by the manifest's own parser (format.manifest.files_at).
_STATEMENT_FIELDS: Final = {"predicate": lambda text, pos: strictjson.object_at(text, pos, {"manifest": _manifest_at})}


@dataclass(frozen=True)
class Statement:
    """A parsed in-toto Statement v1 (parse it only after its signature checked)."""

    subjects: tuple[tuple[str, dict[str, str]], ...]
    predicate_type: str
    predicate: dict[str, Any]

    @classmethod
    def from_payload(cls, payload: bytes, source: str = "statement") -> Statement:
        try:
            doc = strictjson.loads(payload, source, MAX_BUNDLE_BYTES, _STATEMENT_FIELDS)
        except FormatError as e:
            raise BundleError(e.message, source) from e
        if not isinstance(doc, dict) or set(doc) != {"_type", "subject", "predicateType", "predicate"}:
            raise BundleError("statement must have exactly _type, subject, predicateType, predicate", source)
        if doc["_type"] != STATEMENT_TYPE:
            raise BundleError(f"unsupported statement _type {doc['_type']!r}", source)
        subjects = []
        raw = doc["subject"]
        if not isinstance(raw, list) or not raw:
            raise BundleError("statement subject must be a non-empty list", source)
        for i, s in enumerate(raw):
            # in-toto's resource descriptor may carry annotations (model-signing 0.2 wrote some): never read
            if not isinstance(s, dict) or not {"name", "digest"} <= set(s) <= {"name", "digest", "annotations"}:
                raise BundleError(f"subject[{i}] must have a string name and a digest (and only annotations)", source)
            if not isinstance(s["name"], str) or not isinstance(s.get("annotations", {}), dict):
                raise BundleError(f"subject[{i}] must have a string name and a digest (and only annotations)", source)
            digest = s["digest"]
            if (
                not isinstance(digest, dict)
                or not digest
                or not all(isinstance(k, str) and isinstance(v, str) for k, v in digest.items())
            ):
                raise BundleError(f"subject[{i}].digest must map algorithm names to strings", source)
            subjects.append((s["name"], dict(digest)))
        if not isinstance(doc["predicateType"], str) or not isinstance(doc["predicate"], dict):
            raise BundleError("predicateType must be a string and predicate an object", source)
        return cls(tuple(subjects), doc["predicateType"], doc["predicate"])

    def to_payload(self) -> bytes:
        doc = {
            "_type": STATEMENT_TYPE,
            "subject": [{"name": n, "digest": d} for n, d in self.subjects],
            "predicateType": self.predicate_type,
            "predicate": self.predicate,
        }
        return strictjson.dumps(doc).encode("utf-8")


def read_bundle_bytes(path: str) -> bytes:
    """A bundle file's bytes, refused over the size cap before any decoding."""
    try:
        return read_capped(path, MAX_BUNDLE_BYTES)
    except FormatError as e:
        raise BundleError(e.message, path) from e


@dataclass(frozen=True)
class BundleFile:
    """A bundle as read from its file: shape-checked, not trusted yet.
    `data` are the bytes read (what the attestation store keeps), `path`
    the file (what errors name; its leaf sidecar and manifest lie beside it)."""

    bundle: Bundle
    data: bytes
    path: str

    @classmethod
    def read(cls, path: str) -> BundleFile:
        """Read and shape-check a bundle file (size capped before decoding)."""
        data = read_bundle_bytes(path)
        return cls(Bundle.from_json(data, path), data, path)


def read_bundle(path: str) -> Bundle:
    """Read and shape-check a bundle file (size capped before decoding)."""
    return BundleFile.read(path).bundle
