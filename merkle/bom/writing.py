"""Facts -> a CycloneDX JSON document, made with cyclonedx-python-lib and
validated against the schema it ships (docs/bom.md B7, B8).

The library models components, hashes, licenses and properties; it has no
`modelCard` yet, so the card is added to its JSON output, and the whole
document is validated after that (offline: the schemas are in the library).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Final

from merkle.bom.card import licenses as card_licenses
from merkle.bom.card import model_card
from merkle.bom.facts import Facts, FileFacts
from merkle.errors import FormatError, UsageError, install_hint
from merkle.format.origin import AnyOrigin, GitOrigin, Origin
from merkle.format.timestamps import format_time

if TYPE_CHECKING:
    from cyclonedx.model.component import Component

SPEC_VERSIONS: Final = ("1.6", "1.7")
DEFAULT_SPEC: Final = "1.6"
TREE_REF: Final = "merkle:tree"
"""The bom-ref of the component that is the tree; its files are `file:PATH`."""
NS: Final = "merkle:"
"""The namespace of merkle's properties (B8)."""


def _lib() -> Any:
    try:
        import cyclonedx  # noqa: F401
    except ImportError as e:
        raise UsageError(f"writing a CycloneDX BOM needs cyclonedx-python-lib: {install_hint('bom')}") from e
    import cyclonedx as lib

    return lib


def _file(f: FileFacts) -> Component:
    from cyclonedx.model import HashAlgorithm, HashType, Property
    from cyclonedx.model.component import Component, ComponentType

    hashes = []
    if f.sha256 is not None:
        hashes.append(HashType(alg=HashAlgorithm.SHA_256, content=f.sha256))
    if f.blake3 is not None:
        hashes.append(HashType(alg=HashAlgorithm.BLAKE3, content=f.blake3))
    props = []
    if f.root is not None:
        props.append(Property(name=NS + "root", value=f.root))
    if f.size is not None:
        props.append(Property(name=NS + "size", value=str(f.size)))
    return Component(type=ComponentType.FILE, name=f.path, bom_ref="file:" + f.path, hashes=hashes, properties=props)


def _tree_properties(facts: Facts) -> list[tuple[str, str]]:
    props = [
        ("subject", facts.name),
        ("digestKey", facts.digest_key),
        ("root", facts.root),
        ("basis", facts.basis),
        ("format", "oms" if facts.algorithm is None else "merkle"),
    ]
    if facts.algorithm is not None:
        props += [("algorithm", facts.algorithm), ("chunkSize", str(facts.chunk_size))]
    props += [("exclude", pattern) for pattern in facts.exclude]
    origin = facts.origin
    if isinstance(origin, GitOrigin):  # a git work tree's build (docs/hf.md, G1)
        props += [("origin:type", "git"), ("origin:revision", origin.revision)]
        props += [("origin:dirty", "true" if origin.dirty else "false")]
        if origin.url is not None:
            props.append(("origin:url", origin.url))
    elif origin is not None:
        props += [("origin:repoType", origin.repo_type), ("origin:revision", origin.revision)]
        if origin.repo is not None:
            props.append(("origin:repo", origin.repo))
    props += [("signer", keyid) for keyid in facts.signers]
    if facts.version is not None:
        props.append(("version", str(facts.version)))
    if facts.expires is not None:
        props.append(("expires", format_time(facts.expires)))
    if facts.card_problem is not None:
        props.append(("modelCard", f"not described: {facts.card_problem}"))
    if facts.license_problem is not None:
        props.append(("licenses", f"not described: {facts.license_problem}"))
    return [(NS + k, v) for k, v in props]


def _purl(facts: Facts) -> Any:
    """pkg:huggingface/ORG/NAME@COMMIT for a Hub model repository (the purl
    type's rules: namespace and name as the Hub spells them, the commit in
    lower case); None for anything else (the type names models only)."""
    origin = facts.origin
    if not isinstance(origin, Origin) or origin.repo is None or origin.repo_type != "model":
        return None
    from packageurl import PackageURL

    org, _, name = origin.repo.rpartition("/")
    return PackageURL("huggingface", org or None, name, origin.revision.lower())


def identity(name: str, origin: AnyOrigin | None) -> dict[str, str]:
    """The tree component's name, group, version and purl as to_cyclonedx
    writes them for subject `name` and `origin` (B10 derives them again)."""
    out = {"name": name}
    if isinstance(origin, Origin) and origin.repo is not None:
        group, _, out["name"] = origin.repo.rpartition("/")
        if group:
            out["group"] = group
    if origin is not None:
        out["version"] = origin.revision
    purl = _purl(Facts(name, "", "", None, None, (), (), origin, "machine-learning-model", "built"))
    if purl is not None:
        out["purl"] = purl.to_string()
    return out


def to_cyclonedx(facts: Facts, spec: str = DEFAULT_SPEC, tool_version: str = "") -> dict[str, Any]:
    """The BOM of `facts` as a CycloneDX `spec` JSON document (a dict),
    validated.  FormatError if it does not validate (a bug, never written)."""
    if spec not in SPEC_VERSIONS:
        raise UsageError(f"CycloneDX {spec} is not one this writer makes ({', '.join(SPEC_VERSIONS)})")
    _lib()
    from cyclonedx.model import Property
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.model.license import DisjunctiveLicense
    from cyclonedx.output import make_outputter
    from cyclonedx.schema import OutputFormat, SchemaVersion

    version = SchemaVersion.from_version(spec)
    purl = _purl(facts)
    origin = facts.origin
    name, group = facts.name, None
    if isinstance(origin, Origin) and origin.repo is not None:
        group_part, _, name = origin.repo.rpartition("/")
        group = group_part or None
    licenses = []
    if facts.licenses is not None:
        for choice in card_licenses(facts.licenses, facts.card or {}):
            lic = choice["license"]
            licenses.append(DisjunctiveLicense(id=lic.get("id"), name=lic.get("name"), url=lic.get("url")))
    tree = Component(
        type=ComponentType(facts.kind),
        name=name,
        group=group,
        version=origin.revision if origin is not None else None,
        purl=purl,
        bom_ref=TREE_REF,
        licenses=licenses,
        properties=[Property(name=k, value=v) for k, v in _tree_properties(facts)],
        components=[_file(f) for f in facts.files],
    )
    bom = Bom(components=[tree])
    bom.metadata.tools.components.add(Component(type=ComponentType.APPLICATION, name="merkle", version=tool_version))
    text = make_outputter(bom, OutputFormat.JSON, version).output_as_string()
    doc: dict[str, Any] = json.loads(text)
    card = model_card(facts.card) if facts.card is not None and facts.kind == "machine-learning-model" else None
    if card is not None:
        (component,) = [c for c in doc["components"] if c.get("bom-ref") == TREE_REF]
        component["modelCard"] = card
    validate(doc, spec)
    return doc


def validate(doc: dict[str, Any], spec: str = DEFAULT_SPEC) -> None:
    """FormatError unless `doc` validates against the CycloneDX `spec` JSON
    schema (strict: no key the schema does not name)."""
    _lib()
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    try:
        error = JsonStrictValidator(SchemaVersion.from_version(spec)).validate_str(json.dumps(doc))
    except ImportError as e:  # the validator's own dependencies
        raise UsageError(f"validating a CycloneDX BOM needs jsonschema: {install_hint('bom')}") from e
    if error is not None:
        raise FormatError(f"not a valid CycloneDX {spec} document: {str(error.data)[:500]}")


def to_bytes(doc: dict[str, Any]) -> bytes:
    return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
