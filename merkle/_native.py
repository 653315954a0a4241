"""Which implementation serves the hot paths: the C extension (ext/, built by
a normal install when a compiler and OpenSSL's headers are present) or the
pure-Python twins.  Both give identical bytes (tests/test_native.py runs
them side by side); MERKLE_PURE=1 forces the pure path.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Final, Protocol

PURE_ENV: Final = "MERKLE_PURE"


if TYPE_CHECKING:
    from collections.abc import Sequence

    from merkle._merkle import Buffer, _Entry


class Native(Protocol):
    """What the hot paths use of the extension; mypy checks the module
    (typed by _merkle.pyi) against it where it is loaded."""

    BLAKE3: str
    BLAKE3_LANES: int
    SHA256: str

    def chunk_leaves(self, alg: int, data: Buffer, chunk_size: int) -> bytes: ...
    def root_of_leaves(self, alg: int, leaves: Buffer) -> bytes: ...
    def dataset_leaves(self, alg: int, chunk_size: int, files: Sequence[_Entry]) -> bytes: ...
    def dataset_root(self, alg: int, chunk_size: int, files: Sequence[_Entry]) -> bytes: ...
    def levels(self, alg: int, leaves: Buffer) -> list[bytes]: ...
    def hash_files(
        self,
        alg: int,
        chunk_size: int,
        follow_symlinks: bool,
        files: Sequence[tuple[int, bytes, int, tuple[int, int, int, int, int]]],
    ) -> list[bytes | str]: ...
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
