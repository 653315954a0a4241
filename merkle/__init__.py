"""merkle: content-addressed integrity for large ML models and datasets.

The data flow, one module per arrow::

    directory --walk--> files --engine (threads, chunked reads)--> leaf hashes
      --tree--> file roots --manifest--> dataset root (+ leaf sidecar)
      --verify--> Report (=, *, -, +, ! per file)

Typical use::

    import merkle
    m = merkle.build("model/")            # Manifest, immutable and validated
    m.save("model.merkle.json")           # + model.merkle.json.leaves
    report = merkle.verify("model/", "model.merkle.json")
    if not report:
        print(report.summary())
    report.raise_for_failure()            # the raising form of the same check

    merkle.sign(m, "release.key", "model.bundle.json", name="model")   # + .leaves
    verified, report = merkle.verify_signed("model/", ["model.bundle.json"], keys=["release.pub"])

    with merkle.open("model/model.safetensors", "model.bundle.json",
                     name="model.safetensors", keys=["release.pub"]) as f:
        f.seek(1 << 30)
        data = f.read(4096)               # every byte verified before it is returned
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from merkle.building import build
from merkle.errors import (
    ChunkError,
    FormatError,
    IntegrityError,
    MerkleError,
    PathError,
    ProofError,
    SourceError,
    UnsupportedError,
    UsageError,
)
from merkle.format.leaves import LeafLayers
from merkle.format.manifest import DEFAULT_CHUNK_SIZE, FileEntry, Manifest
from merkle.hashing.engine import FileDigest
from merkle.hashing.files import hash_file, hash_paths, hash_stream
from merkle.report import Outcome, Progress, Report, Status
from merkle.tree.hasher import ALGORITHMS, DEFAULT_ALGORITHM, Algorithm
from merkle.tree.ranges import RangeProof, range_proof
from merkle.verifying.reader import open
from merkle.verifying.tree import verify

if TYPE_CHECKING:
    from merkle.signing.trust import TrustPolicy
    from merkle.signing.writing import sign
    from merkle.verifying.signed import policy_from_files, verify_signed

_SIGNING = {
    "TrustPolicy": "signing.trust",
    "policy_from_files": "verifying.signed",
    "sign": "signing.writing",
    "verify_signed": "verifying.signed",
}


def __getattr__(name: str) -> Any:
    """The signing API, imported on first use (it loads cryptography)."""
    if name in _SIGNING:
        import importlib

        return getattr(importlib.import_module(f".{_SIGNING[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__version__ = "0.1.0"

__all__ = [
    "ALGORITHMS",
    "DEFAULT_ALGORITHM",
    "DEFAULT_CHUNK_SIZE",
    "Algorithm",
    "ChunkError",
    "FileDigest",
    "FileEntry",
    "FormatError",
    "IntegrityError",
    "LeafLayers",
    "Manifest",
    "MerkleError",
    "Outcome",
    "PathError",
    "Progress",
    "ProofError",
    "Report",
    "SourceError",
    "Status",
    "TrustPolicy",
    "UnsupportedError",
    "UsageError",
    "build",
    "hash_file",
    "hash_paths",
    "hash_stream",
    "open",
    "policy_from_files",
    "range_proof",
    "RangeProof",
    "sign",
    "verify",
    "verify_signed",
]
