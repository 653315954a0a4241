"""merkle: content-addressed integrity for large ML models and datasets.

The data flow, one folder per arrow (docs/architecture.md)::

    directory or bucket --source--> files --hashing (threads, chunked reads)--> leaf hashes
      --tree--> file roots --format--> manifest, dataset root (+ leaf sidecar)
      --signing--> bundle (in-toto statement in a DSSE envelope)
      --verifying--> Report (=, *, -, +, ! per file), or one file, a byte range, a reader

      --guarding--> a loader handed only the verified bytes (sealed copies or pinned files)

building.py and verifying/ are the two flows, guarding/ the use step after
them; hf/, zarr/ and dask.py plug into them; cli/ is argparse and printing.

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

    with merkle.guard("model/", "model.bundle.json", name="model", keys=["release.pub"]) as g:
        tensors = safetensors.numpy.load_file(g.path("model.safetensors"))   # the sealed, verified bytes
        tokenizer = AutoTokenizer.from_pretrained(g.directory())             # only the files that verified
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: `merkle --version` imports no more than this
if TYPE_CHECKING:
    from typing import Any

    from merkle.building import BuildOptions, build
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
    from merkle.format.fileproof import FileProof, prove
    from merkle.format.leaves import LeafLayers
    from merkle.format.manifest import FileEntry, Manifest
    from merkle.format.parameters import DEFAULT_CHUNK_SIZE
    from merkle.guarding.guard import Guard, guard
    from merkle.hashing.engine import FileDigest
    from merkle.hashing.files import hash_file, hash_paths, hash_stream
    from merkle.hashing.options import HashOptions
    from merkle.report import Outcome, Progress, Report, Status
    from merkle.signing.trust import TrustPolicy
    from merkle.signing.writing import sign
    from merkle.source.listing import WalkOptions
    from merkle.tree.hasher import ALGORITHMS, DEFAULT_ALGORITHM, Algorithm
    from merkle.tree.ranges import RangeProof, range_proof
    from merkle.verifying.audit import audit_fast, audit_full, audit_sample
    from merkle.verifying.reader import open
    from merkle.verifying.signed import policy_from_files, verify_signed
    from merkle.verifying.single_file import read_file_proof, verify_with_proof
    from merkle.verifying.tree import CheckOptions, verify

_LAZY = {
    # Every name of the API is imported when first used, so that `import merkle` (and so every `merkle`
    # command, whose package this is) costs nothing: signing would load cryptography, building the engine.
    "build": "merkle.building",
    "BuildOptions": "merkle.building",
    "ChunkError": "merkle.errors",
    "FormatError": "merkle.errors",
    "IntegrityError": "merkle.errors",
    "MerkleError": "merkle.errors",
    "PathError": "merkle.errors",
    "ProofError": "merkle.errors",
    "SourceError": "merkle.errors",
    "UnsupportedError": "merkle.errors",
    "UsageError": "merkle.errors",
    "FileProof": "merkle.format.fileproof",
    "prove": "merkle.format.fileproof",
    "LeafLayers": "merkle.format.leaves",
    "DEFAULT_CHUNK_SIZE": "merkle.format.parameters",
    "Guard": "merkle.guarding.guard",
    "guard": "merkle.guarding.guard",
    "FileEntry": "merkle.format.manifest",
    "Manifest": "merkle.format.manifest",
    "FileDigest": "merkle.hashing.engine",
    "hash_file": "merkle.hashing.files",
    "hash_paths": "merkle.hashing.files",
    "hash_stream": "merkle.hashing.files",
    "HashOptions": "merkle.hashing.options",
    "Outcome": "merkle.report",
    "Progress": "merkle.report",
    "Report": "merkle.report",
    "Status": "merkle.report",
    "TrustPolicy": "merkle.signing.trust",
    "sign": "merkle.signing.writing",
    "WalkOptions": "merkle.source.listing",
    "ALGORITHMS": "merkle.tree.hasher",
    "DEFAULT_ALGORITHM": "merkle.tree.hasher",
    "Algorithm": "merkle.tree.hasher",
    "RangeProof": "merkle.tree.ranges",
    "range_proof": "merkle.tree.ranges",
    "audit_fast": "merkle.verifying.audit",
    "audit_full": "merkle.verifying.audit",
    "audit_sample": "merkle.verifying.audit",
    "open": "merkle.verifying.reader",
    "policy_from_files": "merkle.verifying.signed",
    "verify_signed": "merkle.verifying.signed",
    "read_file_proof": "merkle.verifying.single_file",
    "verify_with_proof": "merkle.verifying.single_file",
    "CheckOptions": "merkle.verifying.tree",
    "verify": "merkle.verifying.tree",
}
"""Where each public name lives: `merkle.NAME` imports its module on first use."""


def __getattr__(name: str) -> Any:
    """A name of the API: its module is imported on first use, and the name
    kept here, so later uses are plain attribute reads."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


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
    "Guard",
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
    "guard",
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
