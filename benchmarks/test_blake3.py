"""merkle's C BLAKE3 against the blake3 package: one core, a buffer in RAM
(256 MiB; 16 MiB in quick mode), in this process (issue 16, goal 1: >= 1.0x
the package on every tier the extension has vector code for).

Cases: the whole buffer as one BLAKE3 input (the extension's `hash`), and
the buffer as Merkle leaves of 16 KiB, 64 KiB and 1 MiB, each leaf
H(0x00 || chunk) (the extension's `chunk_leaves`).  The reference feeds the
package the same bytes: one hasher per chunk, max_threads=1, which is also
what merkle's pure path does (merkle.tree.rfc6962.chunk_leaves_pure).  The
row "merkle chunk_leaves" is what merkle itself runs on this CPU: the
extension, or the package where the extension has only portable C.
Results are checked equal before timing; nothing asserts a time.
"""

from __future__ import annotations

import mmap
from collections.abc import Callable, Iterator

import blake3
import pytest

from merkle import _native
from merkle.tree.hasher import tree_hasher
from merkle.tree.rfc6962 import chunk_leaves, chunk_leaves_pure

from . import datasets
from .settings import SEED, Settings
from .table import BLAKE3_CASES, PACKAGE

WHOLE = BLAKE3_CASES[0]
LEAVES = dict(zip((16 << 10, 64 << 10, 1 << 20), BLAKE3_CASES[1:], strict=True))
BLAKE3 = tree_hasher("blake3")


@pytest.fixture(scope="module")
def buffer(settings: Settings) -> Iterator[memoryview]:
    """Random bytes in a page-aligned anonymous mapping, every page written."""
    size = (16 << 20) if settings.quick else (256 << 20)
    buf = mmap.mmap(-1, size)
    for offset in range(0, size, datasets.PIECE):
        buf.write(datasets.random_bytes(SEED, min(datasets.PIECE, size - offset), offset))
    view = memoryview(buf)
    yield view
    view.release()
    buf.close()


def _extension_tier() -> str:
    """The extension's tier; skips where merkle runs without it (MERKLE_PURE=1, not built)."""
    if _native.native is None:
        pytest.skip(f"no C extension in use: {_native.status}")
    return _native.native.BLAKE3_TIER


def test_whole_buffer_extension(measure: Callable[..., None], buffer: memoryview) -> None:
    tier = _extension_tier()
    from merkle import _merkle

    assert _merkle.hash(BLAKE3.code, buffer) == blake3.blake3(buffer, max_threads=1).digest()
    measure(WHOLE, f"C BLAKE3 ({tier})", lambda: _merkle.hash(BLAKE3.code, buffer), len(buffer))


def test_whole_buffer_package(measure: Callable[..., None], buffer: memoryview) -> None:
    measure(WHOLE, PACKAGE, lambda: blake3.blake3(buffer, max_threads=1).digest(), len(buffer))


@pytest.mark.parametrize("chunk", LEAVES)
def test_leaves_extension(chunk: int, measure: Callable[..., None], buffer: memoryview) -> None:
    tier = _extension_tier()
    from merkle import _merkle

    assert _merkle.chunk_leaves(BLAKE3.code, buffer, chunk) == chunk_leaves_pure(BLAKE3, buffer, chunk)
    measure(LEAVES[chunk], f"C BLAKE3 ({tier})", lambda: _merkle.chunk_leaves(BLAKE3.code, buffer, chunk), len(buffer))


@pytest.mark.parametrize("chunk", LEAVES)
def test_leaves_package(chunk: int, measure: Callable[..., None], buffer: memoryview) -> None:
    measure(LEAVES[chunk], PACKAGE, lambda: chunk_leaves_pure(BLAKE3, buffer, chunk), len(buffer))


@pytest.mark.parametrize("chunk", LEAVES)
def test_leaves_merkle(chunk: int, measure: Callable[..., None], buffer: memoryview) -> None:
    measure(LEAVES[chunk], "merkle chunk_leaves", lambda: chunk_leaves(BLAKE3, buffer, chunk), len(buffer))
