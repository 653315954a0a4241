"""One file of a signed dataset checked on its own: whole, against a file
proof and the signed summary (no manifest needed, docs/partial.md rules
C1-C3); or one tensor of a safetensors file, reading only the chunks that
hold its header and its bytes.
"""

from __future__ import annotations

import os
from typing import BinaryIO, cast

from merkle.errors import IntegrityError
from merkle.format.fileproof import MAX_PROOF_BYTES, FileProof
from merkle.format.manifest import Summary
from merkle.format.tensors import TensorInfo, find_tensor
from merkle.hashing.files import hash_file
from merkle.source.local import read_capped
from merkle.source.readers import Reader
from merkle.verifying.ranges import FileAuth
from merkle.verifying.reader import VerifiedReader

TENSOR_PIECE = 1 << 20


def read_file_proof(path: str | os.PathLike[str]) -> FileProof:
    """A file proof from its file (size capped before decoding)."""
    name = os.fspath(path)
    return FileProof.from_json(read_capped(name, MAX_PROOF_BYTES), name)


def verify_with_proof(path: str | os.PathLike[str], proof: FileProof, summary: Summary) -> None:
    """The file at `path` against a signed dataset root: `proof` shows that
    its entry is in the signed tree, then the file's bytes must hash to the
    entry.  ProofError or IntegrityError (naming `path`) otherwise; the size
    is compared first, so a grown file is refused unread."""
    name = os.fspath(path)
    proof.verify(summary)
    size = os.stat(name).st_size
    if size != proof.entry.size:
        raise IntegrityError(f"size {size}, signed {proof.entry.size}", name)
    if hash_file(name, summary.algorithm, summary.chunk_size) != proof.entry.root:
        raise IntegrityError("content differs", name)


def verify_tensor(source: Reader, auth: FileAuth, name: str) -> TensorInfo:
    """Check tensor `name` of the safetensors file `source` (and the header
    that places it): both are read through one unbuffered VerifiedReader,
    so exactly the chunks that hold them are read (a chunk shared by both,
    once) and nothing unverified is parsed.  The tensor's bytes are not
    kept.  IntegrityError (ChunkError for a bad chunk) unless they match;
    FormatError or UsageError for a header that does not place `name`."""
    reader = VerifiedReader(source, auth)
    info = find_tensor(cast(BinaryIO, reader), name, auth.entry.size, source.name)
    reader.seek(info.start)
    view = memoryview(bytearray(min(max(auth.chunk_size, 1 << 16), TENSOR_PIECE)))
    remaining = info.end - info.start
    while remaining:
        got = reader.readinto(view[: min(len(view), remaining)])
        if not got:
            raise IntegrityError("ends before the tensor does", source.name)
        remaining -= got
    return info
