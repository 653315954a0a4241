"""The parameters a manifest records beside its files (docs/format.md): the
chunk size, a power of two from 1 KiB to 1 GiB (rule F1), and the names a
build leaves out unless told otherwise.  Apart from format/manifest.py, so
that what only hashes (`merkle hash`, the walk) need not import the
manifest and the records it carries.
"""

from __future__ import annotations

from typing import Final

from merkle.errors import FormatError

DEFAULT_CHUNK_SIZE: Final = 1 << 20
MIN_CHUNK_SIZE: Final = 1 << 10
MAX_CHUNK_SIZE: Final = 1 << 30
DEFAULT_EXCLUDES: Final[tuple[str, ...]] = (".git",)


def check_chunk_size(chunk_size: int) -> int:
    if (
        not isinstance(chunk_size, int)
        or isinstance(chunk_size, bool)
        or chunk_size < MIN_CHUNK_SIZE
        or chunk_size > MAX_CHUNK_SIZE
        or chunk_size & (chunk_size - 1)
    ):
        raise FormatError(f"chunk size {chunk_size!r} must be a power of two from {MIN_CHUNK_SIZE} to {MAX_CHUNK_SIZE}")
    return chunk_size
