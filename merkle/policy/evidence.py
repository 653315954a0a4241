"""The evidence a policy sees: only what verified (docs/policy.md, P6).

`gather` runs after the signatures and the tree verified (a Report that is
ok); every byte it reads of a file is checked again as it is read: through
the chunk leaves (`merkle.open`'s VerifiedReader) where the manifest has
them, else in one pass whose digest must equal the signed one before any of
it is used.  So a file swapped after the tree check is an error, never
evidence.  The input document of Rego policies (`Evidence.to_input`) is
described in docs/policy.md and kept stable.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from merkle.errors import IntegrityError, MerkleError, SourceError
from merkle.format.manifest import Manifest
from merkle.format.timestamps import format_time
from merkle.policy.kinds import HEAD, classify, sniff
from merkle.signing.oms import SINGLE_FILE
from merkle.signing.statements import Verified
from merkle.source.readers import open_file

if TYPE_CHECKING:
    from merkle.format.origin import AnyOrigin

MAX_TAIL = 16 << 20
"""Bytes kept from a file's end when it is read in one pass (a zip's central directory)."""


@dataclass(frozen=True)
class FileFact:
    path: str
    size: int
    kind: str
    """merkle.policy.kinds.KINDS, or "unreadable" (`problem` says why)."""
    problem: str | None = None


@dataclass(frozen=True)
class Evidence:
    verified: Verified
    files: tuple[FileFact, ...]
    model_card: dict[str, Any] | None
    card_problem: str | None
    licenses: tuple[str, ...] | None
    license_problem: str | None

    @functools.cached_property
    def statement(self) -> dict[str, Any]:
        """The verified statement, as signed (parsed when asked for: a million-file one is large)."""
        import json

        doc: dict[str, Any] = json.loads(self.verified.payload)
        return doc

    def to_input(self, fields: Collection[str] | None = None) -> dict[str, Any]:
        """The Rego input document (docs/policy.md, "input"); with `fields`,
        only those of its members."""
        members = self._input()
        return {k: make() for k, make in members.items() if fields is None or k in fields}

    def _input(self) -> dict[str, Any]:
        v = self.verified
        manifest = v.manifest
        origin = manifest.origin if manifest is not None else None
        summary = v.summary
        members: dict[str, Callable[[], Any]] = {
            "subject": lambda: v.name,
            "format": lambda: "merkle" if summary is not None else "oms",
            "root": lambda: v.root_hex,
            "algorithm": lambda: summary.algorithm if summary is not None else "sha256",
            "chunk_size": lambda: summary.chunk_size if summary is not None else None,
            "version": lambda: v.version,
            "expires": lambda: format_time(v.expires) if v.expires is not None else None,
            "files": lambda: [{"path": f.path, "size": f.size, "kind": f.kind} for f in self.files],
            "license": lambda: self.licenses[0] if self.licenses and len(self.licenses) == 1 else None,
            "licenses": lambda: list(self.licenses or ()),
            "model_card": lambda: self.model_card,
            "signers": lambda: [
                {"keyid": s.key_id, "identity": s.identity, "algorithm": s.algorithm} for s in v.signers
            ],
            "origin": lambda: _origin_input(origin),
            "statement": lambda: self.statement,
        }
        return members


def gather(
    path: str | os.PathLike[str], verified: Verified, kinds: bool = True, heads: Mapping[str, bytes] | None = None
) -> Evidence:
    """The evidence of a tree that verified against `verified`: each file's
    kind (when `kinds`), the model card's front matter and licenses.
    `heads`: files' first bytes kept as the verification hashed them
    (Report.heads): a kind they decide needs no second read."""

    root = os.fspath(path)
    files = tuple(_facts(root, verified, kinds, heads or {}))
    card, card_problem, licenses, license_problem = _card(root, verified)
    return Evidence(verified, files, card, card_problem, licenses, license_problem)


def _listed(verified: Verified) -> list[tuple[str, int | None]]:
    if verified.manifest is not None:
        return [(f.path, f.size) for f in verified.manifest.files]
    assert verified.oms is not None
    return [(name, None) for name, _ in verified.oms.resources]


def _facts(root: str, verified: Verified, kinds: bool, heads: Mapping[str, bytes]) -> list[FileFact]:
    out = []
    digests = dict(verified.oms.resources) if verified.oms is not None else {}  # once, not per file
    for name, size in _listed(verified):
        if not kinds:
            out.append(FileFact(name, size or 0, "other"))
            continue
        head = heads.get(name)
        if head is not None and size is not None and len(head) >= min(size, HEAD):
            kind = sniff(head, size)
            if kind not in ("zip", "npy"):  # those look further in: a verified read
                out.append(FileFact(name, size, kind))
                continue
        try:
            got_size, read_at = _verified_bytes(root, verified, name, digests)
            out.append(FileFact(name, got_size, classify(got_size, read_at)))
        except (MerkleError, OSError) as e:
            out.append(FileFact(name, size or 0, "unreadable", getattr(e, "message", None) or str(e)))
    return out


def _card(
    root: str, verified: Verified
) -> tuple[dict[str, Any] | None, str | None, tuple[str, ...] | None, str | None]:
    """The front matter of README.md and its licenses, each with the reason
    it could not be established."""
    from merkle.hf import verified_readme
    from merkle.hf.license import README, card_licenses, front_matter

    signed = verified.manifest if verified.manifest is not None else verified.oms
    try:
        assert signed is not None
        meta = front_matter(verified_readme(root, signed), README)  # found as the tree check found it
    except (MerkleError, OSError) as e:
        why = f"README.md: {getattr(e, 'message', None) or e}"
        return None, why, None, why
    try:
        return meta, None, card_licenses(meta, README), None
    except MerkleError as e:
        return meta, None, None, e.message


def _verified_bytes(
    root: str, verified: Verified, name: str, oms_digests: Mapping[str, bytes]
) -> tuple[int, Callable[[int, int], bytes]]:
    """(size, read_at) over file `name`'s signed bytes (`oms_digests`: an
    OpenSSF statement's resources, by name)."""
    manifest = verified.manifest
    if manifest is not None:
        return _through_leaves(root, manifest, name)

    def sha256(f: Any) -> bytes:
        return hashlib.file_digest(f, "sha256").digest()

    return _captured(root, name, None, sha256, oms_digests[name])


def _through_leaves(root: str, manifest: Manifest, name: str) -> tuple[int, Callable[[int, int], bytes]]:
    from merkle.verifying.ranges import FileAuth
    from merkle.verifying.reader import VerifiedReader

    entry = manifest.entry(name)
    if entry is None:
        raise IntegrityError("not listed in the manifest", name)
    if entry.size > manifest.chunk_size and manifest.layers is None:  # no leaves to check a part: read it whole
        from merkle.hashing.files import hash_stream

        return _captured(
            root, name, entry.size, lambda f: hash_stream(f, manifest.algorithm, manifest.chunk_size), entry.root
        )
    reader = VerifiedReader(open_file(root, name, False, None), FileAuth.of(manifest, name))

    def read_at(offset: int, length: int) -> bytes:
        reader.seek(offset)
        out = bytearray()
        while len(out) < length:
            got = reader.read(length - len(out))
            if not got:
                break
            out += got
        return bytes(out)

    return entry.size, read_at


def _captured(
    root: str, name: str, size: int | None, digest: Callable[[Any], bytes], want: bytes
) -> tuple[int, Callable[[int, int], bytes]]:
    """One pass over a file (of `size` bytes when the statement says): its
    digest must be `want`; what is kept of it (the first HEAD bytes and the
    last MAX_TAIL) is what read_at serves."""
    head = bytearray()
    tail = bytearray()
    reader = open_file(root, name, False, None) if name != SINGLE_FILE else open_file(root, os.path.basename(root))
    with reader:
        total = reader.size()
        if size is not None and total != size:
            raise IntegrityError("changed since it verified: not examined", name)

        class Capture(io.RawIOBase):
            pos = 0

            def readable(self) -> bool:
                return True

            def readinto(self, b: Any) -> int:
                view = memoryview(b).cast("B")
                n = (
                    reader.read_into(self.pos, view[: max(0, min(len(view), total - self.pos))])
                    if self.pos < total
                    else 0
                )
                self.pos += n
                data = bytes(view[:n])
                if len(head) < HEAD:
                    head.extend(data[: HEAD - len(head)])
                tail.extend(data)
                if len(tail) > MAX_TAIL:
                    del tail[: len(tail) - MAX_TAIL]
                return n

        got = digest(io.BufferedReader(Capture(), 1 << 20))
        reader.check_end()
    if got != want:
        raise IntegrityError("changed since it verified: not examined", name)
    start = total - len(tail)

    def read_at(offset: int, length: int) -> bytes:
        end = min(offset + length, total)
        if end <= len(head):
            return bytes(head[offset:end])
        if offset >= start:
            return bytes(tail[offset - start : end - start])
        raise SourceError(f"bytes {offset}-{end} lie outside what was kept of it in one pass", name)

    return total, read_at


def _origin_input(origin: AnyOrigin | None) -> dict[str, Any] | None:
    """`input.origin`: a Hub repository's id, type and revision, or a git
    repository's URL, commit and dirtiness (with `type` saying which)."""
    from merkle.format.origin import GitOrigin

    if origin is None:
        return None
    if isinstance(origin, GitOrigin):
        return {"type": "git", "url": origin.url, "revision": origin.revision, "dirty": origin.dirty}
    return {"type": "huggingface", "repo_id": origin.repo, "repo_type": origin.repo_type, "revision": origin.revision}
