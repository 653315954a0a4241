"""merkle: content-addressed integrity for large ML models and datasets.

The data flow, one folder per arrow (docs/architecture.md)::

    directory or bucket --source--> files --hashing (threads, chunked reads)--> leaf hashes
      --tree--> file roots --format--> manifest, dataset root (+ leaf sidecar)
      --signing--> bundle (in-toto statement in a DSSE envelope)
      --verifying--> Report (=, *, -, +, ! per file), or one file, a byte range, a reader

building.py and verifying/ are the two flows; hf/, zarr/ and dask.py plug
into them; cli/ is argparse and printing.

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
    from merkle.building import BuildOptions
    from merkle.format.fileproof import FileProof, prove
    from merkle.hashing.options import HashOptions
    from merkle.signing.trust import TrustPolicy
    from merkle.signing.writing import sign
    from merkle.source.listing import WalkOptions
    from merkle.verifying.audit import audit_fast, audit_full, audit_sample
    from merkle.verifying.signed import policy_from_files, verify_signed
    from merkle.verifying.single_file import read_file_proof, verify_with_proof
    from merkle.verifying.tree import CheckOptions

_LAZY = {
    # signing loads cryptography; the rest is imported when first used
    "TrustPolicy": "merkle.signing.trust",
    "policy_from_files": "merkle.verifying.signed",
    "sign": "merkle.signing.writing",
    "verify_signed": "merkle.verifying.signed",
    "FileProof": "merkle.format.fileproof",
    "prove": "merkle.format.fileproof",
    "read_file_proof": "merkle.verifying.single_file",
    "verify_with_proof": "merkle.verifying.single_file",
    "audit_fast": "merkle.verifying.audit",
    "audit_full": "merkle.verifying.audit",
    "audit_sample": "merkle.verifying.audit",
    "BuildOptions": "merkle.building",
    "HashOptions": "merkle.hashing.options",
    "WalkOptions": "merkle.source.listing",
    "CheckOptions": "merkle.verifying.tree",
}


def __getattr__(name: str) -> Any:
    """Names of the API whose modules load on first use."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__version__ = "0.1.0"

__all__ = [
    "BuildOptions",
    "CheckOptions",
    "FileProof",
    "HashOptions",
    "WalkOptions",
    "audit_fast",
    "audit_full",
    "audit_sample",
    "prove",
    "read_file_proof",
    "verify_with_proof",
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
