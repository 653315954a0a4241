"""zarr's own store conformance suite (`zarr.testing.store.StoreTests`),
run against VerifiedStore over a real LocalStore.

The suite writes a key "into the backend" through the harness's `set`, then
reads it through the store under test.  A VerifiedStore serves only signed
keys (rule Z3), so the harness plays the publisher: it writes the file into
the store's folder, signs the folder again (a manifest of every file) and
reopens the VerifiedStore with that manifest, as a reader does when a new
signed release is published.  No VerifiedStore method is used to write.

Every read test of the suite runs and must pass.  The tests that write or
delete through the store itself cannot pass on a read-only store: each is
marked xfail (strict: it must fail, and only with the read-only refusal)
with the reason, in WRITES_THROUGH_THE_STORE below.  The suite itself skips
its delete tests (`supports_deletes` is False) and its synchronous-protocol
tests (VerifiedStore does not claim SupportsGetSync and friends).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest

zarr = pytest.importorskip("zarr")  # the test extras install it; CI runs these
from zarr.core.buffer import cpu, default_buffer_prototype  # noqa: E402
from zarr.storage import LocalStore  # noqa: E402
from zarr.testing.store import StoreTests  # noqa: E402

from merkle.format.manifest import FileEntry, Manifest  # noqa: E402
from merkle.format.zarr import ZarrLayout  # noqa: E402
from merkle.tree import rfc6962  # noqa: E402
from merkle.tree.hasher import tree_hasher  # noqa: E402
from merkle.zarr import VerifiedStore  # noqa: E402

CHUNK = 4096
READ_ONLY = ValueError  # what zarr's read-only stores raise for a write

# test name (or node name, for one parameter) -> why it cannot pass
WRITES_THROUGH_THE_STORE = {
    "test_store_read_only": "asserts a writable store: a VerifiedStore is always read-only",
    "test_store_open_read_only[False]": "opens the store writable: VerifiedStore(read_only=False) is refused",
    "test_serializable_store": "writes through the unpickled store (the round trip itself is "
    "test_a_pickled_store_reads_the_same_signed_keys)",
    "test_set": "asserts a writable store, then writes through it",
    "test_set_not_open": "writes through the store",
    "test_set_many": "writes through the store",
    "test_set_if_not_exists": "writes through the store",
    "test_getsize_prefix": "puts its keys with store._set_many (sizes: test_sizes_and_listing_are_the_signed_ones)",
    "test_exists": "puts its key with store.set (exists: test_sizes_and_listing_are_the_signed_ones)",
    "test_clear": "clears the store",
    "test_list": "puts its keys with store._set_many (listing: test_sizes_and_listing_are_the_signed_ones)",
    "test_list_prefix": "puts its keys with store._set_many (listing: test_sizes_and_listing_are_the_signed_ones)",
    "test_list_empty_path": "puts its keys with store._set_many (listing: test_sizes_and_listing_are_the_signed_ones)",
    "test_list_dir": "puts its keys with store._set_many (listing: test_sizes_and_listing_are_the_signed_ones)",
}
RAISES = {"test_store_read_only": AssertionError, "test_set": AssertionError}  # `assert not store.read_only`


def signed_manifest(root: Path) -> Manifest:
    """The publisher's manifest of every file under `root`: a zarr manifest
    with no arrays (the suite's keys are not a zarr hierarchy)."""
    hasher = tree_hasher("blake3")
    entries = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        entries.append(
            FileEntry(path.relative_to(root).as_posix(), len(data), rfc6962.content_root(hasher, data, CHUNK))
        )
    return Manifest.create(entries, "blake3", CHUNK, (), zarr=ZarrLayout(3, (), ()))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
class TestVerifiedStore(StoreTests[VerifiedStore, cpu.Buffer]):
    store_cls = VerifiedStore
    buffer_cls = cpu.Buffer

    @pytest.fixture(autouse=True)
    def _reads_only(self, request: pytest.FixtureRequest, anyio_backend: str) -> None:
        """Marks the write tests; and, by asking for `anyio_backend`, lets
        anyio run the suite's async fixtures for its sync tests too."""
        name, test = request.node.name, request.node.originalname
        reason = WRITES_THROUGH_THE_STORE.get(name) or WRITES_THROUGH_THE_STORE.get(test)
        if reason is not None:
            raises = RAISES.get(test, READ_ONLY)
            request.applymarker(pytest.mark.xfail(raises=raises, strict=True, reason=f"read-only store: {reason}"))

    @pytest.fixture
    def store_kwargs(self, tmp_path: Path) -> dict[str, Any]:
        root = tmp_path / "store"
        root.mkdir()
        return {"store": LocalStore(root), "bundle": signed_manifest(root)}

    async def set(self, store: VerifiedStore, key: str, value: Any) -> None:
        """The publisher writes the file and signs the folder again; the
        reader reopens the store with the new manifest."""
        root = Path(store._store.root)
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_bytes(value.to_bytes())
        store.__init__(store._store, signed_manifest(root))

    async def get(self, store: VerifiedStore, key: str) -> Any:
        return self.buffer_cls.from_bytes((Path(store._store.root) / key).read_bytes())

    def test_store_repr(self, store: VerifiedStore) -> None:
        assert repr(store) == f"VerifiedStore({store._store!r})"
        assert str(store) == f"verified-{store._store}"

    def test_store_supports_writes(self, store: VerifiedStore) -> None:
        assert not store.supports_writes and not store.supports_deletes

    def test_store_supports_listing(self, store: VerifiedStore) -> None:
        assert store.supports_listing

    # -- what the xfailed write tests would have shown, read-only -------------

    async def test_sizes_and_listing_are_the_signed_ones(self, store: VerifiedStore) -> None:
        assert await store.is_empty("") and [k async for k in store.list()] == []
        assert not await store.exists("foo/zarr.json")
        keys = [
            "a/b/c/zarr.json",
            "a/b/zarr.json",
            "a/zarr.json",
            "c/0/0",
            "c/0/1",
            "c/1/0",
            "foo-bar/zarr.json",
            "zarr.json",
        ]
        for i, key in enumerate(keys):
            await self.set(store, key, self.buffer_cls.from_bytes(bytes(range(i + 1))))
        root = Path(store._store.root)
        (root / "unsigned").write_bytes(b"added after signing")  # in the backend, not in the manifest
        assert sorted([k async for k in store.list()]) == keys
        assert sorted([k async for k in store.list_prefix("a/b/")]) == ["a/b/c/zarr.json", "a/b/zarr.json"]
        assert sorted([k async for k in store.list_dir("a")]) == ["b", "zarr.json"]
        assert sorted([k async for k in store.list_dir("")]) == ["a", "c", "foo-bar", "zarr.json"]
        assert await store.getsize("c/0/1") == 5
        assert await store.getsize_prefix("c") == 4 + 5 + 6
        assert await store.exists("a/zarr.json") and not await store.exists("unsigned")
        assert await store.get("unsigned", default_buffer_prototype()) is None
        with pytest.raises(FileNotFoundError):
            await store.getsize("unsigned")

    async def test_a_pickled_store_reads_the_same_signed_keys(self, store: VerifiedStore) -> None:
        await self.set(store, "c/0", self.buffer_cls.from_bytes(b"\x01\x02\x03\x04"))
        again = pickle.loads(pickle.dumps(store))
        assert again == store and again.read_only
        got = await again.get("c/0", default_buffer_prototype())
        assert got is not None and got.to_bytes() == b"\x01\x02\x03\x04"

    async def test_writes_and_deletes_are_refused_and_change_nothing(self, store: VerifiedStore) -> None:
        await self.set(store, "foo/zarr.json", self.buffer_cls.from_bytes(b"bar"))
        for write in (
            store.set("foo/zarr.json", self.buffer_cls.from_bytes(b"new")),
            store.delete("foo/zarr.json"),
            store.delete_dir("foo"),
            store.clear(),
            store.set_if_not_exists("k", self.buffer_cls.from_bytes(b"new")),
        ):
            with pytest.raises(ValueError, match="read-only mode"):
                await write
        assert (await store.get("foo/zarr.json", default_buffer_prototype())).to_bytes() == b"bar"
        assert sorted(p.name for p in Path(store._store.root).rglob("*")) == ["foo", "zarr.json"]
        with pytest.raises(ValueError, match="read-only"):
            VerifiedStore(store._store, store.manifest, read_only=False)
        with pytest.raises(NotImplementedError, match="no writable copy"):
            store.with_read_only(False)
        assert store.with_read_only(True) is store
