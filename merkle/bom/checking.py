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
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from merkle.bom.digests import SameRead
from merkle.bom.writing import NS, TREE_REF
from merkle.errors import FormatError, IntegrityError
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


def _props(item: Mapping[str, Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for p in item.get("properties") or []:
        if not isinstance(p, dict) or not isinstance(p.get("name"), str) or not isinstance(p.get("value"), str):
            raise IntegrityError("a property that is not a name and a value")
        if p["name"].startswith(NS):
            out.setdefault(p["name"][len(NS) :], []).append(p["value"])
    return out


def _one(props: Mapping[str, list[str]], key: str, where: str) -> str:
    values = props.get(key, [])
    if len(values) != 1:
        raise IntegrityError(f"{where}: needs exactly one {NS}{key} property, has {len(values)}")
    return values[0]


def expected(signed: BomSigned, name: str) -> Expected:
    """The claims of a verified BOM; IntegrityError when it does not
    describe its own subject (a BOM signed over one tree that names
    another's files, root or parameters)."""
    trees = [c for c in signed.bom.get("components") or [] if isinstance(c, dict) and c.get("bom-ref") == TREE_REF]
    if len(trees) != 1:
        raise IntegrityError(f"the BOM has {len(trees)} components {TREE_REF!r}, not one")
    (tree,) = trees
    props = _props(tree)
    root = _one(props, "root", TREE_REF)
    if root != signed.digest or _one(props, "digestKey", TREE_REF) != signed.digest_key:
        raise IntegrityError("the BOM's merkle:root is not the root its signature names")
    if _one(props, "subject", TREE_REF) != name:
        raise IntegrityError("the BOM's merkle:subject is not the subject its signature names")
    entries, sha256, blake3 = [], {}, {}
    for f in tree.get("components") or []:
        if not isinstance(f, dict) or f.get("type") != "file" or not isinstance(f.get("name"), str):
            raise IntegrityError("a component of the tree that is not a named file")
        path = f["name"]
        for h in f.get("hashes") or []:
            alg, content = (h.get("alg"), h.get("content")) if isinstance(h, dict) else (None, None)
            if alg == "SHA-256" and isinstance(content, str):
                sha256[path] = content.lower()
            elif alg == "BLAKE3" and isinstance(content, str):
                blake3[path] = content.lower()
        if _one(props, "format", TREE_REF) == "merkle":
            fp = _props(f)
            try:
                entries.append(FileEntry(path, int(_one(fp, "size", path)), bytes.fromhex(_one(fp, "root", path))))
            except ValueError as e:
                raise IntegrityError(f"a merkle:size or merkle:root that is not a number: {e}", path) from e
    if _one(props, "format", TREE_REF) != "merkle":
        try:
            stmt = OmsStatement(name, tuple((n, bytes.fromhex(d)) for n, d in sha256.items()))
        except ValueError as e:
            raise IntegrityError(f"a SHA-256 that is not hex: {e}") from e
        if stmt.subject_digest.hex() != root or len(stmt.resources) != len(tree.get("components") or []):
            raise IntegrityError(
                "the BOM's files do not add up to its merkle:root: it does not describe the signed tree"
            )
        return Expected(None, sha256, blake3, stmt)
    origin: AnyOrigin | None = None
    try:
        if props.get("origin:type") == ["git"]:
            dirty = _one(props, "origin:dirty", TREE_REF)
            if dirty not in ("true", "false"):
                raise IntegrityError(f"merkle:origin:dirty is {dirty[:20]!r}, not true or false", TREE_REF)
            url = props.get("origin:url", [None])[0]
            origin = GitOrigin(_one(props, "origin:revision", TREE_REF), url, dirty == "true")
        elif "origin:revision" in props:
            repo = props.get("origin:repo", [None])[0]
            origin = Origin(_one(props, "origin:revision", TREE_REF), repo, _one(props, "origin:repoType", TREE_REF))
    except FormatError as e:
        raise IntegrityError(f"the BOM's origin is not one a manifest can record: {e.message}", TREE_REF) from e
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
    return Expected(manifest, sha256, blake3)


def check(
    path: str | os.PathLike[str],
    claims: Expected,
    layout: str | None = None,
    revision: str | None = None,
    jobs: int | None = None,
) -> Report:
    """Verify the tree under `path` against the BOM's claims: every file's
    Merkle root and size (through the rebuilt manifest), and its SHA-256
    and BLAKE3 where the BOM gives them, from one read of each file."""
    from merkle.hashing.options import HashOptions
    from merkle.source.listing import WalkOptions
    from merkle.verifying.tree import CheckOptions, verify_with

    if claims.manifest is None:
        return _check_oms(path, claims, layout, revision, jobs)
    same = SameRead(jobs)
    report = verify_with(
        path, claims.manifest, CheckOptions(), WalkOptions(layout=layout, revision=revision), HashOptions(cluster=same)
    )
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
    return dataclasses.replace(report, outcomes=tuple(outcomes))


def _check_oms(
    path: str | os.PathLike[str], claims: Expected, layout: str | None, revision: str | None, jobs: int | None
) -> Report:
    """A BOM of an OpenSSF statement: its files' SHA-256s are the statement's resources."""
    from merkle.signing import oms

    assert claims.oms is not None
    return oms.verify(path, claims.oms, jobs=jobs, layout=layout, revision=revision)
