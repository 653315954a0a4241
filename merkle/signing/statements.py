"""Signed manifests: in-toto statements over a manifest, signed in DSSE
envelopes inside Sigstore bundles; and the parsing of a statement whose
signatures verified.  Whether they verified, and every other trust decision,
is merkle.signing.trust's.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from merkle.errors import BundleError, UsageError
from merkle.format.manifest import Manifest, Summary
from merkle.format.timestamps import format_time, parse_time
from merkle.signing.envelope import LEGACY_PREDICATE_TYPE, PAYLOAD_TYPE, Bundle, Statement, pae
from merkle.signing.keys import SigningKey, key_id, sign_bytes

if TYPE_CHECKING:
    from merkle.signing import oms
    from merkle.signing.trust import Signer

PREDICATE_TYPE: Final = "https://merkle.dev/manifest/v1"
SUBJECT_KEYS: Final = ("merkle-blake3", "merkle-sha256", "sha256")
"""The digest keys a policy result's or a BOM's subject may have: a merkle
root (digest_key) or an OpenSSF statement's subject digest."""


def digest_key(algorithm: str) -> str:
    """The subject digest key for a dataset root: `merkle-blake3`, `merkle-sha256`."""
    return f"merkle-{algorithm}"


@dataclass(frozen=True)
class MerkleSigned:
    """What a merkle statement signs: the dataset's summary (root and
    parameters) and, when known, its manifest: signed whole, or for a
    compact statement the one beside the bundle, once it matched."""

    summary: Summary
    manifest: Manifest | None = None

    def __post_init__(self) -> None:
        if self.manifest is not None and self.manifest.summary != self.summary:
            raise ValueError("a manifest the signed summary does not describe")


@dataclass(frozen=True)
class OmsSigned:
    """What an OpenSSF model-signing statement signs."""

    statement: oms.OmsStatement


RESULT_PREDICATE_TYPE: Final = "https://docs.oasis-open.org/sarif/sarif/v2.1.0"
"""A signed policy result: the predicate is a SARIF 2.1.0 log (docs/policy.md P11)."""


@dataclass(frozen=True)
class ResultSigned:
    """What a signed policy result signs: its subject (the tree the policy
    ran on, by its signed root) and the SARIF log."""

    digest_key: str
    digest: str
    log: dict[str, Any]


BOM_PREDICATE_TYPE: Final = "https://cyclonedx.org/bom"
"""A signed ML-BOM: the predicate is a CycloneDX BOM (in-toto's CycloneDX
predicate; docs/bom.md B9)."""


@dataclass(frozen=True)
class BomSigned:
    """What a signed BOM signs: its subject (the tree it describes, by its
    signed root) and the CycloneDX document."""

    digest_key: str
    digest: str
    bom: dict[str, Any]


IMAGE_PREDICATE_TYPE: Final = "https://merkle.dev/image/v1"
"""A signed container image: the subject is the image's manifest digest
(`sha256`, the digest other tools name an image by), the predicate the
models found inside it when it was signed (docs/images.md I11)."""

_DIGEST = re.compile("sha256:[0-9a-f]{64}")
_IMAGE_PATH = re.compile(r"(/(?!\.?/|\.?$)[^/]+)+")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class ImageModel:
    """A model the signer verified inside the image (against its own signed
    bundle) before signing it: where it is, the subject it was signed as,
    its root, and its size."""

    path: str
    name: str
    digest_key: str
    root: str
    files: int
    size: int
    version: int | None = None

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "path": self.path,
            "name": self.name,
            "digest": {self.digest_key: self.root},
            "files": self.files,
            "size": self.size,
        }
        if self.version is not None:
            doc["version"] = self.version
        return doc

    @classmethod
    def from_doc(cls, doc: object) -> ImageModel:
        keys = {"path", "name", "digest", "files", "size"}
        if not isinstance(doc, dict) or not keys <= set(doc) or not set(doc) <= keys | {"version"}:
            raise BundleError("an image's model has path, name, digest, files, size and optionally version")
        path, name, digest, files, size = (doc[k] for k in ("path", "name", "digest", "files", "size"))
        if not isinstance(path, str) or _IMAGE_PATH.fullmatch(path) is None or ".." in path.split("/"):
            raise BundleError("an image's model path is absolute and canonical (no '.', '..', '//' or trailing '/')")
        if not isinstance(name, str) or not name or _CONTROL.search(name + path):
            raise BundleError("an image's model has a subject name, and no control character in it or its path")
        if not isinstance(digest, dict) or len(digest) != 1:
            raise BundleError("an image's model has one digest")
        ((key, root),) = digest.items()
        if key not in (digest_key("blake3"), digest_key("sha256")) or not isinstance(root, str):
            raise BundleError("an image's model digest is a merkle root (merkle-blake3 or merkle-sha256)")
        if re.fullmatch("[0-9a-f]{64}", root) is None:
            raise BundleError("an image's model digest is 64 lower-case hex digits")
        counts = (files, size, doc.get("version", 1))
        if any(type(n) is not int or n < 0 for n in counts) or doc.get("version", 1) < 1:
            raise BundleError("an image's model has whole numbers of files and bytes, and a positive version")
        return cls(path, name, key, root, files, size, doc.get("version"))


@dataclass(frozen=True)
class ImageSigned:
    """What a signed image statement signs: the image's manifest digest
    (`sha256:<hex>`) and the models the signer found in it."""

    digest: str
    models: tuple[ImageModel, ...]


@dataclass(frozen=True)
class Verified:
    """A statement whose signatures checked out, parsed and shape-checked.
    `content` is either kind of statement; `manifest`, `summary` and `oms`
    read it."""

    name: str
    version: int | None
    """None when signed without one: no rollback record (merkle.signing.trust)."""
    expires: datetime.datetime | None
    signers: tuple[Signer, ...]
    payload: bytes
    content: MerkleSigned | OmsSigned | ResultSigned | BomSigned | ImageSigned
    signed: datetime.datetime | None = None
    """When the signer says it signed (the statement's `signed`, G7): as
    trustworthy as its key, no more; None when the statement does not say."""

    @property
    def manifest(self) -> Manifest | None:
        """A merkle statement's manifest; None for a compact one until the
        manifest beside the bundle is matched to it (`with_manifest`)."""
        return self.content.manifest if isinstance(self.content, MerkleSigned) else None

    @property
    def summary(self) -> Summary | None:
        """Set for every merkle statement."""
        return self.content.summary if isinstance(self.content, MerkleSigned) else None

    @property
    def oms(self) -> oms.OmsStatement | None:
        return self.content.statement if isinstance(self.content, OmsSigned) else None

    def with_manifest(self, manifest: Manifest) -> Verified:
        """This merkle statement with `manifest`, which its summary must describe."""
        if not isinstance(self.content, MerkleSigned):
            raise ValueError("an OpenSSF statement carries no merkle manifest")
        return dataclasses.replace(self, content=MerkleSigned(self.content.summary, manifest))

    @property
    def result(self) -> ResultSigned | None:
        """Set for a signed policy result (it describes no files)."""
        return self.content if isinstance(self.content, ResultSigned) else None

    @property
    def bom(self) -> BomSigned | None:
        """Set for a signed BOM (it describes files, it is not their manifest)."""
        return self.content if isinstance(self.content, BomSigned) else None

    @property
    def image(self) -> ImageSigned | None:
        """Set for a signed container image (it names a manifest digest, not files)."""
        return self.content if isinstance(self.content, ImageSigned) else None

    @property
    def root_hex(self) -> str:
        if isinstance(self.content, ImageSigned):
            return self.content.digest.split(":", 1)[1]
        if isinstance(self.content, MerkleSigned):
            return self.content.summary.root.hex()
        if isinstance(self.content, (ResultSigned, BomSigned)):
            return self.content.digest
        return self.content.statement.subject_digest.hex()

    @property
    def payload_digest(self) -> str:
        return hashlib.sha256(self.payload).hexdigest()


def statement(
    manifest: Manifest,
    name: str,
    version: int | None = None,
    expires: datetime.datetime | None = None,
    compact: bool = False,
    signed: datetime.datetime | None = None,
) -> Statement:
    """The statement to sign.  `compact` signs the summary (root and
    parameters) instead of every entry: small for a million files; the
    manifest then travels beside the bundle, authenticated by the root.
    `signed`: the signing time it records (G7; default now)."""
    if not name:
        raise UsageError("a signed manifest needs a subject name")
    if version is not None and version < 1:
        raise UsageError("version must be a positive integer")
    body = {"summary": manifest.summary.to_dict()} if compact else {"manifest": manifest.to_dict(raw_files=True)}
    predicate: dict[str, Any] = dict(body)
    if version is not None:
        predicate["version"] = version
    if expires is not None:
        predicate["expires"] = format_time(expires)
    predicate["signed"] = format_time(signed or datetime.datetime.now(datetime.timezone.utc))
    return Statement(((name, {digest_key(manifest.algorithm): manifest.root.hex()}),), PREDICATE_TYPE, predicate)


def sign_statement(stmt: Statement, key: SigningKey, certificates: Sequence[bytes] = ()) -> Bundle:
    payload = stmt.to_payload()
    return sign_payload(payload, key, certificates)


def sign_payload(payload: bytes, key: SigningKey, certificates: Sequence[bytes] = ()) -> Bundle:
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
    key: SigningKey,
    *,
    name: str,
    version: int | None = None,
    expires: datetime.datetime | None = None,
    certificates: Sequence[bytes] = (),
    compact: bool = False,
) -> Bundle:
    """Sign `manifest` as subject `name`, at `version` when given (verifiers
    then refuse older versions of `name` from this signer: merkle.signing.trust),
    valid until `expires` when given.  A manifest of no file is refused:
    signing one is a mistake (a wrong path, everything excluded), and its
    bundle would vouch for any empty folder (docs/signing.md, as OMS 6.1)."""
    if not manifest.files:
        raise UsageError("no file to sign: the manifest lists none, and an empty model is not signed")
    return sign_statement(statement(manifest, name, version, expires, compact), key, certificates)


def interpret(stmt: Statement, signers: tuple[Signer, ...], payload: bytes) -> Verified:
    """V5: the statement of a payload whose signatures verified (merkle.signing.trust
    decides that), parsed and checked: a merkle statement's subject digest
    must equal its manifest's recomputed root."""
    if stmt.predicate_type == RESULT_PREDICATE_TYPE:
        return _result(stmt, signers, payload)
    if stmt.predicate_type == BOM_PREDICATE_TYPE:
        return _bom(stmt, signers, payload)
    if stmt.predicate_type == IMAGE_PREDICATE_TYPE:
        return _image(stmt, signers, payload)
    if stmt.predicate_type != PREDICATE_TYPE:
        from merkle.signing import oms  # OpenSSF statements only: it brings the whole-file hashing

        if stmt.predicate_type == LEGACY_PREDICATE_TYPE:
            parsed = oms.OmsStatement.from_legacy_statement(stmt)
        elif stmt.predicate_type != oms.PREDICATE_TYPE:
            raise BundleError(f"unsupported predicateType {stmt.predicate_type!r}")
        else:
            parsed = oms.OmsStatement.from_statement(stmt)
        return Verified(parsed.name, None, None, signers, payload, OmsSigned(parsed))
    if len(stmt.subjects) != 1:
        raise BundleError("a merkle statement has exactly one subject")
    name, digests = stmt.subjects[0]
    pred = stmt.predicate
    body = {"manifest", "summary"} & set(pred)
    if len(body) != 1 or not set(pred) - body <= {"version", "expires", "signed"}:
        raise BundleError("predicate must have manifest or summary, and optionally version, expires and signed")
    version, expires, signed = _release_fields(pred)
    manifest = Manifest.from_doc(pred["manifest"]) if "manifest" in pred else None  # 5. recomputes the root
    summary = manifest.summary if manifest is not None else Summary.from_doc(pred["summary"])
    want = digests.get(digest_key(summary.algorithm))
    if want != summary.root.hex():
        raise BundleError(f"subject digest {digest_key(summary.algorithm)} does not match the manifest root")
    if not name:
        raise BundleError("subject name is empty")
    return Verified(name, version, expires, signers, payload, MerkleSigned(summary, manifest), signed)


def _release_fields(pred: dict[str, Any]) -> tuple[int | None, datetime.datetime | None, datetime.datetime | None]:
    """A predicate's optional `version` (a positive integer), `expires` and `signed` (times)."""
    version = pred.get("version")
    if "version" in pred and (type(version) is not int or version < 1):
        raise BundleError("predicate version must be a positive integer")
    expires = parse_time(pred["expires"], "predicate expires") if "expires" in pred else None
    signed = parse_time(pred["signed"], "predicate signed") if "signed" in pred else None
    return version, expires, signed


def _subject(stmt: Statement, what: str) -> tuple[str, str, str]:
    """The one subject of a policy result or a BOM: (name, digest key, digest),
    the key one a tree's root is signed under and the digest 64 lower-case hex
    digits, as every merkle root is kept (the attestation store's index
    refuses anything else, so nothing else may reach it)."""
    if len(stmt.subjects) != 1 or len(stmt.subjects[0][1]) != 1:
        raise BundleError(f"{what} has exactly one subject with one digest")
    name, digests = stmt.subjects[0]
    ((key, digest),) = digests.items()
    if key not in SUBJECT_KEYS:
        raise BundleError(f"{what}'s subject digest key {key[:40]!r} is not one of {', '.join(SUBJECT_KEYS)}")
    if not isinstance(digest, str) or re.fullmatch("[0-9a-f]{64}", digest) is None:
        raise BundleError(f"{what}'s subject digest is not 64 lower-case hex digits")
    if not name:
        raise BundleError("subject name is empty")
    return name, key, digest


def result_statement(name: str, digest_key: str, digest: str, log: dict[str, Any]) -> Statement:
    """The statement of a policy result: subject the tree it ran on, the SARIF log its predicate."""
    return Statement(((name, {digest_key: digest}),), RESULT_PREDICATE_TYPE, log)


def _result(stmt: Statement, signers: tuple[Signer, ...], payload: bytes) -> Verified:
    name, key, digest = _subject(stmt, "a policy result")
    log = stmt.predicate
    runs = log.get("runs")
    if log.get("version") != "2.1.0" or not isinstance(runs, list) or len(runs) != 1 or not isinstance(runs[0], dict):
        raise BundleError("a policy result's predicate is a SARIF 2.1.0 log of one run")
    if not isinstance(runs[0].get("results"), list):
        raise BundleError("a policy result's run has no results")
    return Verified(name, None, None, signers, payload, ResultSigned(key, digest, log))


def bom_statement(name: str, digest_key: str, digest: str, bom: dict[str, Any]) -> Statement:
    """The statement of a BOM: subject the tree it describes, the CycloneDX document its predicate."""
    return Statement(((name, {digest_key: digest}),), BOM_PREDICATE_TYPE, bom)


def _bom(stmt: Statement, signers: tuple[Signer, ...], payload: bytes) -> Verified:
    name, key, digest = _subject(stmt, "a signed BOM")
    bom = stmt.predicate
    if bom.get("bomFormat") != "CycloneDX" or not isinstance(bom.get("specVersion"), str):
        raise BundleError("a signed BOM's predicate is a CycloneDX document (bomFormat, specVersion)")
    version, expires = _bom_version(bom)
    return Verified(name, version, expires, signers, payload, BomSigned(key, digest, bom))


BOM_TREE_REF: Final = "merkle:tree"
"""The bom-ref of a BOM's tree component (merkle.bom.writing.TREE_REF)."""


def _bom_version(bom: dict[str, Any]) -> tuple[int | None, datetime.datetime | None]:
    """The version and expiry of the statement a BOM restates (its tree
    component's `merkle:version` and `merkle:expires`, docs/bom.md B9): a BOM
    of version 1 is refused as version 1 is once version 2 was verified, and
    expires with its source (V6).  Anything malformed is a BundleError."""
    components = bom.get("components")
    trees = (
        [c for c in components if isinstance(c, dict) and c.get("bom-ref") == BOM_TREE_REF]
        if isinstance(components, list)
        else []
    )
    props = trees[0].get("properties") if len(trees) == 1 else None
    found: dict[str, list[Any]] = {}
    for p in props if isinstance(props, list) else []:
        if isinstance(p, dict) and p.get("name") in ("merkle:version", "merkle:expires"):
            found.setdefault(p["name"], []).append(p.get("value"))
    if any(len(v) != 1 or not isinstance(v[0], str) for v in found.values()):
        raise BundleError("a signed BOM has at most one merkle:version and one merkle:expires, as strings")
    version = None
    if "merkle:version" in found:
        text = found["merkle:version"][0]
        if not text.isascii() or not text.isdigit() or int(text) < 1 or len(text) > 18:
            raise BundleError("a signed BOM's merkle:version is not a positive integer")
        version = int(text)
    expires = parse_time(found["merkle:expires"][0], "merkle:expires") if "merkle:expires" in found else None
    return version, expires


def image_statement(
    name: str,
    digest: str,
    models: Sequence[ImageModel] = (),
    version: int | None = None,
    expires: datetime.datetime | None = None,
    signed: datetime.datetime | None = None,
) -> Statement:
    """The statement of an image: subject `name` with the manifest digest
    (`sha256:<hex>`), the predicate the models verified inside it."""
    if not name:
        raise UsageError("a signed image needs a subject name")
    if _DIGEST.fullmatch(digest) is None:
        raise UsageError(f"an image is signed by its sha256 manifest digest, not {digest[:80]!r}")
    if version is not None and version < 1:
        raise UsageError("version must be a positive integer")
    predicate: dict[str, Any] = {"models": [m.to_dict() for m in models]}
    if version is not None:
        predicate["version"] = version
    if expires is not None:
        predicate["expires"] = format_time(expires)
    predicate["signed"] = format_time(signed or datetime.datetime.now(datetime.timezone.utc))
    return Statement(((name, {"sha256": digest.split(":", 1)[1]}),), IMAGE_PREDICATE_TYPE, predicate)


def _image(stmt: Statement, signers: tuple[Signer, ...], payload: bytes) -> Verified:
    if len(stmt.subjects) != 1 or set(stmt.subjects[0][1]) != {"sha256"}:
        raise BundleError("a signed image has exactly one subject with one sha256 digest")
    name, digests = stmt.subjects[0]
    digest = f"sha256:{digests['sha256']}"
    if _DIGEST.fullmatch(digest) is None:
        raise BundleError("a signed image's subject digest is not 64 lower-case hex digits")
    if not name:
        raise BundleError("subject name is empty")
    pred = stmt.predicate
    if "models" not in pred or not set(pred) <= {"models", "version", "expires", "signed"}:
        raise BundleError("a signed image's predicate has models, and optionally version, expires and signed")
    if not isinstance(pred["models"], list) or len(pred["models"]) > 1000:
        raise BundleError("a signed image's models are a list (at most 1,000)")
    models = tuple(ImageModel.from_doc(m) for m in pred["models"])
    if len({m.path for m in models}) != len(models):
        raise BundleError("a signed image names one path twice among its models")
    version, expires, signed = _release_fields(pred)
    return Verified(name, version, expires, signers, payload, ImageSigned(digest, models), signed)
