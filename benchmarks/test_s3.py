"""Building over S3 against a plain parallel s3fs read, on moto's S3 server.

moto's ThreadedMotoServer runs on 127.0.0.1 in this process (started by a
module fixture); the data is uploaded once:

- s3 small objects: 1,000 objects of 4-256 KiB (quick: 100);
- s3 large objects: 3 objects of 256 MiB (quick: 2 of 16 MiB).

For each case the reference, "s3fs parallel read", lists the prefix and reads
every object fully on 16 threads (`fs.cat_file`: whole objects up to 4 MiB,
larger ones as 4 MiB ranges spread over the threads) and discards the bytes;
"merkle.build (API)" builds a manifest of the same prefix with default
settings.  Goal: "x ref" >= 0.8.  Both rows count the same bytes.

Peak memory: `merkle build s3://...` as a child process, RssAnon sampled as
in test_memory.py, over the same number of objects at two object sizes
(16 and 256 MiB; quick: 4 and 16 MiB): it should not grow with the size.

moto serves a ranged GET by reading the whole object out of its buffer and
slicing it, so a range of a 256 MiB object costs about 0.1 s of server time
whatever its length: unchanged, the large case measures moto's copying, not
the client (8 MB/s in 1 MiB ranges, 33 MB/s in 4 MiB ranges).  Here objects
are kept in memory and a GET takes the stored bytes without the copy, so a
range costs its own length, as on S3.  MERKLE_BENCH_MOTO_AS_IS=1 turns this
off.  The server shares this process (and its GIL and cores) with both
readers alike.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import merkle

from . import datasets, s3server
from .procs import merkle_cli, peak_memory
from .settings import SEED, Settings
from .table import S3FS_READ, Memory

s3fs = pytest.importorskip("s3fs")
moto_server = pytest.importorskip("moto.server")

SMALL = "s3 small objects"
LARGE = "s3 large objects"
MERKLE_API = "merkle.build (API)"
BUCKET = "merkle-bench"
THREADS = 16
PIECE = 4 << 20  # range size of the plain read


@dataclass(frozen=True)
class Prefix:
    url: str  # s3://bucket/prefix
    count: int
    bytes: int


@dataclass(frozen=True)
class Store:
    endpoint: str
    fs: object  # the uploader's and reference reader's s3fs.S3FileSystem
    small: Prefix
    large: Prefix
    memory: dict[int, Prefix]  # object size -> prefix, for the peak memory runs

    @property
    def storage_options(self) -> dict[str, object]:
        return {"client_kwargs": {"endpoint_url": self.endpoint}}


@pytest.fixture(scope="module")
def store(settings: Settings) -> Iterator[Store]:
    with s3server.running() as endpoint:
        fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint}, skip_instance_cache=True)
        fs.mkdir(BUCKET)
        yield _upload(fs, endpoint, settings)


def _upload(fs: Any, endpoint: str, settings: Settings) -> Store:
    small_count, large_count, large_size, memory_sizes = (
        (100, 2, 16 << 20, (4 << 20, 16 << 20)) if settings.quick else (1000, 3, 256 << 20, (16 << 20, 256 << 20))
    )
    rng = random.Random(SEED + b"s3")
    small = {
        f"{BUCKET}/small/d{i // 100:02d}/o{i:05d}.bin": rng.randint(settings.small_min, settings.small_max)
        for i in range(small_count)
    }
    fs.pipe({key: datasets.random_bytes(SEED + key.encode(), size) for key, size in small.items()})

    def large_prefix(name: str, size: int) -> Prefix:
        for i in range(large_count):
            key = f"{BUCKET}/{name}/o{i}.bin"
            fs.pipe_file(key, datasets.random_bytes(SEED + key.encode(), size))
        return Prefix(f"s3://{BUCKET}/{name}", large_count, large_count * size)

    large = large_prefix("large", large_size)
    memory = {
        size: large if size == large_size else large_prefix(f"large-{size >> 20}m", size) for size in memory_sizes
    }
    return Store(endpoint, fs, Prefix(f"s3://{BUCKET}/small", small_count, sum(small.values())), large, memory)


def plain_read(fs: Any, url: str) -> int:
    """List the prefix and read every byte on THREADS threads; bytes read."""
    root = url.removeprefix("s3://")
    fs.invalidate_cache(root)
    infos = fs.find(root, detail=True)
    tasks: list[tuple[str, int | None, int | None]] = []
    for path, info in infos.items():
        size = int(info["size"])
        if size <= PIECE:
            tasks.append((path, None, None))
        else:
            tasks.extend((path, start, min(start + PIECE, size)) for start in range(0, size, PIECE))
    got = [0]
    lock = threading.Lock()

    def read(task: tuple[str, int | None, int | None]) -> None:
        path, start, end = task
        data = fs.cat_file(path, start=start, end=end)
        with lock:
            got[0] += len(data)

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(read, tasks))
    return got[0]


@pytest.mark.parametrize(("case", "tool"), [(c, t) for c in (SMALL, LARGE) for t in (S3FS_READ, MERKLE_API)])
def test_read_a_prefix(measure: Callable[..., None], store: Store, case: str, tool: str) -> None:
    prefix: Prefix = store.small if case == SMALL else store.large
    if tool == S3FS_READ:
        counted: list[int] = []
        measure(case, tool, lambda: counted.append(plain_read(store.fs, prefix.url)), prefix.bytes)
        assert set(counted) == {prefix.bytes}
    else:
        built: list[merkle.Manifest] = []
        measure(
            case,
            tool,
            lambda: built.append(merkle.build(prefix.url, storage_options=store.storage_options)),
            prefix.bytes,
        )
        assert {(len(m.files), m.total_size) for m in built} == {(prefix.count, prefix.bytes)}
        assert len({m.root for m in built}) == 1


@pytest.mark.parametrize("size", [0, 1], ids=["smaller objects", "larger objects"])
def test_peak_memory_of_build(store: Store, size: int, record_memory: Callable[[Memory], None], tmp_path: Path) -> None:
    object_size = sorted(store.memory)[size]
    prefix = store.memory[object_size]
    option = "client_kwargs=" + json.dumps({"endpoint_url": store.endpoint})
    argv = [*merkle_cli(), "build", prefix.url, "-o", str(tmp_path / "out.json"), "-q", "--storage-option", option]
    peak = peak_memory(argv)
    assert json.loads((tmp_path / "out.json").read_text())["files"]  # a real manifest came out
    record_memory(
        Memory(f"merkle build s3:// ({prefix.count} objects)", object_size, peak.rss_anon, peak.hwm, peak.samples)
    )
