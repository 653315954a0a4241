"""Damage done to files by tests: one byte flipped in place (same inode, same size)."""

from __future__ import annotations

from pathlib import Path


def flip(path: Path | str, offset: int, mask: int = 0x01) -> None:
    """XOR the byte at `offset` of `path` with `mask`, in place."""
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ mask]))
