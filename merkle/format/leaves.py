"""Leaf layers: every chunk digest of every multi-chunk file, kept out of the
signed manifest in a sidecar that authenticates itself against it.

Layout (docs/format.md, rules S1-S3): a 48-byte header
`b"MRKLLEAF" | u8 version=1 | u8 algorithm id | u8 log2(chunk_size) | 5 zero
bytes | dataset root`, then, for each file with two or more chunks in manifest
order, its leaf hashes.  Files of zero or one chunk need no layer: their root
is H("") or their only leaf.  Loading recomputes every file root from its
leaves; a sidecar that disagrees with the manifest is rejected whole.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from merkle.errors import FormatError
from merkle.tree import rfc6962
from merkle.tree.hasher import DIGEST_SIZE

if TYPE_CHECKING:
    from merkle.format.manifest import FileEntry, Manifest

MAGIC: Final = b"MRKLLEAF"
VERSION: Final = 1
HEADER_SIZE: Final = 16 + DIGEST_SIZE


@dataclass(frozen=True)
class LeafLayers:
    """Concatenated leaf hashes by path, for files with two or more chunks."""

    leaves: Mapping[str, bytes]

    @staticmethod
    def _layered(manifest: Manifest) -> list[tuple[FileEntry, int]]:
        """(entry, chunk count) of each file of two or more chunks (one pass,
        no call per file: a million-file manifest is mostly one-chunk files)."""
        cs = manifest.chunk_size
        return [(f, -(-f.size // cs)) for f in manifest.files if f.size > cs]

    @classmethod
    def expected_size(cls, manifest: Manifest, layered: list[tuple[FileEntry, int]] | None = None) -> int:
        layered = cls._layered(manifest) if layered is None else layered
        return HEADER_SIZE + DIGEST_SIZE * sum(n for _, n in layered)

    def leaf_hashes(self, entry: FileEntry, chunk_size: int) -> list[bytes]:
        """All leaf hashes of `entry`'s file."""
        n = rfc6962.chunk_count(entry.size, chunk_size)
        if n == 0:
            return []
        if n == 1:
            return [entry.root]
        return rfc6962.split_leaves(self.leaves[entry.path])

    def check(self, manifest: Manifest, layered: list[tuple[FileEntry, int]] | None = None) -> None:
        """Raise FormatError unless every layer rebuilds its file's root."""
        hasher = manifest.hasher
        layered = self._layered(manifest) if layered is None else layered
        if len(layered) != len(self.leaves):
            raise FormatError("leaf layers do not cover the manifest's multi-chunk files")
        for entry, n in layered:
            data = self.leaves.get(entry.path)
            if data is None or len(data) != n * DIGEST_SIZE:
                raise FormatError(f"leaf layer of {entry.path!r} has the wrong length")
            if rfc6962.root_of_bytes(hasher, data) != entry.root:
                raise FormatError(f"leaf layer of {entry.path!r} does not match its root")

    def to_bytes(self, manifest: Manifest) -> bytes:
        out = bytearray(self._header(manifest))
        for entry, _ in self._layered(manifest):
            out += self.leaves[entry.path]
        return bytes(out)

    @staticmethod
    def _header(manifest: Manifest) -> bytes:
        log2 = manifest.chunk_size.bit_length() - 1
        alg = manifest.hasher.code
        return MAGIC + bytes([VERSION, alg, log2]) + bytes(5) + manifest.root

    @classmethod
    def from_bytes(cls, data: bytes, manifest: Manifest, source: str = "sidecar") -> LeafLayers:
        """Parse a sidecar for `manifest`; FormatError unless it authenticates."""
        try:
            if data[:8] != MAGIC:
                raise FormatError("not a merkle leaf sidecar (bad magic)")
            if data[:HEADER_SIZE] != cls._header(manifest):
                raise FormatError("sidecar header does not match the manifest (version, algorithm, chunk size or root)")
            layered = cls._layered(manifest)
            expected = cls.expected_size(manifest, layered)
            if len(data) != expected:
                raise FormatError(f"sidecar is {len(data)} bytes, want {expected}")
            leaves = {}
            offset = HEADER_SIZE
            for entry, n in layered:
                leaves[entry.path] = data[offset : offset + n * DIGEST_SIZE]
                offset += n * DIGEST_SIZE
            layers = cls(leaves)
            layers.check(manifest, layered)
            return layers
        except FormatError as e:
            raise FormatError(e.message, source) from e
