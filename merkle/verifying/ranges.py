"""Checking parts of a file: byte ranges, and repair plans for partial or
damaged downloads.  Only the chunks that cover what is asked are read; each
is checked with a range proof against the file's signed root.

A file's chunk leaves come from the leaf sidecar, which must authenticate
against the manifest (it is rebuilt into every file root when loaded); a file
of one chunk needs no sidecar (its root is its leaf).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from merkle.errors import ChunkError, IntegrityError, ProofError, UsageError
from merkle.format.manifest import FileEntry, Manifest
from merkle.source.readers import Reader, in_hole
from merkle.tree import rfc6962
from merkle.tree.hasher import TreeHasher
from merkle.tree.ranges import RangeProof, covering_chunks, range_proof

READ_PIECE = 4 << 20


@dataclass(frozen=True)
class FileAuth:
    """What authenticates one file's chunks: its entry and leaf hashes that
    rebuild the signed root."""

    entry: FileEntry
    chunk_size: int
    hasher: TreeHasher
    leaves: tuple[bytes, ...]

    @classmethod
    def of(cls, manifest: Manifest, name: str) -> FileAuth:
        entry = manifest.entry(name)
        if entry is None:
            raise IntegrityError("not listed in the manifest", name)
        n = rfc6962.chunk_count(entry.size, manifest.chunk_size)
        if n > 1 and manifest.layers is None:
            raise IntegrityError(
                "checking part of a multi-chunk file needs the leaf sidecar (MANIFEST.leaves or BUNDLE.leaves) "
                "that matches the signed root",
                name,
            )
        leaves = (
            manifest.layers.leaf_hashes(entry, manifest.chunk_size)
            if manifest.layers
            else ([entry.root] if n == 1 else [])
        )
        return cls(entry, manifest.chunk_size, manifest.hasher, tuple(leaves))

    @property
    def name(self) -> str:
        return self.entry.path

    @property
    def chunks(self) -> int:
        return len(self.leaves)

    def chunk_span(self, index: int) -> tuple[int, int]:
        start = index * self.chunk_size
        return start, min(start + self.chunk_size, self.entry.size)

    @cached_property
    def _levels(self) -> list[rfc6962.Level]:
        return rfc6962.levels(self.hasher, list(self.leaves))

    def proof(self, first: int, last: int) -> RangeProof:
        """The range proof for chunks [first, last), from the sidecar."""
        return range_proof(self.hasher, self._levels, first, last)

    def check(self, first: int, hashes: list[bytes]) -> None:
        """Raise ChunkError naming the first bad chunk unless `hashes` (leaf
        hashes of chunks first, first+1, ...) verify against the file root,
        through a range proof."""
        proof = self.proof(first, first + len(hashes))
        try:
            proof.verify(self.hasher, hashes, self.entry.root)
        except ProofError:
            self.check_leaves(first, hashes)
            raise  # unreachable: a proof fails only when a leaf differs

    def check_leaves(self, first: int, hashes: list[bytes]) -> None:
        """The same verdict as `check`, by comparing with the leaves, which
        were authenticated against the root when the sidecar was loaded: the
        per-chunk path of verified reads."""
        for i, h in enumerate(hashes):
            if h != self.leaves[first + i]:
                a, b = self.chunk_span(first + i)
                raise ChunkError(
                    f"chunk {first + i} (bytes {a}-{b}) does not match the signed root", self.name, first + i
                )


def hash_chunk(source: Reader, auth: FileAuth, index: int, view: memoryview) -> bytes | None:
    """Leaf hash of chunk `index` read from `source`, or None if the source
    ends before the chunk does.  `view` is scratch space."""
    start, end = auth.chunk_span(index)
    h = auth.hasher.leaf_hasher()
    offset = start
    while offset < end:
        want = min(len(view), end - offset)
        got = source.read_into(offset, view[:want])
        if got < want:
            return None
        h.update(view[:got])
        offset += got
    return h.digest()


@dataclass(frozen=True)
class RangeCheck:
    name: str
    offset: int
    length: int
    first_chunk: int
    last_chunk: int
    bytes_read: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.name,
            "ok": True,
            "offset": self.offset,
            "length": self.length,
            "chunks": [self.first_chunk, self.last_chunk],
            "bytes_read": self.bytes_read,
        }


def verify_range(source: Reader, auth: FileAuth, offset: int, length: int) -> RangeCheck:
    """Check bytes [offset, offset + length) by reading only their chunks.
    IntegrityError (ChunkError for a bad chunk) unless they match.  A range
    of no bytes (but the whole of an empty file) or one past the signed size
    is a UsageError, decided before the file is looked at: it would check
    nothing, and nothing may be called verified by it."""
    if length <= 0 and not offset == length == auth.entry.size == 0:
        raise UsageError(f"range [{offset}, {offset + length}) holds no bytes: it would check nothing", auth.name)
    try:
        first, last = covering_chunks(offset, length, auth.chunk_size, auth.entry.size)
    except UsageError as e:
        raise UsageError(e.message, auth.name) from e
    size = source.size()
    if size != auth.entry.size:
        raise IntegrityError(f"file is {size} bytes, signed {auth.entry.size}", auth.name)
    view = memoryview(bytearray(min(auth.chunk_size, READ_PIECE)))
    hashes = []
    read = 0
    for i in range(first, last):
        h = hash_chunk(source, auth, i, view)
        if h is None:
            raise IntegrityError(f"ends inside chunk {i}: shorter than signed", auth.name)
        a, b = auth.chunk_span(i)
        read += b - a
        hashes.append(h)
    if hashes:
        auth.check(first, hashes)
    return RangeCheck(auth.name, offset, length, first, last, read)


@dataclass(frozen=True)
class RepairPlan:
    """Per chunk: good, bad (wrong bytes) or missing (beyond the end of the
    local file, or in a hole); and the byte ranges to fetch again."""

    name: str
    size: int
    local_size: int
    chunk_size: int
    status: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return self.local_size == self.size and all(s == "good" for s in self.status)

    @property
    def fetch(self) -> list[tuple[int, int]]:
        """Merged half-open byte ranges [start, end) to download again."""
        out: list[tuple[int, int]] = []
        for i, s in enumerate(self.status):
            if s == "good":
                continue
            start, end = i * self.chunk_size, min((i + 1) * self.chunk_size, self.size)
            if out and out[-1][1] == start:
                out[-1] = (out[-1][0], end)
            else:
                out.append((start, end))
        return out

    def counts(self) -> dict[str, int]:
        return {k: self.status.count(k) for k in ("good", "bad", "missing")}

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.name,
            "ok": self.ok,
            "size": self.size,
            "local_size": self.local_size,
            "chunk_size": self.chunk_size,
            "chunks": self.counts(),
            "bad_chunks": [i for i, s in enumerate(self.status) if s == "bad"],
            "missing_chunks": [i for i, s in enumerate(self.status) if s == "missing"],
            "fetch": [{"start": a, "end": b} for a, b in self.fetch],
        }


def repair_plan(source: Reader, auth: FileAuth, local_path: str | None = None) -> RepairPlan:
    """Hash every chunk that is present and sort chunks into good, bad and
    missing.  For a local source (one that has `in_hole`, or with
    `local_path`, the same file named again), a chunk lying wholly in a hole
    of a sparse file is not read: it is good if the signed chunk is all
    zeros, else missing (a download that has not reached it)."""
    local_size = source.size()
    view = memoryview(bytearray(min(auth.chunk_size, READ_PIECE)))
    zero_leaves: dict[int, bytes] = {}
    holes: Callable[[int, int], bool] | None = getattr(source, "in_hole", None)
    if local_path:
        holes = functools.partial(_in_hole, local_path)
    status = []
    for i in range(auth.chunks):
        start, end = auth.chunk_span(i)
        if end > local_size:
            status.append("missing")
        elif holes is not None and holes(start, end):
            # A hole reads as zeros, which may be exactly what was signed.
            if end - start not in zero_leaves:
                zero_leaves[end - start] = auth.hasher.leaf(bytes(end - start))
            status.append("good" if zero_leaves[end - start] == auth.leaves[i] else "missing")
        else:
            h = hash_chunk(source, auth, i, view)
            status.append("good" if h == auth.leaves[i] else "bad")
    return RepairPlan(auth.name, auth.entry.size, local_size, auth.chunk_size, tuple(status))


def _in_hole(path: str, start: int, end: int) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        return in_hole(fd, start, end)
    finally:
        os.close(fd)
