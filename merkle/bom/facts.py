"""What a BOM may say: the facts of a tree that verified, or that this run hashed (docs/bom.md B1-B3).

`Facts` is built only from a manifest this run built, a statement whose
signatures verified (merkle.verifying.signed.open_signed), and bytes that
verified against either (the model card through merkle.hf.verified_readme,
whole-file digests from the same read as the tree, merkle.bom.digests).
Nothing here reads the tree but README.md, and that only through the
verified read.
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from merkle.bom.digests import Whole
from merkle.errors import IntegrityError, MerkleError, PolicyError
from merkle.format.hub import SHA256
from merkle.format.manifest import Manifest
from merkle.format.origin import AnyOrigin, Origin
from merkle.signing.oms import OmsStatement

Basis = Literal["built", "signed", "verified"]
"""How the BOM's facts were established (B2): `built`, hashed by this run
(no signature); `signed`, read from a verified statement without the tree;
`verified`, a verified statement and a tree that verified against it."""
ComponentKind = Literal["machine-learning-model", "data"]
KINDS: Final = ("machine-learning-model", "data")


@dataclass(frozen=True)
class FileFacts:
    path: str
    size: int | None
    """None for an OpenSSF statement, which signs no sizes."""
    root: str | None
    """The file's Merkle root (hex); None for an OpenSSF statement."""
    sha256: str | None = None
    blake3: str | None = None
    """Whole-file digests (hex), as sha256sum and b3sum print them: signed, or from the same read (B6)."""


@dataclass(frozen=True)
class Facts:
    name: str
    """The subject name: the signed one, or the directory's."""
    digest_key: str
    """The subject digest's key: merkle-blake3, merkle-sha256, or sha256 (OpenSSF)."""
    root: str
    """The dataset root (hex), or an OpenSSF statement's subject digest."""
    algorithm: str | None
    chunk_size: int | None
    exclude: tuple[str, ...]
    files: tuple[FileFacts, ...]
    origin: AnyOrigin | None
    kind: ComponentKind
    basis: Basis
    signers: tuple[str, ...] = ()
    licenses: tuple[str, ...] | None = None
    card: Mapping[str, Any] | None = None
    card_problem: str | None = None
    """Why the model card is not described (absent, unsigned, broken front matter, no tree read)."""
    license_problem: str | None = None
    """Why no license is given though the card was read (it declares none, or not as ids)."""
    version: int | None = None
    """The signed statement's version, when it has one: the BOM records it, and is refused as the
    statement would be once a newer version was verified (rollback, B9)."""
    expires: datetime.datetime | None = None
    """The signed statement's expiry, when it has one: the signed BOM expires with it."""


def kind_of(manifest: Manifest | None, chosen: str | None = None) -> ComponentKind:
    """`chosen` when given; else `data` for a Hugging Face dataset repository
    or a zarr store, `machine-learning-model` for anything else (B3)."""
    if chosen is not None:
        if chosen not in KINDS:
            raise ValueError(f"kind {chosen!r} is not one of {', '.join(KINDS)}")
        return chosen  # type: ignore[return-value]
    if manifest is not None and (
        manifest.zarr is not None or (isinstance(manifest.origin, Origin) and manifest.origin.repo_type == "dataset")
    ):
        return "data"
    return "machine-learning-model"


def of_manifest(
    manifest: Manifest,
    name: str,
    basis: Basis,
    whole: Mapping[str, Whole] | None = None,
    signers: tuple[str, ...] = (),
    kind: str | None = None,
) -> Facts:
    """The facts of `manifest`: each file's Merkle root and size; a SHA-256
    where the manifest signs one (a Hugging Face LFS file's Hub identity,
    rule M7) or `whole` has it, a BLAKE3 where `whole` has it."""
    whole = whole or {}
    files = []
    for entry in manifest.files:
        got = whole.get(entry.path)
        sha256 = entry.hub[1] if entry.hub is not None and entry.hub[0] == SHA256 else None
        if got is not None and sha256 is not None and got.sha256 != sha256:
            raise IntegrityError("its SHA-256 differs from the Hub identity the manifest records", entry.path)
        files.append(
            FileFacts(
                entry.path,
                entry.size,
                entry.root.hex(),
                sha256 or (got.sha256 if got else None),
                got.blake3 if got else None,
            )
        )
    return Facts(
        name,
        f"merkle-{manifest.algorithm}",
        manifest.root.hex(),
        manifest.algorithm,
        manifest.chunk_size,
        tuple(manifest.exclude),
        tuple(files),
        manifest.origin,
        kind_of(manifest, kind),
        basis,
        signers,
    )


def of_oms(statement: OmsStatement, basis: Basis, signers: tuple[str, ...], kind: str | None = None) -> Facts:
    """The facts of an OpenSSF model-signing statement: its resources' SHA-256s, signed."""
    files = tuple(FileFacts(name, None, None, digest.hex()) for name, digest in statement.resources)
    return Facts(
        statement.name,
        "sha256",
        statement.subject_digest.hex(),
        None,
        None,
        (),
        files,
        None,
        kind_of(None, kind),
        basis,
        signers,
    )


def with_card(
    facts: Facts,
    path: str | os.PathLike[str],
    signed: Manifest | OmsStatement,
    revision: str | None = None,
    layout: str | None = None,
) -> Facts:
    """`facts` with the model card's front matter and licenses, read from
    README.md under `path` only once its bytes matched `signed` (B4).  A
    card that is absent, unsigned or whose front matter is broken leaves
    them out and says why (`card_problem`; a card without license ids,
    `license_problem`); README.md changed since it
    verified is an IntegrityError: the tree is no longer the one described."""
    import dataclasses

    from merkle.hf import verified_readme
    from merkle.hf.license import README, card_licenses, front_matter

    try:
        meta = front_matter(verified_readme(path, signed, revision, layout), README)
    except PolicyError as e:  # no README.md signed or present: nothing to describe, nothing wrong
        return dataclasses.replace(facts, card_problem=f"README.md: {e.message}")
    except IntegrityError:
        raise
    except MerkleError as e:
        return dataclasses.replace(facts, card_problem=f"README.md: {e.message}")
    except OSError as e:
        return dataclasses.replace(facts, card_problem=f"README.md: {e.strerror or e}")
    try:
        json.dumps(meta, ensure_ascii=False).encode("utf-8")
    except (UnicodeEncodeError, TypeError, ValueError):  # a lone surrogate ("\ud83d") is no UTF-8 a BOM can hold
        return dataclasses.replace(facts, card_problem="README.md: its front matter is not valid Unicode text")
    try:
        licenses: tuple[str, ...] | None = card_licenses(meta, README)
        problem = None
    except MerkleError as e:
        licenses, problem = None, f"README.md: {e.message}"
    return dataclasses.replace(facts, card=meta, licenses=licenses, license_problem=problem)
