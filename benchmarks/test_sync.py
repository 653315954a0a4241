"""`merkle sync s3://... DEST BUNDLE` after a fine-tune touched 1% of one
shard (issue 22), on moto's S3 server (benchmarks/s3server.py).

The model is test_peers.py's model directory (3 shards of 1 GiB; 16 MiB in
quick mode), uploaded once and signed once with 1 MiB chunks.  DEST is a
private copy whose first shard has 1% of its chunks (at least one, spread
evenly) overwritten before every run.  Three rows, each timed as a whole:

- "s3fs ranged read (changed chunks)": the reference, a plain parallel read
  (8 threads, `fs.cat_file` with start/end) of exactly the changed chunks in
  a Python process of its own (s3fs imported, a client made), discarding
  the bytes: what moving the changed bytes costs a program at least;
- "merkle sync": the real program, which must also hash DEST to know what
  changed, fetch, check each chunk, copy the rest of the shard and check
  the written shard whole before renaming it;
- "merkle verify": the same DEST checked against the same bundle, the
  floor under any sync that trusts nothing about DEST.

The goals: bytes fetched within 1.1x of the changed chunks' bytes (checked
from sync's own count and asserted: a byte count, not a time), and wall
time within 1.2x of the reference (reported, never asserted).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from . import datasets, s3server
from .procs import merkle_cli, run
from .settings import SEED, Settings

s3fs = pytest.importorskip("s3fs")
pytest.importorskip("moto.server")

CASE = "sync: one shard 1% changed"
REFERENCE = "s3fs ranged read (changed chunks)"
BUCKET = "merkle-bench-sync"
CHUNK = 1 << 20
THREADS = 8


@dataclass(frozen=True)
class Setup:
    endpoint: str
    url: str
    dest: Path
    bundle: Path
    key: Path
    options: list[str]
    shard: str
    """The shard whose chunks change, by name."""
    changed: list[int]
    """Its changed chunks."""
    shard_size: int

    @property
    def changed_bytes(self) -> int:
        return sum(min(CHUNK, self.shard_size - i * CHUNK) for i in self.changed)

    def damage(self) -> None:
        with open(self.dest / self.shard, "r+b") as f:
            for i in self.changed:
                f.seek(i * CHUNK + 17)
                f.write(os.urandom(64))


@pytest.fixture(scope="module")
def setup(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    model = datasets.model_dir(settings.data_dir, settings.shard_size, SEED)
    state = tmp_path_factory.mktemp("sync")
    saved = os.environ.get("MERKLE_STORE")
    os.environ["MERKLE_STORE"] = str(state / "store")
    try:
        with s3server.running() as endpoint:
            fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint}, skip_instance_cache=True)
            fs.mkdir(BUCKET)
            for name in sorted(os.listdir(model.root)):
                fs.put_file(str(model.root / name), f"{BUCKET}/model/{name}")
            run([*merkle_cli(), "keygen", "-o", str(state / "k")])
            bundle = state / "b.json"
            run([*merkle_cli(), "build", str(model.root), "--sign", str(state / "k"), "-o", str(bundle), "-q"])
            dest = state / "dest"
            shutil.copytree(model.root, dest)
            shard = sorted(n for n in os.listdir(dest) if n.endswith(".safetensors"))[0]
            chunks = -(-settings.shard_size // CHUNK)
            step = max(1, chunks // max(1, chunks // 100))
            options = ["--storage-option", f"client_kwargs={json.dumps({'endpoint_url': endpoint})}"]
            yield Setup(
                endpoint, f"s3://{BUCKET}/model", dest, bundle, state / "k.pub", options, shard,
                list(range(step // 2, chunks, step))[: max(1, chunks // 100)], settings.shard_size,
            )  # fmt: skip
    finally:
        if saved is None:
            os.environ.pop("MERKLE_STORE", None)
        else:
            os.environ["MERKLE_STORE"] = saved


READER = """
import json, sys, threading
from concurrent.futures import ThreadPoolExecutor
import s3fs
endpoint, key, ranges = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint})
got = [0]
lock = threading.Lock()
def read(r):
    data = fs.cat_file(key, start=r[0], end=r[1])
    with lock:
        got[0] += len(data)
with ThreadPoolExecutor(int(sys.argv[4])) as pool:
    list(pool.map(read, ranges))
print(got[0])
"""


def ranged_read(s: Setup) -> int:
    """A plain parallel ranged read of the changed chunks, in a process of its
    own as merkle sync runs (s3fs imported, a client made, the ranges read)."""
    ranges = [(i * CHUNK, min((i + 1) * CHUNK, s.shard_size)) for i in s.changed]
    argv = [sys.executable, "-c", READER, s.endpoint, f"{BUCKET}/model/{s.shard}", json.dumps(ranges), str(THREADS)]
    return int(subprocess.run(argv, capture_output=True, check=True).stdout)


def sync_once(s: Setup, fetched: list[int]) -> None:
    argv = [*merkle_cli(), "sync", s.url, str(s.dest), str(s.bundle), "--key", str(s.key), "--json", *s.options]
    done = subprocess.run(argv, capture_output=True)
    if done.returncode != 0:
        raise RuntimeError(f"merkle sync exited {done.returncode}: {done.stderr.decode(errors='replace')[-500:]}")
    fetched.append(json.loads(done.stdout)["sync"]["fetched_bytes"])


@pytest.mark.parametrize("tool", [REFERENCE, "merkle sync", "merkle verify"])
def test_sync_after_a_fine_tune(tool: str, setup: Setup, measure: Callable[..., None]) -> None:
    s = setup
    if tool == REFERENCE:
        got: list[int] = []
        measure(CASE, tool, lambda: got.append(ranged_read(s)), s.changed_bytes)
        assert set(got) == {s.changed_bytes}
    elif tool == "merkle sync":
        fetched: list[int] = []
        measure(CASE, tool, lambda: sync_once(s, fetched), s.changed_bytes, s.damage)
        assert fetched and max(fetched) <= 1.1 * s.changed_bytes, (fetched, s.changed_bytes)
    else:
        verify = [*merkle_cli(), "verify", str(s.dest), str(s.bundle), "--key", str(s.key), "-q"]
        measure(CASE, tool, lambda: run(verify), s.changed_bytes)
