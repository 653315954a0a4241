"""Typed stub of the optional C extension (ext/_merkle.c).  Every function
has a pure-Python twin with identical results (tests/test_native.py);
`alg` is an algorithm code, merkle.tree.hasher.TreeHasher.code."""

from collections.abc import Sequence
from typing import Protocol

Buffer = bytes | bytearray | memoryview

BLAKE3: str
"""Which BLAKE3 code runs: AVX-512, AVX2 or portable C."""
BLAKE3_LANES: int
"""How many chunks it hashes at once: 16 (AVX-512), 8 (AVX2) or 1."""
SHA256: str
"""The OpenSSL version that serves SHA-256."""

class _Entry(Protocol):
    @property
    def path(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def root(self) -> bytes: ...

def hash(alg: int, data: Buffer, prefix: int = -1) -> bytes: ...
def chunk_leaves(alg: int, data: Buffer, chunk_size: int) -> bytes: ...
def root_of_leaves(alg: int, leaves: Buffer) -> bytes: ...
def dataset_leaves(alg: int, chunk_size: int, files: Sequence[_Entry]) -> bytes: ...
def dataset_root(alg: int, chunk_size: int, files: Sequence[_Entry]) -> bytes: ...
def levels(alg: int, leaves: Buffer) -> list[bytes]: ...
def hash_files(
    alg: int,
    chunk_size: int,
    follow_symlinks: bool,
    files: Sequence[tuple[int, bytes, int, tuple[int, int, int, int, int]]],
) -> list[bytes | str]: ...
def hash_range(
    alg: int,
    chunk_size: int,
    follow_symlinks: bool,
    dirfd: int,
    name: bytes,
    size: int,
    identity: tuple[int, int, int, int, int],
    first: int,
    count: int,
) -> bytes | str | None: ...
def faults() -> int: ...
