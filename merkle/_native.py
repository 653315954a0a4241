"""Which implementation serves the hot paths: the C extension (ext/, built by
a normal install when a compiler and OpenSSL's headers are present) or the
pure-Python twins.  Both give identical bytes (tests/test_native.py runs
them side by side); MERKLE_PURE=1 forces the pure path.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar

PURE_ENV: Final = "MERKLE_PURE"


if TYPE_CHECKING:
    from collections.abc import Sequence

    from merkle._merkle import Buffer, _Entry

_T = TypeVar("_T")


class Native(Protocol):
    """What the hot paths use of the extension; mypy checks the module
    (typed by _merkle.pyi) against it where it is loaded."""

    BLAKE3: str
    BLAKE3_TIER: str
    SHA256: str

    def chunk_leaves(self, alg: int, data: Buffer, chunk_size: int) -> bytes: ...
    def root_of_leaves(self, alg: int, leaves: Buffer) -> bytes: ...
    def dataset_leaves(self, alg: int, chunk_size: int, files: Sequence[_Entry]) -> bytes: ...
    def dataset_root(self, alg: int, chunk_size: int, files: Sequence[_Entry]) -> bytes: ...
    def levels(self, alg: int, leaves: Buffer) -> list[bytes]: ...
    def canonical_entries(self, text: str, pos: int, entry_type: type[_T]) -> tuple[list[_T], int] | None: ...
    def plain_entries(self, files: Sequence[_Entry], max_path: int, max_size: int) -> int: ...
    def entries_from(self, entry_type: type[_T], items: Sequence[_Entry]) -> list[_T]: ...
    def entries_json(self, files: Sequence[_Entry], separator: str) -> str | None: ...
    def hash_files(
        self,
        alg: int,
        chunk_size: int,
        follow_symlinks: bool,
        files: Sequence[tuple[int, bytes, int, tuple[int, int, int, int, int]]],
        head: int = 0,
    ) -> list[Any]: ...
    def hash_range(
        self,
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


def _load() -> tuple[Native | None, str]:
    """The one place the pure/native choice is made."""
    if os.environ.get(PURE_ENV, "") not in ("", "0"):
        return None, f"pure Python (forced by {PURE_ENV}={os.environ[PURE_ENV]})"
    try:
        from merkle import _merkle
    except ImportError:
        return None, "pure Python (the C extension merkle._merkle is not installed: no compiler at install time?)"
    return _merkle, "native (C extension merkle._merkle)"


native, status = _load()


def _bulk_blake3() -> tuple[bool, str]:
    """Whether bulk BLAKE3 (the leaves of files) runs in the extension, and why.

    Where the extension has no vector code for this CPU (no AVX2 on x86, or
    any other architecture), its portable C is several times slower than the
    blake3 package, which has SSE4.1 and NEON code: bulk leaves then go to
    the package.  Node hashes stay in the extension either way (a 65-byte
    input, where the cost of a call decides)."""
    if native is None:
        return False, "blake3 package (pure Python paths)"
    tier = native.BLAKE3_TIER
    if tier == "portable":
        return False, "blake3 package: the C extension has no vector code for this CPU (its portable C is slower)"
    return True, f"C extension, {tier.upper().replace('AVX512', 'AVX-512')}"


bulk_blake3, blake3_engine = _bulk_blake3()

BLAKE3_CODE: Final = 1  # merkle.tree.hasher.TreeHasher.code of BLAKE3


def bulk(code: int) -> Native | None:
    """The extension, where it should hash files' leaves with algorithm
    `code` (a TreeHasher.code); None where the Python path is faster."""
    if code == BLAKE3_CODE and not bulk_blake3:
        return None
    return native
