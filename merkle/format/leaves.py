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

import io
import os
from collections.abc import Callable, Mapping
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
MAX_SIDECAR: Final = 4 << 30
"""The largest sidecar loaded (128 Mi chunks: 128 TiB at 1 MiB chunks).  The
length a sidecar must have comes from the manifest, which need not be signed:
one claiming an exabyte file must not make a load read (and hold) that much."""


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
    def read(cls, fd: int, file_size: int, manifest: Manifest, source: str = "sidecar") -> LeafLayers:
        """Read and authenticate the sidecar open as `fd` (`file_size` bytes),
        layer by layer: the first layer that does not rebuild its root ends the
        read, and nothing past MAX_SIDECAR is read at all."""

        def take(n: int) -> bytes:
            return _read_exactly(fd, n)

        layers = cls._load(take, file_size, manifest, source)
        if os.read(fd, 1):
            raise FormatError("sidecar grew while it was read", source)
        return layers

    @classmethod
    def from_bytes(cls, data: bytes, manifest: Manifest, source: str = "sidecar") -> LeafLayers:
        """Parse a sidecar for `manifest`; FormatError unless it authenticates."""
        view = io.BytesIO(data)
        return cls._load(view.read, len(data), manifest, source)

    @classmethod
    def _load(cls, take: Callable[[int], bytes], size: int, manifest: Manifest, source: str) -> LeafLayers:
        """The layers `take` gives, `size` bytes in all (format rules S1-S3)."""
        expected = 0
        try:
            layered = cls._layered(manifest)
            expected = cls.expected_size(manifest, layered)
            if expected > MAX_SIDECAR:
                raise FormatError(
                    f"the manifest's files need a {expected}-byte sidecar, over the {MAX_SIDECAR}-byte limit"
                )
            header = take(min(size, HEADER_SIZE))
            if header[:8] != MAGIC:
                raise FormatError("not a merkle leaf sidecar (bad magic)")
            if header != cls._header(manifest):
                raise FormatError("sidecar header does not match the manifest (version, algorithm, chunk size or root)")
            if size != expected:
                raise FormatError(f"sidecar is {size} bytes, want {expected}")
            hasher = manifest.hasher
            leaves = {}
            for entry, n in layered:
                data = take(n * DIGEST_SIZE)
                if rfc6962.root_of_bytes(hasher, data) != entry.root:
                    raise FormatError(f"leaf layer of {entry.path!r} does not match its root")
                leaves[entry.path] = data
            return cls(leaves)
        except FormatError as e:
            raise FormatError(e.message, source) from e
        except MemoryError:
            raise FormatError(f"{expected} bytes of leaf layers do not fit in memory", source) from None


def _read_exactly(fd: int, n: int) -> bytes:
    """`n` bytes from `fd`; FormatError if the file ends first."""
    data = os.read(fd, n)
    if len(data) == n:
        return data
    parts, got = [data], len(data)
    while got < n:
        more = os.read(fd, min(n - got, 1 << 30))
        if not more:
            raise FormatError("sidecar ends early (was it cut while being read?)")
        parts.append(more)
        got += len(more)
    return b"".join(parts)
