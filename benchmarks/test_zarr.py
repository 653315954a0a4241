"""Verified zarr reads against plain ones, in the same run.

A float32 array of 2 GiB (64 MiB in quick mode), written by zarr without a
compressor (so the cost measured is reading and checking, not decoding) in
4 MiB chunks (1 MiB in quick mode), signed once.  Three reads, each through
zarr's LocalStore ("zarr plain store", the reference) and through
merkle.zarr.VerifiedStore over the same store, each opened once: the full
array (read a row of chunks at a time), a band of rows (within one row of
chunks) and a band of columns (within one column of chunks).  Goal:
VerifiedStore at >= 0.8x the plain store's throughput on the full read
("x ref").  Each row also records how many chunk keys were read, which must
be exactly the chunks the slice touches (asserted).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import merkle

from .settings import Settings
from .table import ZARR_PLAIN

zarr = pytest.importorskip("zarr")
from zarr.abc.store import ByteRequest  # noqa: E402
from zarr.core.buffer import Buffer, BufferPrototype  # noqa: E402
from zarr.storage import LocalStore, WrapperStore  # noqa: E402

from merkle.zarr import VerifiedStore  # noqa: E402

FULL, ROWS, COLUMNS = "zarr full read", "zarr row slice", "zarr column slice"


class Counting(WrapperStore[LocalStore]):
    def __init__(self, store: LocalStore) -> None:
        super().__init__(store)
        self.keys: set[str] = set()

    def _with_store(self, store: LocalStore) -> Counting:
        return self

    async def get(self, key: str, prototype: BufferPrototype, byte_range: ByteRequest | None = None) -> Buffer | None:
        self.keys.add(key)
        return await self._store.get(key, prototype, byte_range)


@pytest.fixture(scope="module")
def signed_array(settings: Settings) -> tuple[Path, Path, tuple[int, int, int]]:
    rows, cols, chunk = (2048, 8192, 512) if settings.quick else (16384, 32768, 1024)
    root = settings.data_dir / f"zarr-{rows}x{cols}.zarr"
    done = root / ".complete"
    if not done.exists():
        array = zarr.create_array(
            str(root), shape=(rows, cols), chunks=(chunk, chunk), dtype="float32", compressors=None, overwrite=True
        )
        rng = np.random.default_rng(7)
        for r in range(0, rows, chunk):  # a band of chunks at a time: memory stays at one band
            array[r : r + chunk] = rng.standard_normal((chunk, cols), dtype=np.float32)
        done.write_text("")
    manifest = settings.data_dir / f"zarr-{rows}x{cols}.merkle.json"
    merkle.build(root, exclude=[".complete"]).save(manifest)
    return root, manifest, (rows, cols, chunk)


def _read(store: object, sel: tuple[slice, slice]) -> Any:
    return zarr.open_array(store=store, mode="r")[sel]


def _read_bands(store: object, rows: int, chunk: int) -> None:
    """The whole array, one row of chunks at a time (as a loader reads it):
    a 2 GiB result per call made the kernel's page-fault time swing by 2x
    between rounds, for both stores."""
    array = zarr.open_array(store=store, mode="r")
    for r in range(0, rows, chunk):
        array[r : r + chunk]


CASES: dict[str, Callable[[int, int, int], tuple[slice, slice]]] = {
    FULL: lambda r, c, k: (slice(None), slice(None)),
    ROWS: lambda r, c, k: (slice(k + 10, k + 60), slice(None)),
    COLUMNS: lambda r, c, k: (slice(None), slice(3 * k + 5, 3 * k + 55)),
}


@pytest.mark.parametrize("tool", [ZARR_PLAIN, "VerifiedStore"])
@pytest.mark.parametrize("case", list(CASES))
def test_zarr_read(
    signed_array: tuple[Path, Path, tuple[int, int, int]], measure: Callable[..., None], case: str, tool: str
) -> None:
    root, manifest, (rows, cols, chunk) = signed_array
    sel = CASES[case](rows, cols, chunk)
    touched = (rows // chunk if sel[0] == slice(None) else 1) * (cols // chunk if sel[1] == slice(None) else 1)
    nbytes = 4 * (rows if sel[0] == slice(None) else 50) * (cols if sel[1] == slice(None) else 50)
    counting = Counting(LocalStore(str(root), read_only=True))
    # opened once, as a reader would (the manifest is loaded and its signature checked once)
    store: object = counting if tool == ZARR_PLAIN else VerifiedStore(counting, manifest)
    first = _read(store, sel)
    assert first.shape == (
        nbytes // 4 // (cols if sel[1] == slice(None) else 50),
        cols if sel[1] == slice(None) else 50,
    )
    assert len([k for k in counting.keys if k.startswith("c/")]) == touched  # k chunks, nothing more
    if case == FULL:
        measure(case, tool, lambda: _read_bands(store, rows, chunk), nbytes)
    else:
        measure(case, tool, lambda: _read(store, sel), nbytes)
