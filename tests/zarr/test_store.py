"""Zarr stores written by zarr itself, signed by merkle, then tampered with:
every change is caught on read through VerifiedStore, naming the array and
the key, where zarr alone returns wrong values without a word."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from support.cli import assert_one_line_error

import merkle
from merkle.errors import FormatError, PathError, SignatureError, UsageError
from merkle.format.manifest import Manifest

zarr = pytest.importorskip("zarr")  # the [zarr] extra; the test extras install it, so CI runs these
from zarr.abc.store import RangeByteRequest, SuffixByteRequest  # noqa: E402
from zarr.core.buffer import default_buffer_prototype  # noqa: E402
from zarr.storage import LocalStore, WrapperStore  # noqa: E402

from merkle.zarr import VerifiedStore, ZarrIntegrityError  # noqa: E402


@dataclass(frozen=True)
class Case:
    name: str
    fmt: int
    dtype: str
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    shards: tuple[int, ...] | None = None
    separator: str | None = None  # v2 dimension_separator, or v3 'v2' chunk key encoding with '.'


CASES = [
    Case("v3-float32", 3, "float32", (60, 50), (16, 16)),
    Case("v3-int16-sharded", 3, "int16", (64, 48), (8, 8), shards=(32, 16)),
    Case("v3-uint8-v2keys", 3, "uint8", (40, 30, 6), (10, 10, 3), separator="."),
    Case("v2-float64", 2, "float64", (50, 40), (20, 15)),
    Case("v2-int32-nested", 2, "int32", (30, 30, 4), (10, 10, 4), separator="/"),
    Case("v3-complex64", 3, "complex64", (33,), (8,)),
]
IDS = [c.name for c in CASES]


def values(case: Case, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(np.prod(case.shape))
    if case.dtype.startswith("complex"):
        return (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(case.dtype).reshape(case.shape)
    if case.dtype.startswith("float"):
        return rng.standard_normal(n).astype(case.dtype).reshape(case.shape)
    info = np.iinfo(case.dtype)
    ints = rng.integers(max(info.min, -1000), min(info.max, 1000), n, endpoint=True)
    return ints.astype(case.dtype).reshape(case.shape)


def write_store(root: Path, case: Case, seed: int = 0) -> np.ndarray:
    """A group holding the case's array at 'data' and a small second array
    at 'aux/labels', written by zarr."""
    group = zarr.open_group(str(root), mode="w", zarr_format=case.fmt)
    kwargs = {}
    if case.fmt == 2 and case.separator:
        kwargs["chunk_key_encoding"] = {"name": "v2", "separator": case.separator}
    elif case.fmt == 3 and case.separator:
        kwargs["chunk_key_encoding"] = {"name": "v2", "separator": case.separator}
    if case.shards:
        kwargs["shards"] = case.shards
    array = group.create_array("data", shape=case.shape, chunks=case.chunks, dtype=case.dtype, **kwargs)
    data = values(case, seed)
    array[...] = data
    labels = group.create_group("aux").create_array("labels", shape=(10,), chunks=(4,), dtype="int64")
    labels[...] = np.arange(10)
    array.attrs["units"] = "kelvin"
    return data


def chunk_keys(root: Path, array: str = "data") -> list[str]:
    """The stored chunk (or shard) objects of an array, as store keys."""
    meta = {"zarr.json", ".zarray", ".zattrs", ".zgroup"}
    base = root / array
    return sorted(p.relative_to(root).as_posix() for p in base.rglob("*") if p.is_file() and p.name not in meta)


def read(store, path: str = "data", sel=...) -> np.ndarray:
    return zarr.open_array(store=store, path=path, mode="r")[sel]


@pytest.fixture(params=CASES, ids=IDS)
def signed(request, tmp_path):
    case = request.param
    root = tmp_path / "store.zarr"
    data = write_store(root, case)
    manifest = merkle.build(root)
    manifest.save(tmp_path / "m.json")
    return case, root, data, tmp_path / "m.json"


# -- building ---------------------------------------------------------------


def test_manifest_records_every_key_and_each_array(signed):
    case, root, _, mpath = signed
    m = Manifest.load(mpath)
    on_disk = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    assert [f.path for f in m.files] == on_disk
    assert m.format == "merkle-manifest-v2" and m.chunk_size == 64 << 10
    layout = m.zarr
    assert layout is not None and layout.zarr_format == case.fmt
    assert [a.path for a in layout.arrays] == ["aux/labels", "data"]
    assert set(layout.groups) == {"", "aux"}
    data = layout.array("data")
    assert data.shape == case.shape
    assert data.chunks == (case.shards or case.chunks)
    assert data.inner_chunks == (case.chunks if case.shards else None)
    # the array's entries are exactly its keys, and its root is theirs alone
    mine = [f for f in m.files if f.path.startswith("data/")]
    assert list(m.files[data.first : data.first + data.count]) == mine
    assert Manifest.create(mine, m.algorithm, m.chunk_size).root == data.root
    # every stored chunk key parses to grid coordinates of the array
    for key in chunk_keys(root):
        coords = data.chunk_coords(key)
        assert coords is not None and all(0 <= c < g for c, g in zip(coords, data.grid, strict=True)), key


def test_verified_reads_return_the_signed_values(signed):
    case, root, data, mpath = signed
    store = VerifiedStore(root, mpath)
    np.testing.assert_array_equal(read(store), data)
    sel = tuple(slice(s // 3, s // 3 + max(1, s // 4)) for s in case.shape)
    np.testing.assert_array_equal(read(store, sel=sel), data[sel])
    np.testing.assert_array_equal(read(store, "aux/labels"), np.arange(10))
    group = zarr.open_group(store=store, mode="r")
    assert group["data"].attrs["units"] == "kelvin"
    assert sorted(group.array_keys()) == ["data"] and sorted(group.group_keys()) == ["aux"]


# -- tampering: each caught, naming array and key -----------------------------


def test_swapped_chunks_are_caught_and_zarr_alone_is_silent(signed):
    case, root, data, mpath = signed
    a, b = chunk_keys(root)[:2]
    pa, pb = root / a, root / b
    swap = root / "swap.tmp"
    os.rename(pa, swap)
    os.rename(pb, pa)
    os.rename(swap, pb)
    plain = read(LocalStore(str(root), read_only=True))  # zarr alone: no error...
    assert not np.array_equal(plain, data)  # ...and wrong values
    with pytest.raises(ZarrIntegrityError) as e:
        read(VerifiedStore(root, mpath))
    assert e.value.array == "data" and e.value.key in (a, b)
    assert "'data'" in str(e.value) and e.value.key in str(e.value)
    assert "holds the signed bytes of" in str(e.value)
    assert e.value.exit_code == 1


def test_a_chunk_replaced_by_an_older_version_is_caught(tmp_path):
    case = CASES[0]
    root = tmp_path / "store.zarr"
    write_store(root, case, seed=1)
    key = chunk_keys(root)[3]
    old = (root / key).read_bytes()
    newer = write_store(root, case, seed=2)  # the data set is rewritten, then signed
    mpath = tmp_path / "m.json"
    merkle.build(root).save(mpath)
    (root / key).write_bytes(old)  # rolled back to a valid, older chunk
    assert not np.array_equal(read(LocalStore(str(root), read_only=True)), newer)  # zarr alone: silent
    with pytest.raises(ZarrIntegrityError, match="does not match the signed manifest|signed") as e:
        read(VerifiedStore(root, mpath))
    assert (e.value.array, e.value.key) == ("data", key)


def test_a_deleted_chunk_is_missing_not_fill_values(signed):
    case, root, data, mpath = signed
    key = chunk_keys(root)[-1]
    (root / key).unlink()
    plain = read(LocalStore(str(root), read_only=True))  # zarr alone: fill values, no error
    assert not np.array_equal(plain, data)
    with pytest.raises(ZarrIntegrityError, match="missing from the store") as e:
        read(VerifiedStore(root, mpath))
    assert (e.value.array, e.value.key) == ("data", key)
    assert not isinstance(e.value, (FileNotFoundError, KeyError))


def test_edited_metadata_is_caught(signed):
    case, root, _, mpath = signed
    doc = root / "data" / ("zarr.json" if case.fmt == 3 else ".zarray")
    meta = json.loads(doc.read_text())
    meta["fill_value"] = 7 if "int" in case.dtype else 7.0
    doc.write_text(json.dumps(meta))
    with pytest.raises(ZarrIntegrityError) as e:
        read(VerifiedStore(root, mpath))
    assert (e.value.array, e.value.key) == ("data", doc.relative_to(root).as_posix())


def test_an_altered_shard_index_is_caught(tmp_path):
    case = CASES[1]
    root = tmp_path / "store.zarr"
    data = write_store(root, case)
    mpath = tmp_path / "m.json"
    merkle.build(root).save(mpath)
    shard = root / chunk_keys(root)[0]
    raw = bytearray(shard.read_bytes())
    raw[-8] ^= 0x01  # the index sits at the end: an inner chunk's length
    shard.write_bytes(bytes(raw))
    with pytest.raises(ZarrIntegrityError) as e:
        read(VerifiedStore(root, mpath), sel=(slice(0, 8), slice(0, 8)))
    assert (e.value.array, e.value.key) == ("data", chunk_keys(root)[0])
    # the other shards still read, verified
    np.testing.assert_array_equal(
        read(VerifiedStore(root, mpath), sel=(slice(32, 64), slice(16, 48))), data[32:64, 16:48]
    )


def test_keys_added_after_signing_read_as_absent(tmp_path):
    case = Case("sparse", 3, "float32", (40, 40), (10, 10))
    root = tmp_path / "store.zarr"
    group = zarr.open_group(str(root), mode="w")
    array = group.create_array("data", shape=case.shape, chunks=case.chunks, dtype="float32", fill_value=0.0)
    array[:10, :10] = 1.0  # one chunk written; the other fifteen are fill values
    mpath = tmp_path / "m.json"
    merkle.build(root).save(mpath)
    array[30:, 30:] = 5.0  # a chunk added after signing
    assert read(LocalStore(str(root), read_only=True))[35, 35] == 5.0
    verified = read(VerifiedStore(root, mpath))
    assert verified[35, 35] == 0.0 and verified[0, 0] == 1.0  # the signed data set, nothing else


# -- range reads: k chunks plus nothing --------------------------------------


class CountingStore(WrapperStore):
    """A real store underneath, counting what is asked of it."""

    def __init__(self, store):
        super().__init__(store)
        self.calls: list[tuple[str, object]] = []
        self.by_key: dict[str, int] = {}

    def _with_store(self, store):
        return self

    async def get(self, key, prototype, byte_range=None):
        got = await self._store.get(key, prototype, byte_range)
        self.calls.append((key, byte_range))
        self.by_key[key] = self.by_key.get(key, 0) + (len(got) if got is not None else 0)
        return got


def test_a_slice_reads_only_its_chunks(tmp_path):
    case = Case("big", 3, "float32", (256, 256), (32, 32))
    root = tmp_path / "store.zarr"
    write_store(root, case)
    mpath = tmp_path / "m.json"
    merkle.build(root).save(mpath)
    counting = CountingStore(LocalStore(str(root), read_only=True))
    store = VerifiedStore(counting, mpath)
    read(store, sel=(slice(40, 70), slice(100, 120)))  # rows 1-2, columns 3: two chunks
    data_keys = sorted(k for k, _ in counting.calls if k.startswith("data/c/"))
    assert data_keys == ["data/c/1/3", "data/c/2/3"]


def test_a_sharded_slice_reads_the_index_and_its_inner_chunks_only(tmp_path):
    case = Case("sharded", 3, "float64", (128, 128), (16, 16), shards=(128, 128))  # one 128 KiB shard
    root = tmp_path / "store.zarr"
    data = write_store(root, case)
    mpath = tmp_path / "m.json"
    merkle.build(root, chunk_size=4096).save(mpath)
    counting = CountingStore(LocalStore(str(root), read_only=True))
    store = VerifiedStore(counting, mpath)
    np.testing.assert_array_equal(read(store, sel=(slice(0, 16), slice(16, 32))), data[:16, 16:32])
    shard_calls = [(k, r) for k, r in counting.calls if k == "data/c/0/0"]
    assert len(shard_calls) == 2 and all(r is not None for _, r in shard_calls)  # the index, one inner chunk
    # each range is widened to whole 4 KiB chunks of the manifest, and no more
    assert counting.by_key["data/c/0/0"] <= 2 * 2 * 4096
    assert (root / "data/c/0/0").stat().st_size > 8 * counting.by_key["data/c/0/0"]


def test_byte_ranges_are_checked_against_the_sidecar(tmp_path):
    root = tmp_path / "store.zarr"
    write_store(root, Case("r", 3, "float64", (128, 128), (16, 16), shards=(128, 128)))
    mpath = tmp_path / "m.json"
    merkle.build(root, chunk_size=4096).save(mpath)
    store = VerifiedStore(root, mpath)
    key = "data/c/0/0"
    whole = (root / key).read_bytes()
    proto = default_buffer_prototype()

    def get(byte_range):
        return asyncio.run(store.get(key, proto, byte_range)).to_bytes()

    assert get(RangeByteRequest(5000, 9000)) == whole[5000:9000]
    assert get(SuffixByteRequest(100)) == whole[-100:]
    assert get(SuffixByteRequest(len(whole) + 50)) == whole
    raw = bytearray(whole)
    raw[6000] ^= 0x80
    (root / key).write_bytes(bytes(raw))
    assert get(RangeByteRequest(0, 4096)) == whole[:4096]  # an untouched chunk still reads
    with pytest.raises(ZarrIntegrityError, match=r"bytes 4096\.\.8192 \(chunk 1\)"):
        get(RangeByteRequest(5000, 5001))
    os.unlink(mpath.with_name("m.json.leaves"))  # without leaf hashes: the whole key is read and checked
    with pytest.raises(ZarrIntegrityError, match="does not match"):
        asyncio.run(VerifiedStore(root, Manifest.load(mpath)).get(key, proto, RangeByteRequest(0, 10)))


# -- bad input ------------------------------------------------------------------


@pytest.mark.parametrize("key", ["../outside", "/etc/passwd", "data/../../x", "data//c", "data/./c", ""])
def test_unsafe_keys_are_refused(tmp_path, key):
    root = tmp_path / "store.zarr"
    write_store(root, CASES[0])
    merkle.build(root).save(tmp_path / "m.json")
    store = VerifiedStore(root, tmp_path / "m.json")
    with pytest.raises(PathError, match="refused store key"):
        asyncio.run(store.get(key, default_buffer_prototype()))
    with pytest.raises(PathError):
        asyncio.run(store.exists(key))


def test_a_bundle_for_another_store_fails_on_the_first_read(tmp_path):
    a, b = tmp_path / "a.zarr", tmp_path / "b.zarr"
    write_store(a, CASES[0], seed=1)
    write_store(b, CASES[3], seed=2)
    merkle.build(b).save(tmp_path / "b.json")
    with pytest.raises(ZarrIntegrityError, match="is the bundle for this store"):
        read(VerifiedStore(a, tmp_path / "b.json"))


def test_a_manifest_of_something_else_is_refused(tmp_path, model_dir):
    merkle.build(model_dir).save(tmp_path / "m.json")
    with pytest.raises(UsageError, match="not built from a zarr store"):
        VerifiedStore(model_dir, tmp_path / "m.json")


def test_the_store_is_read_only(signed):
    _, root, _, mpath = signed
    store = VerifiedStore(root, mpath)
    assert store.read_only and not store.supports_writes
    with pytest.raises(ValueError, match="read-only"):
        asyncio.run(store.set("data/c/0/0", default_buffer_prototype().buffer.from_bytes(b"x")))
    with pytest.raises(ValueError, match="read-only"):
        zarr.open_array(store=store, path="data", mode="r+")[0] = 1


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"[1, 2]", b'{"zarr_format": 3, "node_type": "table"}', b'{"zarr_format": 2, "node_type": "group"}'],
)
def test_a_store_that_does_not_parse_as_zarr_fails_the_build(cli, tmp_path, content):
    root = tmp_path / "store.zarr"
    write_store(root, CASES[0])
    (root / "data" / "zarr.json").write_bytes(content)
    with pytest.raises(FormatError, match="not a zarr store"):
        merkle.build(root)
    r = cli("build", str(root), "-o", str(tmp_path / "m.json"))
    assert r.returncode == 2
    assert_one_line_error(r, "data/zarr.json", "not a zarr store")
    assert not (tmp_path / "m.json").exists()


@pytest.mark.parametrize(
    "mutate",
    [
        lambda z: z["arrays"][1].update(first=z["arrays"][1]["first"] + 1),
        lambda z: z["arrays"][1].update(count=z["arrays"][1]["count"] - 1),
        lambda z: z["arrays"][1].update(root="00" * 32),
        lambda z: z["arrays"][0].update(path="data"),
        lambda z: z["arrays"].reverse(),
        lambda z: z["arrays"][0].update(shape=[-1]),
        lambda z: z["arrays"][0].update(separator="\\"),
        lambda z: z.update(zarr_format=4),
        lambda z: z.update(extra=1),
    ],
    ids=["first", "count", "root", "duplicate", "order", "shape", "separator", "format", "unknown-key"],
)
def test_hostile_zarr_layouts_are_refused_on_load(tmp_path, mutate):
    root = tmp_path / "store.zarr"
    write_store(root, CASES[0])
    merkle.build(root).save(tmp_path / "m.json")
    doc = json.loads((tmp_path / "m.json").read_text())
    mutate(doc["zarr"])
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    with pytest.raises(FormatError):
        Manifest.load(tmp_path / "bad.json")


# -- signed bundles, the CLI, audits ---------------------------------------------


def test_signed_bundle_with_the_right_key_only(cli, tmp_path):
    root = tmp_path / "store.zarr"
    data = write_store(root, CASES[1])
    assert cli("keygen", "-o", str(tmp_path / "k")).returncode == 0
    assert cli("keygen", "-o", str(tmp_path / "other")).returncode == 0
    r = cli("build", str(root), "--sign", str(tmp_path / "k"), "-o", str(tmp_path / "b.json"), "-q")
    assert r.returncode == 0, r.stderr
    store = VerifiedStore(root, tmp_path / "b.json", keys=[str(tmp_path / "k.pub")])
    np.testing.assert_array_equal(read(store, sel=(slice(5, 40), slice(3, 30))), data[5:40, 3:30])
    with pytest.raises(SignatureError):
        VerifiedStore(root, tmp_path / "b.json", keys=[str(tmp_path / "other.pub")])
    with pytest.raises(UsageError):
        VerifiedStore(root, tmp_path / "b.json")  # a bundle without keys is not trusted


def test_audit_reports_per_array(cli, tmp_path):
    root = tmp_path / "store.zarr"
    write_store(root, CASES[0])
    m = tmp_path / "m.json"
    assert cli("build", str(root), "-o", str(m), "-q").returncode == 0
    keys = chunk_keys(root)
    (root / keys[0]).write_bytes((root / keys[1]).read_bytes())  # changed
    (root / keys[2]).unlink()  # removed
    (root / "aux/labels/c/9").write_bytes(b"junk")  # added
    for extra in ([], ["--sample", "1", "--seed", "3"]):
        r = cli("audit", str(root), str(m), "--json", *extra)
        assert r.returncode == 1, r.stderr
        arrays = json.loads(r.stdout)["arrays"]
        assert (arrays["data"]["changed"], arrays["data"]["removed"], arrays["data"]["added"]) == (1, 1, 0)
        assert arrays["data"]["missing_chunks"] == [keys[2]]
        assert arrays["aux/labels"]["added"] == 1 and arrays["aux/labels"]["changed"] == 0
    r = cli("audit", str(root), str(m))
    assert r.returncode == 1
    assert "array 'data': " in r.stderr and "1 changed, 1 removed, 0 added" in r.stderr
    assert f"chunks missing (zarr alone reads fill values): {keys[2]}" in r.stderr


def test_zarr_store_over_s3(endpoint, tmp_path, cli):
    s3fs = pytest.importorskip("s3fs")
    options = {"client_kwargs": {"endpoint_url": endpoint}, "skip_instance_cache": True}
    fs = s3fs.S3FileSystem(**options)
    bucket = f"z{os.urandom(4).hex()}"
    fs.mkdir(bucket)
    local = tmp_path / "store.zarr"
    data = write_store(local, CASES[1])
    fs.put(str(local), f"{bucket}/store.zarr", recursive=True)
    url = f"s3://{bucket}/store.zarr"
    option = "client_kwargs=" + json.dumps({"endpoint_url": endpoint})
    r = cli("build", url, "-o", str(tmp_path / "m.json"), "--storage-option", option, "-q")
    assert r.returncode == 0, r.stderr
    assert Manifest.load(tmp_path / "m.json").root == merkle.build(local).root  # same bytes, same root
    store = VerifiedStore(url, tmp_path / "m.json", storage_options=options)
    np.testing.assert_array_equal(read(store), data)
    a, b = [k for k in chunk_keys(local)][:2]
    body_a, body_b = fs.cat(f"{url}/{a}"), fs.cat(f"{url}/{b}")
    fs.pipe(f"{url}/{a}", body_b)
    fs.pipe(f"{url}/{b}", body_a)
    with pytest.raises(ZarrIntegrityError) as e:
        read(VerifiedStore(url, tmp_path / "m.json", storage_options=options))
    assert e.value.array == "data" and e.value.key in (a, b)


def test_zarr_module_names_the_extra_when_zarr_is_missing(tmp_path):
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['zarr'] = None\n"
        "import merkle.zarr\n"
        "try:\n    merkle.zarr.VerifiedStore\nexcept ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "pip install 'merkle-ml[zarr]'" in out


def test_copy_of_store_verifies_elsewhere(tmp_path):
    root = tmp_path / "store.zarr"
    data = write_store(root, CASES[3])
    merkle.build(root).save(tmp_path / "m.json")
    moved = tmp_path / "elsewhere" / "copy.zarr"
    shutil.copytree(root, moved)
    np.testing.assert_array_equal(read(VerifiedStore(moved, tmp_path / "m.json")), data)


def test_one_array_is_shared_and_verified_without_the_rest(tmp_path):
    from merkle.zarr import array_manifest, check_array_manifest

    root = tmp_path / "store.zarr"
    data = write_store(root, CASES[1])
    full = merkle.build(root, chunk_size=4096)
    sub = array_manifest(full, "data")
    assert [f.path for f in sub.files] == [f.path for f in full.files if f.path.startswith("data/")]
    assert sub.root == full.zarr.array("data").root != full.root
    check_array_manifest(sub, full, "data")
    sub.save(tmp_path / "data-only.json")  # what is handed on: this array's keys and leaf hashes only
    again = Manifest.load(tmp_path / "data-only.json")
    check_array_manifest(again, full, "data")
    np.testing.assert_array_equal(read(VerifiedStore(root, again), sel=(slice(3, 60), slice(5, 40))), data[3:60, 5:40])
    other = array_manifest(full, "aux/labels")
    with pytest.raises(merkle.IntegrityError, match="not the signed contents of array 'data'"):
        check_array_manifest(other, full, "data")
    with pytest.raises(UsageError, match="no array"):
        array_manifest(full, "nope")


def test_leaf_hashes_of_another_store_are_not_trusted(tmp_path):
    a, b = tmp_path / "a.zarr", tmp_path / "b.zarr"
    data = write_store(a, CASES[1], seed=1)
    write_store(b, CASES[1], seed=2)
    merkle.build(a, chunk_size=4096).save(tmp_path / "a.json")
    merkle.build(b, chunk_size=4096).save(tmp_path / "b.json")
    shutil.copy(tmp_path / "b.json.leaves", tmp_path / "a.json.leaves")  # proofs for the wrong keys
    with pytest.warns(merkle.errors.SidecarWarning):
        store = VerifiedStore(a, tmp_path / "a.json")
    np.testing.assert_array_equal(read(store), data)  # checked whole, against the signed roots
    shard = a / chunk_keys(a)[0]
    raw = bytearray(shard.read_bytes())
    raw[100] ^= 1
    shard.write_bytes(bytes(raw))
    with pytest.raises(ZarrIntegrityError):
        read(store, sel=(slice(0, 8), slice(0, 8)))


def test_keys_are_assigned_to_the_right_array_whatever_the_names():
    from merkle.format.zarr import ZarrArray, ZarrLayout

    def array(path):
        return ZarrArray(path, (4,), (2,), None, "int8", "/", True)

    layout = ZarrLayout(3, ("", "g"), tuple(array(p) for p in ["a", "a.b", "a0", "g/a", "g/a-b", "g/ab"]))
    expect = {
        "a/c/0": "a",
        "a/zarr.json": "a",
        "a.b/c/1": "a.b",
        "a0/c/0": "a0",
        "g/a/c/1": "g/a",
        "g/a-b/zarr.json": "g/a-b",
        "g/ab/c/0": "g/ab",
        "zarr.json": None,
        "g/zarr.json": None,
        "a": None,
        "g/a": None,
        "b/c/0": None,
    }
    for key, want in expect.items():
        got = layout.array_of(key)
        assert (got.path if got else None) == want, key
    root = ZarrLayout(3, (), (array(""),))
    assert root.array_of("c/1").path == "" and root.array_of("zarr.json").path == ""
    assert array("a").chunk_coords("a/c/1") == (1,) and array("a").chunk_coords("a/c/2") is None
    assert array("a").chunk_coords("a/c/01") is None and array("a").chunk_coords("a/zarr.json") is None


# -- sizes, ranges, equality, opening (rules Z8, Z9) ------------------------------


def test_an_object_grown_past_its_signed_size_is_refused_reading_one_byte_more(tmp_path):
    """8 MiB appended to a small chunk: refused, naming the key, after the
    backend returned its signed size + 1 bytes; never read whole."""
    import tracemalloc

    root = tmp_path / "store.zarr"
    data = write_store(root, CASES[0])
    mpath = tmp_path / "m.json"
    merkle.build(root).save(mpath)
    key = chunk_keys(root, "aux/labels")[0]
    signed = (root / key).stat().st_size
    with open(root / key, "ab") as f:
        f.write(os.urandom(8 << 20))
    counting = CountingStore(LocalStore(str(root), read_only=True))
    with pytest.raises(ZarrIntegrityError, match=f"holds more than its signed {signed} bytes") as e:
        read(VerifiedStore(counting, mpath), "aux/labels")
    assert (e.value.array, e.value.key) == ("aux/labels", key)
    assert counting.by_key[key] == signed + 1
    np.testing.assert_array_equal(read(VerifiedStore(counting, mpath)), data)  # the rest still reads
    # over a store with a size request of its own, the error says how long the object is
    tracemalloc.start()
    try:
        with pytest.raises(ZarrIntegrityError, match=f"is {signed + (8 << 20)} bytes, signed {signed}$"):
            asyncio.run(VerifiedStore(root, mpath).get(key, default_buffer_prototype()))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 << 20, peak


def test_a_key_holding_a_longer_signed_key_is_named(tmp_path):
    """A short chunk overwritten with a longer signed chunk's bytes: the
    size request and one bounded read say whose bytes they are."""
    root = tmp_path / "store.zarr"
    write_store(root, CASES[0])
    merkle.build(root).save(tmp_path / "m.json")
    sizes = {k: (root / k).stat().st_size for k in chunk_keys(root) + chunk_keys(root, "aux/labels")}
    short, long = min(sizes, key=sizes.get), max(sizes, key=sizes.get)
    assert sizes[short] < sizes[long]
    (root / short).write_bytes((root / long).read_bytes())
    with pytest.raises(
        ZarrIntegrityError,
        match=f"is {sizes[long]} bytes, signed {sizes[short]}: it holds the signed bytes of '{long}'",
    ):
        asyncio.run(VerifiedStore(root, tmp_path / "m.json").get(short, default_buffer_prototype()))


@pytest.mark.parametrize(
    ("byte_range", "error"),
    [
        ((0, 2), TypeError),
        ("bytes=0-2", TypeError),
        (RangeByteRequest(0.0, 2), TypeError),
        (RangeByteRequest(-1, 4), ValueError),
        (RangeByteRequest(5, 2), ValueError),
        (SuffixByteRequest(-1), ValueError),
        (zarr.abc.store.OffsetByteRequest(-3), ValueError),
    ],
    ids=["tuple", "text", "float", "negative", "reversed", "negative-suffix", "negative-offset"],
)
def test_a_byte_range_it_cannot_serve_is_a_type_or_value_error(tmp_path, byte_range, error):
    """As zarr's own stores: a bad request is the caller's mistake (TypeError
    or ValueError), not a path problem; for a signed key or not, before any read."""
    root = tmp_path / "store.zarr"
    write_store(root, CASES[0])
    merkle.build(root).save(tmp_path / "m.json")
    counting = CountingStore(LocalStore(str(root), read_only=True))
    store = VerifiedStore(counting, tmp_path / "m.json")
    for key in ("data/zarr.json", "data/c/9/9"):
        with pytest.raises(error) as e:
            asyncio.run(store.get(key, default_buffer_prototype(), byte_range))
        assert not isinstance(e.value, merkle.errors.MerkleError)
    assert counting.calls == []
    if error is TypeError and isinstance(byte_range, tuple):
        assert "Unexpected byte_range, got (0, 2)" in str(e.value)


def test_stores_over_one_backend_are_equal_only_with_equal_manifests(tmp_path):
    root = tmp_path / "store.zarr"
    write_store(root, CASES[0], seed=1)
    merkle.build(root).save(tmp_path / "old.json")
    write_store(root, CASES[0], seed=2)
    merkle.build(root).save(tmp_path / "new.json")
    backend = LocalStore(str(root), read_only=True)
    old, new = VerifiedStore(backend, tmp_path / "old.json"), VerifiedStore(backend, tmp_path / "new.json")
    assert old != new and new != old  # one backend, other signed contents
    assert VerifiedStore(backend, tmp_path / "new.json") == new  # the same manifest, loaded again
    assert VerifiedStore(LocalStore(str(root), read_only=True), new.manifest) == new
    assert VerifiedStore(LocalStore(str(tmp_path), read_only=True), new.manifest) != new
    assert new != backend and backend != new
    np.testing.assert_array_equal(read(new), values(CASES[0], seed=2))
    with pytest.raises(ZarrIntegrityError):
        read(old)


def test_open_takes_the_constructors_arguments(tmp_path):
    """zarr's Store.open: construct, then open the wrapped store (WrapperStore's
    own open(store_cls, ...) had no place for the bundle)."""
    root = tmp_path / "store.zarr"
    data = write_store(root, CASES[1])
    merkle.build(root).save(tmp_path / "m.json")

    async def opened() -> VerifiedStore:
        return await VerifiedStore.open(LocalStore(str(root), read_only=True), tmp_path / "m.json")

    store = asyncio.run(opened())
    assert store._is_open and store.read_only
    np.testing.assert_array_equal(read(store), data)
    with store as inside:  # WrapperStore's context manager: a twin over the same backend
        assert inside == store and inside._is_open
    assert not store._is_open


def test_zarr_over_s3_reads_empty_keys_and_refuses_grown_ones(endpoint, tmp_path):
    """Through FsspecStore on moto's S3 server: a signed empty key reads (a
    range past the end of an empty object is 'not satisfiable' there), and a
    chunk grown by 8 MiB is refused."""
    s3fs = pytest.importorskip("s3fs")
    options = {"client_kwargs": {"endpoint_url": endpoint}, "skip_instance_cache": True}
    fs = s3fs.S3FileSystem(**options)
    bucket = f"z{os.urandom(4).hex()}"
    fs.mkdir(bucket)
    local = tmp_path / "store.zarr"
    data = write_store(local, CASES[0])
    (local / "aux" / "empty").write_bytes(b"")
    fs.put(str(local), f"{bucket}/store.zarr", recursive=True)
    fs.pipe(f"{bucket}/store.zarr/aux/empty", b"")
    merkle.build(local).save(tmp_path / "m.json")
    url = f"s3://{bucket}/store.zarr"
    from zarr.core.sync import sync  # on zarr's own loop, where s3fs's session lives

    store = VerifiedStore(url, tmp_path / "m.json", storage_options=options)
    assert sync(store.get("aux/empty", default_buffer_prototype())).to_bytes() == b""
    np.testing.assert_array_equal(read(store), data)
    key = chunk_keys(local)[0]
    signed = (local / key).stat().st_size
    fs.pipe(f"{url}/{key}", (local / key).read_bytes() + os.urandom(8 << 20))
    with pytest.raises(ZarrIntegrityError, match=f"is {signed + (8 << 20)} bytes, signed {signed}$") as e:
        read(VerifiedStore(url, tmp_path / "m.json", storage_options=options))
    assert e.value.key == key
