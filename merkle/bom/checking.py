"""Checking a signed BOM against a tree (docs/bom.md B10).

The BOM's signature has verified (merkle.verifying.signed.open_signed with
`boms=True`) before anything here runs.  `expected` reads the document
strictly back into what it claims: for a merkle tree, a Manifest whose
recomputed dataset root must equal both the BOM's `merkle:root` and the
statement's subject digest (so the BOM names exactly the signed tree's
files, sizes and roots, no more and no fewer), and each file's whole-file
digests.  `check` then verifies the tree against that manifest through
the one tree check (merkle.verifying.tree.verify_with), reading each file
once for its Merkle root, SHA-256 and BLAKE3 (merkle.bom.digests), and
marks a file whose whole-file digest differs from the BOM's.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from merkle.bom.digests import SameRead
from merkle.bom.facts import KINDS
from merkle.bom.writing import DEFAULT_SPEC, NS, SPEC_VERSIONS, TREE_REF, identity
from merkle.errors import FormatError, IntegrityError, UsageError
from merkle.format.manifest import FileEntry, Manifest
from merkle.format.origin import AnyOrigin, GitOrigin, Origin
from merkle.report import Outcome, Report, Status
from merkle.signing.oms import OmsStatement
from merkle.signing.statements import BomSigned


@dataclass(frozen=True)
class Expected:
    """What a signed BOM claims of a tree."""

    manifest: Manifest | None
    """For a merkle tree; None for a BOM of an OpenSSF statement."""
    sha256: Mapping[str, str]
    blake3: Mapping[str, str]
    oms: OmsStatement | None = None
    """For a BOM of an OpenSSF statement: the statement its files restate, in their order."""
    tree: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """The BOM's tree component: its licenses and modelCard are compared with the verified README.md's."""
    name: str = ""
    spec: str = DEFAULT_SPEC


TOP_KEYS: Final = frozenset(
    ("$schema", "bomFormat", "specVersion", "serialNumber", "version", "metadata", "components", "dependencies")
)
"""The document's keys a signed BOM may have (B10): anything else is a claim merkle does not check."""
METADATA_KEYS: Final = frozenset(("timestamp", "tools"))
TREE_KEYS: Final = frozenset(
    ("type", "name", "group", "version", "purl", "bom-ref", "licenses", "properties", "components", "modelCard")
)
FILE_KEYS: Final = frozenset(("type", "name", "bom-ref", "hashes", "properties"))
TREE_PROPS: Final = frozenset(
    ("subject", "digestKey", "root", "basis", "format", "algorithm", "chunkSize", "exclude", "signer", "modelCard")
    + ("licenses", "version", "expires", "origin:type", "origin:revision", "origin:dirty", "origin:url")
    + ("origin:repo", "origin:repoType")
)
"""The tree's merkle: properties; each is derived again, compared, or recorded (docs/bom.md B10)."""
HASH_ALGS: Final = ("SHA-256", "BLAKE3")
"""The whole-file digests a check reads (merkle.bom.digests); any other is refused, not skipped."""
_HEX64: Final = re.compile("[0-9a-fA-F]{64}")


def _list(item: Mapping[str, Any], key: str, where: str) -> list[Any]:
    value = item.get(key, [])
    if not isinstance(value, list):
        raise IntegrityError(f"the BOM's {key} is not a list", where)
    return value


def _only(item: Mapping[str, Any], keys: frozenset[str], where: str) -> None:
    extra = sorted(set(item) - keys)
    if extra:
        raise IntegrityError(f"the BOM claims what merkle does not check: {', '.join(map(repr, extra[:5]))}", where)


def _props(item: Mapping[str, Any], allowed: frozenset[str], where: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for p in _list(item, "properties", where):
        if not isinstance(p, dict) or not isinstance(p.get("name"), str) or not isinstance(p.get("value"), str):
            raise IntegrityError("a property that is not a name and a value", where)
        key = p["name"][len(NS) :] if p["name"].startswith(NS) else None
        if key is None or key not in allowed:
            raise IntegrityError(f"the BOM claims a property merkle does not check: {p['name'][:60]!r}", where)
        out.setdefault(key, []).append(p["value"])
    return out


def _one(props: Mapping[str, list[str]], key: str, where: str) -> str:
    values = props.get(key, [])
    if len(values) != 1:
        raise IntegrityError(f"{where}: needs exactly one {NS}{key} property, has {len(values)}")
    return values[0]


def _hashes(f: Mapping[str, Any], path: str) -> dict[str, str]:
    """A file's whole-file digests: SHA-256 and BLAKE3, once each, 64 hex digits."""
    out: dict[str, str] = {}
    for h in _list(f, "hashes", path):
        if not isinstance(h, dict) or set(h) != {"alg", "content"}:
            raise IntegrityError("a hash that is not an algorithm and a content", path)
        alg, content = h["alg"], h["content"]
        if alg not in HASH_ALGS:
            raise IntegrityError(f"a {str(alg)[:20]} hash merkle cannot check (it checks {', '.join(HASH_ALGS)})", path)
        if alg in out:
            raise IntegrityError(f"two {alg} hashes: a BOM gives each digest once", path)
        if not isinstance(content, str) or _HEX64.fullmatch(content) is None:
            raise IntegrityError(f"a {alg} that is not 64 hex digits", path)
        out[alg] = content.lower()
    return out


def _document(bom: Mapping[str, Any]) -> dict[str, Any]:
    """The one tree component, after the document's shape is allow-listed."""
    _only(bom, TOP_KEYS, "the BOM")
    meta = bom.get("metadata", {})
    if not isinstance(meta, dict):
        raise IntegrityError("the BOM's metadata is not an object")
    _only(meta, METADATA_KEYS, "the BOM's metadata")
    for d in _list(bom, "dependencies", "the BOM"):
        if not isinstance(d, dict) or set(d) != {"ref"} or d["ref"] != TREE_REF:
            raise IntegrityError("the BOM claims dependencies merkle does not check")
    components = _list(bom, "components", "the BOM")
    if len(components) != 1 or not isinstance(components[0], dict) or components[0].get("bom-ref") != TREE_REF:
        raise IntegrityError(f"the BOM has {len(components)} components: a signed BOM has one, {TREE_REF!r}")
    tree: dict[str, Any] = components[0]
    _only(tree, TREE_KEYS, TREE_REF)
    if tree.get("type") not in KINDS:
        raise IntegrityError(f"the tree's type is not one of {', '.join(KINDS)}", TREE_REF)
    return tree


def expected(signed: BomSigned, name: str) -> Expected:
    """The claims of a verified BOM; IntegrityError when it does not
    describe its own subject (a BOM signed over one tree that names
    another's files, root or parameters), or claims what no check here
    reads (an allow-list, docs/bom.md B10)."""
    tree = _document(signed.bom)
    spec = signed.bom["specVersion"]
    if spec not in SPEC_VERSIONS:
        raise IntegrityError(f"the BOM is CycloneDX {spec[:10]}, not one merkle checks ({', '.join(SPEC_VERSIONS)})")
    props = _props(tree, TREE_PROPS, TREE_REF)
    root = _one(props, "root", TREE_REF)
    if root != signed.digest or _one(props, "digestKey", TREE_REF) != signed.digest_key:
        raise IntegrityError("the BOM's merkle:root is not the root its signature names")
    if _one(props, "subject", TREE_REF) != name:
        raise IntegrityError("the BOM's merkle:subject is not the subject its signature names")
    if "modelCard" in props and ("modelCard" in tree or "licenses" in tree):
        raise IntegrityError("the BOM says its model card is not described, yet describes it", TREE_REF)
    if "licenses" in props and "licenses" in tree:
        raise IntegrityError("the BOM says its licenses are not described, yet gives them", TREE_REF)
    fmt = _one(props, "format", TREE_REF)
    if fmt not in ("merkle", "oms"):
        raise IntegrityError(f"merkle:format is {fmt[:20]!r}, not merkle or oms", TREE_REF)
    entries, sha256, blake3 = [], {}, {}
    for f in _list(tree, "components", TREE_REF):
        if not isinstance(f, dict) or f.get("type") != "file" or not isinstance(f.get("name"), str):
            raise IntegrityError("a component of the tree that is not a named file")
        path = f["name"]
        _only(f, FILE_KEYS, path)
        if f.get("bom-ref") != "file:" + path:
            raise IntegrityError("a file whose bom-ref is not file:PATH", path)
        hashes = _hashes(f, path)
        if "SHA-256" in hashes:
            sha256[path] = hashes["SHA-256"]
        if "BLAKE3" in hashes:
            blake3[path] = hashes["BLAKE3"]
        fp = _props(f, frozenset(("root", "size")) if fmt == "merkle" else frozenset(), path)
        if fmt == "merkle":
            try:
                entries.append(FileEntry(path, int(_one(fp, "size", path)), bytes.fromhex(_one(fp, "root", path))))
            except ValueError as e:
                raise IntegrityError(f"a merkle:size or merkle:root that is not a number: {e}", path) from e
    origin = _origin(props) if fmt == "merkle" else None
    want = identity(name, origin)
    got = {k: tree[k] for k in ("name", "group", "version", "purl") if k in tree}
    if got != want:
        raise IntegrityError(
            "the BOM's name, group, version or purl is not what its signed subject and origin give", TREE_REF
        )
    if fmt == "oms":
        if blake3:
            raise IntegrityError("an OpenSSF statement's BOM claims BLAKE3 digests: it signs SHA-256 only", TREE_REF)
        if props.keys() & {"origin:type", "origin:revision", "algorithm", "chunkSize", "exclude"}:
            raise IntegrityError("an OpenSSF statement's BOM claims tree parameters it does not sign", TREE_REF)
        stmt = OmsStatement(name, tuple((n, bytes.fromhex(d)) for n, d in sha256.items()))
        if stmt.subject_digest.hex() != root or len(stmt.resources) != len(_list(tree, "components", TREE_REF)):
            raise IntegrityError(
                "the BOM's files do not add up to its merkle:root: it does not describe the signed tree"
            )
        return Expected(None, sha256, blake3, stmt, tree, name, spec)
    try:
        manifest = Manifest.create(
            entries,
            _one(props, "algorithm", TREE_REF),  # type: ignore[arg-type]  # Manifest checks it (H1)
            int(_one(props, "chunkSize", TREE_REF)),
            tuple(props.get("exclude", [])),
            origin=origin,
        )
    except (FormatError, ValueError) as e:
        raise IntegrityError(f"the BOM's files are not a tree: {getattr(e, 'message', e)}") from e
    if manifest.root.hex() != root:
        raise IntegrityError("the BOM's files do not add up to its merkle:root: it does not describe the signed tree")
    return Expected(manifest, sha256, blake3, None, tree, name, spec)


def _origin(props: Mapping[str, list[str]]) -> AnyOrigin | None:
    try:
        if props.get("origin:type") == ["git"]:
            dirty = _one(props, "origin:dirty", TREE_REF)
            if dirty not in ("true", "false"):
                raise IntegrityError(f"merkle:origin:dirty is {dirty[:20]!r}, not true or false", TREE_REF)
            url = props.get("origin:url", [None])[0]
            return GitOrigin(_one(props, "origin:revision", TREE_REF), url, dirty == "true")
        if "origin:revision" in props:
            repo = props.get("origin:repo", [None])[0]
            return Origin(_one(props, "origin:revision", TREE_REF), repo, _one(props, "origin:repoType", TREE_REF))
    except FormatError as e:
        raise IntegrityError(f"the BOM's origin is not one a manifest can record: {e.message}", TREE_REF) from e
    return None


def check(
    path: str | os.PathLike[str],
    claims: Expected,
    layout: str | None = None,
    revision: str | None = None,
    jobs: int | None = None,
    follow_symlinks: bool = False,
) -> Report:
    """Verify the tree under `path` against the BOM's claims: every file's
    Merkle root and size (through the rebuilt manifest), and its SHA-256
    and BLAKE3 where the BOM gives them, from one read of each file."""
    from merkle.hashing.options import HashOptions
    from merkle.source.listing import WalkOptions
    from merkle.verifying.tree import CheckOptions, verify_with

    if claims.manifest is None:
        if follow_symlinks:
            raise UsageError("--follow-symlinks: an OpenSSF statement's files are read as its verifier reads them")
        return _check_oms(path, claims, layout, revision, jobs)
    same = SameRead(jobs)
    walk = WalkOptions(follow_symlinks, layout=layout, revision=revision)
    report = verify_with(path, claims.manifest, CheckOptions(), walk, HashOptions(cluster=same))
    outcomes = []
    for o in report.outcomes:
        if o.status is Status.OK:
            got = same.whole.get(o.path)
            if got is None:
                o = Outcome(o.path, Status.ERROR, "not read whole: its SHA-256 and BLAKE3 are not known")
            elif claims.sha256.get(o.path, got.sha256) != got.sha256:
                o = Outcome(o.path, Status.MISMATCH, "SHA-256 differs from the BOM's")
            elif claims.blake3.get(o.path, got.blake3) != got.blake3:
                o = Outcome(o.path, Status.MISMATCH, "BLAKE3 differs from the BOM's")
        outcomes.append(o)
    report = dataclasses.replace(report, outcomes=tuple(outcomes))
    if report.ok:
        check_card(path, claims, layout, revision)
    return report


def check_card(
    path: str | os.PathLike[str], claims: Expected, layout: str | None = None, revision: str | None = None
) -> None:
    """The BOM's licenses and modelCard must be what merkle writes from the
    README.md under `path`, read once its bytes matched the signed files
    (merkle.bom.facts.with_card); IntegrityError otherwise.  A BOM that says
    its card or licenses are not described claims none (expected)."""
    from merkle.bom.facts import of_manifest, of_oms, with_card
    from merkle.bom.writing import to_cyclonedx

    tree = claims.tree
    said = {p["name"] for p in tree.get("properties", [])}
    if NS + "modelCard" in said:
        return
    kind = tree.get("type")
    if claims.manifest is not None:
        facts = with_card(of_manifest(claims.manifest, claims.name, "verified", kind=kind), path, claims.manifest,
                          revision, layout)  # fmt: skip
    else:
        assert claims.oms is not None
        facts = with_card(of_oms(claims.oms, "verified", (), kind), path, claims.oms, revision, layout)
    (derived,) = to_cyclonedx(facts, claims.spec)["components"]
    if tree.get("modelCard") != derived.get("modelCard"):
        raise IntegrityError("the BOM's modelCard is not what the verified README.md says", TREE_REF)
    if NS + "licenses" not in said and tree.get("licenses") != derived.get("licenses"):
        raise IntegrityError("the BOM's licenses are not the verified README.md's", TREE_REF)


def _check_oms(
    path: str | os.PathLike[str], claims: Expected, layout: str | None, revision: str | None, jobs: int | None
) -> Report:
    """A BOM of an OpenSSF statement: its files' SHA-256s are the statement's resources."""
    from merkle.signing import oms

    assert claims.oms is not None
    report = oms.verify(path, claims.oms, jobs=jobs, layout=layout, revision=revision)
    if report.ok:
        check_card(path, claims, layout, revision)
    return report
