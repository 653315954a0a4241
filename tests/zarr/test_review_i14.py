"""Issue 14, second review, the zarr store's findings: every open confined (class 4), run as a user
would (merkle.zarr.VerifiedStore in a child process, zarr's own LocalStore as the oracle).  Each test
failed on the merged snapshot before its fix."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# -- class 4: every open confined, in every mode ------------------------------------------------------------


def _zarr_tree(tmp_path: Path) -> tuple[Path, Path]:
    zarr = pytest.importorskip("zarr")  # a test extra: CI runs this
    import numpy as np

    path = tmp_path / "data.zarr"
    arr = zarr.create_array(str(path), shape=(8,), chunks=(4,), dtype="i4")
    arr[:] = np.arange(8)
    manifest = tmp_path / "data.json"
    r = subprocess.run(
        [sys.executable, "-m", "merkle", "build", str(path), "-o", str(manifest), "-q"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    return path, manifest


READ_ARRAY = textwrap.dedent("""
    import sys, zarr
    from merkle.zarr import VerifiedStore
    store = VerifiedStore(sys.argv[1], sys.argv[2])
    print(zarr.open_array(store, mode="r")[:].tolist())
""")


def _read_array(path: Path, manifest: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", READ_ARRAY, str(path), str(manifest)], capture_output=True, text=True, timeout=60
    )


def test_the_zarr_store_does_not_read_through_a_link_out_of_the_root(tmp_path):
    """`merkle verify` refuses a chunk that is a symbolic link (W3); VerifiedStore over the same
    local folder read it through the link, out of the root."""
    path, manifest = _zarr_tree(tmp_path)
    outside = tmp_path / "outside-chunk"
    outside.write_bytes((path / "c" / "1").read_bytes())  # the signed bytes, kept outside the tree
    (path / "c" / "1").unlink()
    (path / "c" / "1").symlink_to(outside)
    assert (
        subprocess.run(
            [sys.executable, "-m", "merkle", "verify", str(path), str(manifest), "-q"], capture_output=True, timeout=60
        ).returncode
        == 2
    )
    r = _read_array(path, manifest)
    assert r.returncode != 0 and "[0, 1, 2, 3, 4, 5, 6, 7]" not in r.stdout
    assert "symbolic link refused" in r.stderr and "c/1" in r.stderr
    os.replace(outside, path / "c" / "1")  # the same bytes in the tree: read
    r = _read_array(path, manifest)
    assert r.returncode == 0 and "[0, 1, 2, 3, 4, 5, 6, 7]" in r.stdout, r.stderr


def test_the_zarr_store_does_not_hang_on_a_fifo(tmp_path):
    """A chunk swapped for a FIFO hung VerifiedStore (zarr's LocalStore opens it blocking)."""
    path, manifest = _zarr_tree(tmp_path)
    (path / "c" / "1").unlink()
    os.mkfifo(path / "c" / "1")
    try:
        r = _read_array(path, manifest)
    except subprocess.TimeoutExpired:
        pytest.fail("VerifiedStore hung on a FIFO in place of a chunk")
    assert r.returncode != 0 and "a FIFO, not a regular file" in r.stderr and "c/1" in r.stderr


def test_the_confined_local_store_reads_what_zarrs_local_store_reads(tmp_path):
    """The store VerifiedStore now reads local paths with answers every read (whole, ranges, offsets,
    suffixes, past the end; missing keys and keys under a file) exactly as zarr's LocalStore does."""
    import asyncio
    import pickle

    path, _ = _zarr_tree(tmp_path)
    from zarr.abc.store import OffsetByteRequest, RangeByteRequest, SuffixByteRequest
    from zarr.core.buffer import default_buffer_prototype
    from zarr.storage import LocalStore

    from merkle.zarr.store import ConfinedLocalStore

    async def compare() -> None:
        ours, theirs = ConfinedLocalStore(str(path), read_only=True), LocalStore(str(path), read_only=True)
        proto = default_buffer_prototype()
        for key in ("zarr.json", "c/0", "nope", "c/nope", "zarr.json/x"):
            for r in (
                None,
                RangeByteRequest(2, 10),
                RangeByteRequest(5, 1 << 20),
                OffsetByteRequest(3),
                SuffixByteRequest(4),
                SuffixByteRequest(1 << 20),
                RangeByteRequest(1 << 20, (1 << 20) + 5),
            ):
                a, b = await ours.get(key, proto, r), await theirs.get(key, proto, r)
                assert (a is None) == (b is None), (key, r)
                assert a is None or a.to_bytes() == b.to_bytes(), (key, r)
        assert await ours.getsize("c/0") == await theirs.getsize("c/0")
        with pytest.raises(FileNotFoundError):
            await ours.getsize("nope")
        assert pickle.loads(pickle.dumps(ours)) == ours

    asyncio.run(compare())
