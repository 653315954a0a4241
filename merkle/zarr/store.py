"""VerifiedStore: a read-only zarr store that returns only signed bytes.

Rules (docs/zarr.md, Z3-Z6, Z8-Z9):
- Z3 The signed manifest is the store's contents: a key it lists is read
  from the wrapped store and checked before any byte is returned; a key it
  does not list reads as absent (zarr's fill value for a chunk never
  written), whatever the wrapped store holds; listing shows the signed keys.
- Z4 A signed key the wrapped store lacks, or holds with other bytes or
  another length, raises ZarrIntegrityError naming the array and the key,
  never FileNotFoundError (which zarr turns into fill values).
- Z5 A byte range (zarr's shard index suffix and inner-chunk ranges) reads
  only the manifest chunks that cover it, each checked against the leaf
  hashes that the sidecar authenticates against the signed root.  Without
  the sidecar the whole key is read and checked against its root.
- Z6 Keys that are not canonical relative paths ('..', absolute, empty
  parts) are refused with PathError before the wrapped store sees them.
- Z8 A whole key is read as its first signed-size + 1 bytes: a stored
  object longer than signed is refused having read one byte too many, never
  read whole.  A byte range that is not a zarr ByteRequest is a TypeError,
  one with a negative or reversed span a ValueError, as in zarr's stores.
- Z9 Two VerifiedStores are equal when their wrapped stores are equal and
  they check against equal manifests.
- Z10 A local path is read under the link policy (ConfinedLocalStore): no
  link followed, nothing but a regular file opened, never blocking.
"""

from __future__ import annotations

import asyncio
import bisect
import builtins
import concurrent.futures
import os
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from zarr.abc.store import OffsetByteRequest, RangeByteRequest, Store, SuffixByteRequest
from zarr.storage import LocalStore, WrapperStore

from merkle.errors import IntegrityError, PathError, SourceError, UsageError, ZarrIntegrityError
from merkle.format.manifest import FileEntry, Manifest
from merkle.format.paths import path_problem
from merkle.format.zarr import ROOT_DOCS
from merkle.hashing.engine import default_jobs
from merkle.signing.attestations import StoreChoice
from merkle.signing.trust import TrustPolicy
from merkle.source.local import open_below
from merkle.source.remote import is_url
from merkle.tree import rfc6962
from merkle.verifying.ranges import FileAuth
from merkle.verifying.signed import chosen_policy, trusted_manifest

if TYPE_CHECKING:
    from typing import Self

    from zarr.abc.store import ByteRequest
    from zarr.core.buffer import Buffer, BufferPrototype

T = TypeVar("T")
_READ_ONLY = (
    "store was opened in read-only mode and does not support writing: a VerifiedStore serves the signed contents only"
)
READ_BYTES = 16 << 20
"""The most one read of a local key asks for at a time."""
THREAD_BYTES = 1 << 20
"""Hash bigger reads on a worker thread: hashing releases the GIL, so the
event loop keeps other reads and decoding going."""


class VerifiedStore(WrapperStore[Store]):
    """`store` (a zarr Store, a local path or an fsspec URL) checked against
    `bundle`: a Manifest, a manifest file, or a signed bundle file (then
    `keys`, public key files, or `cas`, CA certificates, are required and the
    signature is checked first).  The leaf sidecar beside the manifest or
    bundle (M.leaves) lets byte ranges of large keys be checked alone.
    A bundle is opened through the one trust path (merkle.verifying.signed.open_signed:
    signatures, expiry, rollback against the `attestations` store), as the CLI does."""

    def __init__(
        self,
        store: Store | str | os.PathLike[str],
        bundle: Manifest | str | os.PathLike[str],
        *,
        keys: Sequence[str] = (),
        cas: Sequence[str] = (),
        policy: TrustPolicy | None = None,
        attestations: StoreChoice = True,
        storage_options: dict[str, Any] | None = None,
        read_only: bool = True,
    ) -> None:
        if not read_only:  # zarr's stores take `read_only`; this one serves signed contents only
            raise ValueError(_READ_ONLY)
        manifest = trusted_manifest(bundle, chosen_policy(keys, cas, policy), attestations)
        if manifest.zarr is None:
            where = None if isinstance(bundle, Manifest) else os.fspath(bundle)
            raise UsageError("the manifest was not built from a zarr store (no zarr layout in it)", where)
        super().__init__(_as_store(store, storage_options))
        self._manifest = manifest
        self._auth: dict[str, FileAuth] = {}
        self._by_root: dict[bytes, str] | None = None
        self._sizes: frozenset[int] | None = None
        self._root_checked = False

    @property
    def manifest(self) -> Manifest:
        """The trusted manifest every read is checked against."""
        return self._manifest

    @classmethod
    async def open(cls, *args: Any, **kwargs: Any) -> Self:
        """Construct with the constructor's arguments (store, bundle, ...)
        and open the wrapped store: zarr's `Store.open`.  WrapperStore's
        `open(store_cls, *args)` has no place for the bundle."""
        store = cls(*args, **kwargs)
        await store._open()
        return store

    def _with_store(self, store: Store) -> Self:
        twin = type(self)(store, self._manifest)
        twin._root_checked = self._root_checked and store == self._store
        return twin

    def with_read_only(self, read_only: bool = False) -> Self:
        if not read_only:  # what zarr's stores say when they cannot give a writable copy
            raise NotImplementedError(
                f"with_read_only is not implemented for the {type(self)} store type. "
                "A VerifiedStore serves signed contents: it has no writable copy"
            )
        return self

    def __eq__(self, other: object) -> bool:
        """Equal wrapped stores checked against equal manifests (Z9): the
        same store under another bundle serves other contents."""
        if type(self) is not type(other) or not isinstance(other, VerifiedStore):
            return False
        mine, theirs = self._manifest, other._manifest
        same = mine is theirs or (mine.root == theirs.root and mine == theirs)
        return same and bool(self._store == other._store)

    def __repr__(self) -> str:
        return f"VerifiedStore({self._store!r})"

    def __str__(self) -> str:
        return f"verified-{self._store}"

    # -- read-only ------------------------------------------------------------

    @property
    def read_only(self) -> bool:
        return True

    @property
    def supports_writes(self) -> bool:
        return False

    @property
    def supports_deletes(self) -> bool:
        return False

    def _check_writable(self) -> None:
        raise ValueError(_READ_ONLY)

    async def set(self, key: str, value: Buffer) -> None:
        self._check_writable()

    async def set_if_not_exists(self, key: str, value: Buffer) -> None:
        self._check_writable()

    async def _set_many(self, values: Iterable[tuple[str, Buffer]]) -> None:
        self._check_writable()

    async def delete(self, key: str) -> None:
        self._check_writable()

    async def delete_dir(self, prefix: str) -> None:
        self._check_writable()

    async def clear(self) -> None:
        self._check_writable()

    # -- listing: the signed keys (Z3) -----------------------------------------

    def _under(self, prefix: str) -> Iterator[FileEntry]:
        """The signed entries whose keys start with `prefix`: a contiguous run
        of the manifest's sorted files, found by bisection."""
        files = self._manifest.files
        i = bisect.bisect_left(files, prefix, key=lambda f: f.path)
        while i < len(files) and files[i].path.startswith(prefix):
            yield files[i]
            i += 1

    async def exists(self, key: str) -> bool:
        return self._entry(key) is not None

    async def is_empty(self, prefix: str) -> bool:
        return next(self._under(_dir(prefix)), None) is None

    async def list(self) -> AsyncIterator[str]:
        for f in self._manifest.files:
            yield f.path

    async def list_prefix(self, prefix: str) -> AsyncIterator[str]:
        for f in self._under(prefix):
            yield f.path

    async def list_dir(self, prefix: str) -> AsyncIterator[str]:
        base = _dir(prefix)
        seen = set()
        for f in self._under(base):
            child = f.path[len(base) :].split("/", 1)[0]
            if child not in seen:
                seen.add(child)
                yield child

    async def getsize(self, key: str) -> int:
        entry = self._entry(key)
        if entry is None:
            raise FileNotFoundError(key)
        return entry.size

    async def getsize_prefix(self, prefix: str) -> int:
        return sum(f.size for f in self._under(_dir(prefix)))

    # -- reads, every byte checked (Z4, Z5) ------------------------------------

    async def get(
        self, key: str, prototype: BufferPrototype | None = None, byte_range: ByteRequest | None = None
    ) -> Buffer | None:
        if prototype is None:
            from zarr.core.buffer import default_buffer_prototype

            prototype = default_buffer_prototype()
        entry = self._entry(key)
        if byte_range is not None:
            _check_request(byte_range)
        if not self._root_checked:
            await self._check_root(prototype)
        if entry is None:
            return None
        if byte_range is None:
            return await self._whole(entry, prototype)
        start, end = _span(byte_range, entry.size)
        if start >= end:
            return prototype.buffer.from_bytes(b"")
        auth = self._file_auth(entry)
        if auth is None:  # no leaf hashes for this key: check it whole, then cut
            whole = await self._whole(entry, prototype)
            return whole[start:end]
        return await self._range(entry, auth, start, end, prototype)

    async def get_partial_values(
        self, prototype: BufferPrototype, key_ranges: Iterable[tuple[str, ByteRequest | None]]
    ) -> builtins.list[Buffer | None]:
        return [*await asyncio.gather(*(self.get(k, prototype, r) for k, r in key_ranges))]

    async def _get_many(
        self, requests: Iterable[tuple[str, BufferPrototype, ByteRequest | None]]
    ) -> AsyncGenerator[tuple[str, Buffer | None], None]:
        requests = [*requests]
        got = await asyncio.gather(*(self.get(k, p, r) for k, p, r in requests))
        for (key, _, _), value in zip(requests, got, strict=True):
            yield key, value

    def _entry(self, key: str) -> FileEntry | None:
        problem = path_problem(key) if isinstance(key, str) else "not a string"
        if problem:
            raise PathError(f"refused store key: {problem}", repr(key))
        return self._manifest.entry(key)

    def _file_auth(self, entry: FileEntry) -> FileAuth | None:
        auth = self._auth.get(entry.path)
        if auth is None:
            try:
                auth = FileAuth.of(self._manifest, entry.path)
            except IntegrityError:  # several chunks and no sidecar
                return None
            self._auth[entry.path] = auth
        return auth

    async def _fetch(self, entry: FileEntry, prototype: BufferPrototype, byte_range: ByteRequest | None) -> Buffer:
        got = await self._store.get(entry.path, prototype, byte_range)
        if got is None:
            raise self._error(
                entry.path,
                f"missing from the store (signed with {entry.size} bytes); zarr alone would read it as fill values",
            )
        return got

    async def _whole(self, entry: FileEntry, prototype: BufferPrototype) -> Buffer:
        # One byte past the signed size, never more (Z8): the length is known
        # before anything is hashed, and an object grown past its signed size
        # costs size + 1 bytes, not its own size.
        got = await self._fetch(entry, prototype, RangeByteRequest(0, entry.size + 1))
        view = got.as_numpy_array().data.cast("B")
        if len(view) > entry.size:
            raise await self._too_long(entry, prototype)
        root = await self._content_root(view)
        if len(view) != entry.size:
            raise self._error(entry.path, f"is {len(view)} bytes, signed {entry.size}" + self._whose(root, entry.path))
        if root != entry.root:
            raise self._error(entry.path, "does not match the signed manifest" + self._whose(root, entry.path))
        return got

    async def _content_root(self, view: memoryview) -> bytes:
        hasher, cs = self._manifest.hasher, self._manifest.chunk_size
        if len(view) > THREAD_BYTES:
            return await _off_loop(rfc6962.content_root, hasher, view, cs)
        return rfc6962.content_root(hasher, view, cs)

    async def _too_long(self, entry: FileEntry, prototype: BufferPrototype) -> ZarrIntegrityError:
        """The error for a key stored longer than signed.  Its length comes
        from a size request, where the wrapped store has one of its own
        (zarr's fallback reads the object); when that length is another
        signed key's, that many bytes are read to say whose they are."""
        size = None
        if type(self._store).getsize is not Store.getsize:
            try:
                size = int(await self._store.getsize(entry.path))
            except (OSError, ValueError, TypeError):
                size = None
        if size is None or size <= entry.size:
            return self._error(entry.path, f"holds more than its signed {entry.size} bytes")
        whose = ""
        if size in self._signed_sizes():
            got = await self._store.get(entry.path, prototype, RangeByteRequest(0, size + 1))
            if got is not None and len(got) == size:
                whose = self._whose(await self._content_root(got.as_numpy_array().data.cast("B")), entry.path)
        return self._error(entry.path, f"is {size} bytes, signed {entry.size}" + whose)

    def _signed_sizes(self) -> frozenset[int]:
        if self._sizes is None:
            self._sizes = frozenset(f.size for f in self._manifest.files)
        return self._sizes

    async def _range(
        self, entry: FileEntry, auth: FileAuth, start: int, end: int, prototype: BufferPrototype
    ) -> Buffer:
        cs = auth.chunk_size
        first, last = start // cs, (end - 1) // cs
        lo, hi = first * cs, min((last + 1) * cs, entry.size)
        got = await self._fetch(entry, prototype, RangeByteRequest(lo, hi))
        view = got.as_numpy_array().data.cast("B")
        if len(view) != hi - lo:
            raise self._error(
                entry.path,
                f"bytes {lo}..{hi} came back as {len(view)} bytes"
                + (f": the stored object is shorter than its signed {entry.size}" if len(view) < hi - lo else ""),
            )
        hasher = self._manifest.hasher
        if len(view) > THREAD_BYTES:
            leaves = await _off_loop(rfc6962.chunk_leaves, hasher, view, cs)
        else:
            leaves = rfc6962.chunk_leaves(hasher, view, cs)
        for i in range(first, last + 1):
            k = i - first
            if leaves[32 * k : 32 * k + 32] != auth.leaves[i]:
                a, b = auth.chunk_span(i)
                raise self._error(entry.path, f"bytes {a}..{b} (chunk {i}) do not match the signed manifest")
        return got[start - lo : end - lo]

    async def _check_root(self, prototype: BufferPrototype) -> None:
        """Once per store: its root metadata verifies, so a bundle for
        another store fails on the first read, naming that document."""
        for name in ROOT_DOCS:
            entry = self._manifest.entry(name)
            if entry is not None:
                try:
                    await self._whole(entry, prototype)
                except ZarrIntegrityError as e:
                    raise ZarrIntegrityError(f"{e.message}: is the bundle for this store?", e.key, e.array) from None
                break
        self._root_checked = True

    def _whose(self, root: bytes, key: str) -> str:
        """Whose signed bytes a key holds, when they are another key's (a
        swapped or copied chunk)."""
        if self._by_root is None:
            self._by_root = {f.root: f.path for f in self._manifest.files}
        other = self._by_root.get(root)
        return f": it holds the signed bytes of {other!r}" if other is not None and other != key else ""

    def _error(self, key: str, message: str) -> ZarrIntegrityError:
        assert self._manifest.zarr is not None
        array = self._manifest.zarr.array_of(key)
        return ZarrIntegrityError(message, key, array.path if array is not None else None)


_HASHING: concurrent.futures.ThreadPoolExecutor | None = None


async def _off_loop(fn: Callable[..., T], *args: Any) -> T:
    """fn(*args) on merkle's own small pool (one thread per CPU): the hash
    releases the GIL, and zarr's reads keep asyncio's default pool to
    themselves (sharing it cost more in page faults than it saved)."""
    global _HASHING
    if _HASHING is None:
        _HASHING = concurrent.futures.ThreadPoolExecutor(default_jobs(), thread_name_prefix="merkle-zarr")
    return await asyncio.get_running_loop().run_in_executor(_HASHING, fn, *args)


def _dir(prefix: str) -> str:
    return prefix if not prefix or prefix.endswith("/") else prefix + "/"


def _check_request(byte_range: object) -> None:
    """A zarr ByteRequest with a sane span (Z8), or the TypeError or
    ValueError that zarr's own stores raise: a bad request is the caller's
    mistake, not a path or an integrity problem."""
    if isinstance(byte_range, RangeByteRequest):
        numbers: tuple[object, ...] = (byte_range.start, byte_range.end)
    elif isinstance(byte_range, OffsetByteRequest):
        numbers = (byte_range.offset,)
    elif isinstance(byte_range, SuffixByteRequest):
        numbers = (byte_range.suffix,)
    else:
        raise TypeError(f"Unexpected byte_range, got {byte_range!r}.")
    ints = [n for n in numbers if type(n) is int]
    if len(ints) != len(numbers):
        raise TypeError(f"byte range bounds must be integers, got {byte_range!r}")
    if min(ints) < 0 or (isinstance(byte_range, RangeByteRequest) and byte_range.end < byte_range.start):
        raise ValueError(f"invalid byte range {byte_range!r}: negative or reversed")


def _span(byte_range: ByteRequest, size: int) -> tuple[int, int]:
    """[start, end) of a checked request within a key of `size` bytes,
    clamped as zarr's own stores do."""
    if isinstance(byte_range, RangeByteRequest):
        start, end = byte_range.start, byte_range.end
    elif isinstance(byte_range, OffsetByteRequest):
        start, end = byte_range.offset, size
    else:
        assert isinstance(byte_range, SuffixByteRequest)
        start, end = max(0, size - byte_range.suffix), size
    return min(start, size), min(end, size)


def _as_store(store: Store | str | os.PathLike[str], storage_options: dict[str, Any] | None) -> Store:
    if isinstance(store, Store):
        return store
    name = os.fspath(store)
    if is_url(name) and not name.startswith("file://"):
        from zarr.storage import FsspecStore

        return FsspecStore.from_url(name, storage_options=storage_options, read_only=True)
    return ConfinedLocalStore(name.removeprefix("file://"), read_only=True)


class ConfinedLocalStore(LocalStore):
    """zarr's LocalStore, read the way merkle reads a tree (docs/cli.md,
    Links; W4, W5): each key opened down from the root one component at a
    time, no symbolic link followed, nothing but a regular file opened, and
    never blocking (a FIFO in place of a chunk is an error, not a hang).  A
    refused key raises SourceError naming it; a missing one reads as absent,
    as in LocalStore.  VerifiedStore reads a local path with it (a Store
    object passed in is read as that store reads)."""

    async def get(
        self, key: str, prototype: BufferPrototype | None = None, byte_range: ByteRequest | None = None
    ) -> Buffer | None:
        if not self._is_open:
            await self._open()
        if prototype is None:
            from zarr.core.buffer import default_buffer_prototype

            prototype = default_buffer_prototype()
        return await asyncio.to_thread(_read_below, str(self.root), key, prototype, byte_range)

    async def get_partial_values(
        self, prototype: BufferPrototype, key_ranges: Iterable[tuple[str, ByteRequest | None]]
    ) -> builtins.list[Buffer | None]:
        return [*await asyncio.gather(*(self.get(k, prototype, r) for k, r in key_ranges))]

    async def getsize(self, key: str) -> int:
        try:
            fd, st = await asyncio.to_thread(open_below, str(self.root), key)
        except SourceError as e:
            if not os.path.lexists(os.path.join(str(self.root), *key.split("/"))):
                raise FileNotFoundError(key) from e  # as LocalStore says it
            raise
        os.close(fd)
        return st.st_size


def _read_below(root: str, key: str, prototype: BufferPrototype, byte_range: ByteRequest | None) -> Buffer | None:
    """Key `key` of the folder `root` (the bytes LocalStore's reader returns
    for `byte_range`), opened under the link policy."""
    try:
        fd, st = open_below(root, key)
    except SourceError:
        if not os.path.lexists(os.path.join(root, *key.split("/"))):
            return None  # nothing there: absent, as LocalStore says (never read)
        raise
    try:
        end: int | None = None
        if byte_range is None:
            start = 0
        elif isinstance(byte_range, RangeByteRequest):
            start, end = byte_range.start, byte_range.end
        elif isinstance(byte_range, OffsetByteRequest):
            start = byte_range.offset
        elif isinstance(byte_range, SuffixByteRequest):
            start = max(0, st.st_size - byte_range.suffix)
        else:
            raise TypeError(f"Unexpected byte_range, got {byte_range}.")
        parts, offset = [], start
        while end is None or offset < end:
            got = os.pread(fd, READ_BYTES if end is None else min(end - offset, READ_BYTES), offset)
            if not got:
                break
            parts.append(got)
            offset += len(got)
        return prototype.buffer.from_bytes(b"".join(parts))
    finally:
        os.close(fd)
