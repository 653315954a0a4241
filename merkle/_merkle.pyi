"""Typed stub of the optional C extension (ext/_merkle.c).  Every function
has a pure-Python twin with identical results (tests/test_native.py);
`alg` is an algorithm code, merkle.tree.hasher.TreeHasher.code."""

from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

_T = TypeVar("_T")

Buffer = bytes | bytearray | memoryview

BLAKE3: str
"""Which BLAKE3 code runs, in words."""
BLAKE3_TIER: str
"""The vector tier of the extension's BLAKE3: "avx512", "avx2" or "portable"
(chosen at import from the CPU; MERKLE_NO_AVX512 / MERKLE_NO_AVX2 mask the
wider tiers)."""
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
def canonical_entries(text: str, pos: int, entry_type: type[_T]) -> tuple[list[_T], int] | None: ...
def plain_entries(files: Sequence[_Entry], max_path: int, max_size: int) -> int: ...
def entries_from(entry_type: type[_T], items: Sequence[_Entry]) -> list[_T]: ...
def entries_json(files: Sequence[_Entry], separator: str) -> str | None: ...
def hash_files(
    alg: int,
    chunk_size: int,
    follow_symlinks: bool,
    files: Sequence[tuple[int, bytes, int, tuple[int, int, int, int, int]]],
    head: int = 0,
) -> list[Any]: ...
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
