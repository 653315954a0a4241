"""A file proof: one file's entry and its RFC 9162 inclusion proof in the
dataset tree.  With a (compact) signed statement it checks a single file of
a million-file dataset without the manifest (docs/partial.md, rules C1-C3).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from merkle.display import shown
from merkle.errors import FormatError, IntegrityError, ProofError
from merkle.format import strictjson
from merkle.format.manifest import MAX_FILE_SIZE, FileEntry, Manifest, Summary, _hex_digest
from merkle.format.paths import path_problem
from merkle.tree import rfc6962
from merkle.tree.hasher import tree_hasher

FORMAT: Final = "merkle-file-proof-v1"
MAX_PROOF_BYTES: Final = 1 << 20
_KEYS: Final = ("format", "path", "size", "root", "index", "tree_size", "proof")


@dataclass(frozen=True)
class FileProof:
    entry: FileEntry
    index: int
    tree_size: int
    hashes: tuple[bytes, ...]

    def verify(self, summary: Summary) -> None:
        """ProofError unless the entry is leaf `index` of the signed dataset tree."""
        if self.tree_size != summary.files:
            raise ProofError(f"proof is for a tree of {self.tree_size} files, the signed one has {summary.files}")
        hasher = tree_hasher(summary.algorithm)
        leaf = hasher.leaf(self.entry.leaf_data(summary.chunk_size))
        rfc6962.verify_inclusion(hasher, self.index, self.tree_size, leaf, list(self.hashes), summary.root)

    def to_json(self) -> bytes:
        e = self.entry
        doc = {
            "format": FORMAT,
            "path": e.path,
            "size": e.size,
            "root": e.root.hex(),
            "index": self.index,
            "tree_size": self.tree_size,
            "proof": [h.hex() for h in self.hashes],
        }
        return (strictjson.dumps(doc) + "\n").encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes, source: str = "proof") -> FileProof:
        doc = strictjson.loads(data, source, MAX_PROOF_BYTES)
        try:
            return cls._from_doc(doc)
        except FormatError as e:
            raise FormatError(e.message, source) from e

    @classmethod
    def _from_doc(cls, doc: Any) -> FileProof:
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise FormatError(f"not a merkle file proof (format {FORMAT!r})")
        strictjson.exact_keys(doc, _KEYS, "file proof")
        for key in ("size", "index", "tree_size"):
            v = doc[key]
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= MAX_FILE_SIZE:
                raise FormatError(f"{key} is not a count from 0 to {MAX_FILE_SIZE}")
        if not isinstance(doc["path"], str) or not isinstance(doc["proof"], list) or len(doc["proof"]) > 64:
            raise FormatError("path must be a string and proof a list of at most 64 hashes")
        # Unauthenticated until the proof verifies, and printed either way:
        # only a path a manifest could hold (P1-P7).
        problem = path_problem(doc["path"])
        if problem:
            raise FormatError(f"path '{shown(doc['path'])}': {problem}")
        entry = FileEntry(doc["path"], doc["size"], _hex_digest(doc["root"], "root"))
        hashes = tuple(_hex_digest(h, f"proof[{i}]") for i, h in enumerate(doc["proof"]))
        return cls(entry, doc["index"], doc["tree_size"], hashes)


def prove(manifest: Manifest, path: str) -> FileProof:
    """The proof that `path`'s entry is in `manifest`'s dataset tree."""
    (proof,) = prove_many(manifest, [path])
    return proof


def prove_many(manifest: Manifest, paths: Iterable[str]) -> list[FileProof]:
    """The proofs of `paths`' entries, in that order, from one pass over the
    dataset tree (each further proof costs a lookup and log2(files) hashes
    copied).  IntegrityError naming the first path the manifest does not list."""
    files = manifest.files
    indices = []
    for path in paths:
        try:
            indices.append(manifest.index(path))
        except KeyError:
            raise IntegrityError("not listed in the manifest", path) from None
    hasher = manifest.hasher
    tree = rfc6962.flat_levels(hasher, manifest.dataset_leaves())
    return [FileProof(files[i], i, len(files), tuple(rfc6962.inclusion_proof_flat(tree, i))) for i in indices]
