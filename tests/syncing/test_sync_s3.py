"""`merkle sync s3://... DEST BUNDLE` against moto's S3 server, through the
fault-injecting proxy of the object-store tests (support.s3proxy).

What is measured on the wire is the proxy's log: the Range headers of the
GETs that reached it, so the claim "only the changed chunks are fetched" is
checked by something other than the code under test.  Transient faults are
retried and end verified; a persistent fault is one line per file and exit
2, with what was fetched kept for the next run; an object overwritten with
unsigned bytes never reaches DEST."""

from __future__ import annotations

import json
import os
import re
import threading
from pathlib import Path
from typing import Any

import pytest
from support.s3proxy import FaultProxy, Request, get_of
from support.sync import same_tree

s3fs = pytest.importorskip("s3fs")
pytest.importorskip("moto.server")

from merkle.cli import main  # noqa: E402
from merkle.source import remote  # noqa: E402

CS = 64 * 1024
NO_CLIENT_RETRIES = {"config_kwargs": {"retries": {"max_attempts": 0}}}


@pytest.fixture(autouse=True)
def quick(monkeypatch):
    """s3fs's own retries off (what recovers is merkle's), merkle's backoff short."""
    monkeypatch.setattr(s3fs.S3FileSystem, "retries", 1)
    monkeypatch.setattr(remote, "BACKOFF", 0.005)


class Model:
    def __init__(self, root: Path, url: str, bundle: Path, key: str, options: list[str]) -> None:
        self.root, self.url, self.bundle, self.key, self.options = root, url, bundle, key, options


@pytest.fixture
def model(cli, direct, proxy, tmp_path) -> Model:
    """A model of three shards (one of 160 chunks: two ranged reads) and a
    README, in a bucket and in a local folder, signed from the folder."""
    src = tmp_path / "src"
    src.mkdir()
    files = {
        "model-00001.bin": os.urandom(160 * CS),
        "model-00002.bin": os.urandom(20 * CS + 5),
        "model-00003.bin": os.urandom(12 * CS),
        "README.md": b"# model\n",
    }
    bucket = f"s{os.urandom(4).hex()}"
    direct.mkdir(bucket)
    for name, body in files.items():
        (src / name).write_bytes(body)
        direct.pipe(f"{bucket}/m/{name}", body)
    assert cli("keygen", "-o", str(tmp_path / "k")).returncode == 0
    bundle = tmp_path / "b.json"
    r = cli("build", str(src), "--chunk-size", "64K", "--sign", str(tmp_path / "k"), "-o", str(bundle), "-q")
    assert r.returncode == 0, r.stderr
    options = {"client_kwargs": {"endpoint_url": proxy.url}, **NO_CLIENT_RETRIES}
    flags = [x for k, v in options.items() for x in ("--storage-option", f"{k}={json.dumps(v)}")]
    return Model(src, f"s3://{bucket}/m", bundle, str(tmp_path / "k.pub"), flags)


def sync(capsys: Any, m: Model, dest: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
    """The real CLI entry point in this process (so the short backoff applies)."""
    capsys.readouterr()
    crashes: list[str] = []
    hook = threading.excepthook
    threading.excepthook = lambda a: crashes.append(repr(a.exc_value))
    try:
        code = main(["sync", m.url, str(dest), str(m.bundle), "--key", m.key, "--json", *m.options, *extra])
    finally:
        threading.excepthook = hook
    out = capsys.readouterr()
    assert not crashes and "Traceback" not in out.err, (crashes, out.err)
    return code, json.loads(out.out) if out.out.strip() else {}, out.err


def wire_bytes(proxy: FaultProxy, action: str = "pass") -> int:
    """Bytes the Range headers of the object GETs asked for (those passed)."""
    total = 0
    for req, what in proxy.log:
        if req.method == "GET" and req.range and what == action:
            first, last = map(int, re.fullmatch(r"bytes=(\d+)-(\d+)", req.range).groups())
            total += last - first + 1
    return total


def test_a_changed_shard_moves_only_its_changed_chunks(capsys, model, faults, tmp_path):
    dest = tmp_path / "dest"
    code, doc, err = sync(capsys, model, dest)
    assert code == 0, err
    assert same_tree(model.root, dest)
    # One chunk of a 160-chunk shard and the short last chunk of another changed in DEST.
    with open(dest / "model-00001.bin", "r+b") as f:
        f.seek(77 * CS + 1)
        f.write(b"fine-tuned")
    with open(dest / "model-00002.bin", "r+b") as f:
        f.seek(20 * CS + 2)
        f.write(b"x")
    faults.reset()
    code, doc, err = sync(capsys, model, dest)
    assert code == 0, err
    assert wire_bytes(faults) == CS + 5 == doc["sync"]["fetched_bytes"]
    assert doc["sync"]["in_place"] == 2 and doc["sync"]["written"] == 2
    assert same_tree(model.root, dest)


@pytest.mark.parametrize("action", ["500", "503", "reset", "close-early", "short", "unframed"])
def test_transient_faults_end_verified(capsys, model, faults, tmp_path, action):
    faults.add(action, times=3)
    code, doc, err = sync(capsys, model, tmp_path / "dest")
    assert faults.injected(action) == 3
    assert code == 0, err
    assert same_tree(model.root, tmp_path / "dest")


def test_an_interrupted_sync_resumes_with_what_it_fetched(capsys, model, faults, tmp_path):
    """Every read of the second range of the big shard fails: that file is
    one error line (exit 2), the rest is in place, the first range stays in
    the partial, and the next run fetches only the second range."""
    faults.add("500", get_of("model-00001.bin", first_byte=128 * CS))
    dest = tmp_path / "dest"
    code, doc, err = sync(capsys, model, dest)
    assert code == 2
    by_path = {f["path"]: f for f in doc["files"]}
    assert by_path["model-00001.bin"]["status"] == "error" and "internal error" in by_path["model-00001.bin"]["detail"]
    assert all(by_path[p]["status"] == "ok" for p in ("model-00002.bin", "model-00003.bin", "README.md"))
    assert not (dest / "model-00001.bin").exists()
    faults.reset()
    code, doc, err = sync(capsys, model, dest)
    assert code == 0, err
    assert doc["sync"]["resumed_bytes"] == 128 * CS
    assert wire_bytes(faults) == 32 * CS == doc["sync"]["fetched_bytes"]
    assert same_tree(model.root, dest)


def test_an_object_overwritten_with_unsigned_bytes_never_reaches_dest(capsys, model, faults, direct, tmp_path):
    dest = tmp_path / "dest"
    assert sync(capsys, model, dest)[0] == 0
    before = (dest / "model-00003.bin").read_bytes()
    with open(dest / "model-00003.bin", "r+b") as f:
        f.write(b"local damage")
    damaged = (dest / "model-00003.bin").read_bytes()
    key = model.url.removeprefix("s3://") + "/model-00003.bin"
    direct.pipe(key, os.urandom(12 * CS))  # the bucket no longer holds what was signed
    code, doc, err = sync(capsys, model, dest)
    assert code == 1
    outcome = {f["path"]: f for f in doc["files"]}["model-00003.bin"]
    assert outcome["status"] == "mismatch" and "other bytes than the bundle" in outcome["detail"]
    assert (dest / "model-00003.bin").read_bytes() == damaged != before


def test_a_missing_object_is_an_error_for_that_file(capsys, model, faults, direct, tmp_path):
    direct.rm(model.url.removeprefix("s3://") + "/README.md")
    code, doc, err = sync(capsys, model, tmp_path / "dest")
    assert code == 2
    outcome = {f["path"]: f for f in doc["files"]}["README.md"]
    assert outcome["status"] == "error" and "no such object" in outcome["detail"]


def test_the_proxy_sees_only_ranged_reads_of_signed_names(capsys, model, faults, tmp_path):
    """Nothing is listed in the source and nothing but the manifest's names is read."""
    assert sync(capsys, model, tmp_path / "dest")[0] == 0
    names = {"model-00001.bin", "model-00002.bin", "model-00003.bin", "README.md"}
    reads: list[Request] = [req for req, _ in faults.log if req.method == "GET"]
    assert reads and all(req.range and req.key.rsplit("/", 1)[1] in names for req in reads)
