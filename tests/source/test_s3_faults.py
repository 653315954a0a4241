"""Faults between s3fs and a real S3 endpoint.

moto's S3 server runs on 127.0.0.1 (as in test_s3.py) and a small HTTP proxy
of this file's own sits between s3fs and it.  Each test tells the proxy which
requests to spoil: 500 InternalError and 503 SlowDown answers, slow answers,
connections reset mid-body, bodies cut short (a correct Content-Length and an
early close, a shortened but matching Content-Length, or no length at all),
and hooks that delete or overwrite an object behind merkle's back.

The client's own retries are turned off (botocore `max_attempts` 0; s3fs's
retry count, in-process) so that what recovers is merkle's RemoteReader, and
every test asserts that the proxy really injected what it was told to.

The claims: transient faults leave build and verify with the same root as a
local copy of the same bytes; persistent faults are exit 2 with one line and
no manifest; a short body is never hashed as if it were complete; an object
deleted or overwritten while it is read is an error naming it, never '='.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.cli import assert_one_line_error, statuses
from support.s3proxy import Request, get_of, head_of, listing, object_get

s3fs = pytest.importorskip("s3fs")
moto_server = pytest.importorskip("moto.server")

from merkle.building import build  # noqa: E402
from merkle.cli import main  # noqa: E402
from merkle.errors import SourceError  # noqa: E402
from merkle.source import remote  # noqa: E402
from merkle.verifying.tree import verify  # noqa: E402

CHUNK = 64 * 1024
NO_CLIENT_RETRIES = {"config_kwargs": {"retries": {"max_attempts": 0}}}
"""botocore never retries.  s3fs's own retry count (5, for resets, payload
errors and SlowDown; never for a 500) is a class attribute, not a storage
option: in-process tests set it to 1 (`no_s3fs_retries`), so that what
recovers there is merkle's RemoteReader; child processes keep it."""


# --------------------------------------------------------------------------
# Fixtures


@dataclass
class Dataset:
    url: str
    bucket: str
    objects: dict[str, bytes]
    root: str
    """Root of the same bytes built from a local copy."""
    options: dict[str, Any]
    """In-process storage options through the proxy, client retries off."""
    cli_options: list[str]

    def key(self, name: str) -> str:
        return f"{self.bucket}/data/{name}"


def _local_root(tmp_path: Path, objects: dict[str, bytes], chunk_size: int = CHUNK) -> str:
    local = tmp_path / f"local-{os.urandom(3).hex()}"
    for name, body in objects.items():
        (local / name).parent.mkdir(parents=True, exist_ok=True)
        (local / name).write_bytes(body)
    return build(local, chunk_size=chunk_size).root.hex()


def _cli_options(options: dict[str, Any]) -> list[str]:
    out = []
    for k, v in options.items():
        out += ["--storage-option", f"{k}={json.dumps(v)}"]
    return out


@pytest.fixture
def data(direct, proxy, tmp_path, monkeypatch) -> Dataset:
    monkeypatch.setenv("MERKLE_STORE", str(tmp_path / "store"))
    bucket = f"f{os.urandom(4).hex()}"
    direct.mkdir(bucket)
    objects = {f"part-{i:03d}.bin": os.urandom(700 * i + 1) for i in range(6)}
    objects["nested/big.bin"] = os.urandom(3 * CHUNK + 99)
    objects["empty.bin"] = b""
    for name, body in objects.items():
        direct.pipe(f"{bucket}/data/{name}", body)
    options = {"client_kwargs": {"endpoint_url": proxy.url}, **NO_CLIENT_RETRIES}
    return Dataset(
        f"s3://{bucket}/data", bucket, objects, _local_root(tmp_path, objects), options, _cli_options(options)
    )


@pytest.fixture(autouse=True)
def no_s3fs_retries(monkeypatch):
    monkeypatch.setattr(s3fs.S3FileSystem, "retries", 1)


@pytest.fixture
def fast_backoff(monkeypatch):
    """In-process runs keep merkle's retry count but not its patience."""
    monkeypatch.setattr(remote, "BACKOFF", 0.005)


@pytest.fixture
def run_main(capsys, monkeypatch):
    """The real CLI entry point, in this process (so fast_backoff applies).
    What an uncaught exception in a thread would print in the real program
    ('Exception in thread ...' and a traceback) is added to its stderr."""
    import traceback
    import warnings

    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)
    crashes: list[str] = []

    def excepthook(args: threading.ExceptHookArgs) -> None:
        name = args.thread.name if args.thread else "?"
        crashes.append(
            f"Exception in thread {name}:\n"
            + "".join(traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback))
        )

    monkeypatch.setattr(threading, "excepthook", excepthook)

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        crashes.clear()
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out, "".join(crashes) + out.err

    return run


GET_COUNT = 7 + 3  # seven non-empty objects, big.bin is four chunks


# --------------------------------------------------------------------------
# (1) Transient faults: retried, and the root is the root of the bytes


TRANSIENT = ["500", "503", "reset", "close-early", "short", "unframed"]


@pytest.mark.parametrize("action", TRANSIENT)
def test_transient_faults_on_reads_recover_with_the_right_root(data, faults, action):
    faults.add(action, object_get, times=3)
    manifest = build(data.url, chunk_size=CHUNK, storage_options=data.options)
    assert faults.injected(action) == 3
    assert manifest.root.hex() == data.root

    faults.reset()
    faults.add(action, object_get, times=3)
    report = verify(data.url, manifest, storage_options=data.options)
    assert faults.injected(action) == 3
    assert report.ok, [o.line() for o in report.failures]
    assert {o.status.value for o in report.outcomes} == {"="}


def test_transient_faults_on_metadata_refresh_recover(data, faults):
    """check_end's HEAD goes through the same retries as the reads."""
    faults.add("500", lambda r: r.method == "HEAD" and r.key.endswith(".bin"), times=2)
    faults.add("503", lambda r: r.method == "HEAD" and r.key.endswith(".bin"), times=2)
    manifest = build(data.url, chunk_size=CHUNK, storage_options=data.options)
    assert faults.injected("500") == 2 and faults.injected("503") == 2
    assert manifest.root.hex() == data.root


def test_read_timeouts_on_slow_answers_are_retried(data, faults):
    options = {**data.options, "config_kwargs": {"retries": {"max_attempts": 0}, "read_timeout": 0.5}}
    faults.add("delay", object_get, times=2, arg=1.5)
    started = time.monotonic()
    manifest = build(data.url, chunk_size=CHUNK, storage_options=options)
    assert faults.injected("delay") == 2
    assert manifest.root.hex() == data.root
    assert time.monotonic() - started < 10


def test_transient_listing_faults_recover_with_default_client_retries(data, faults):
    """merkle does not retry the listing itself: with the client's usual
    retries (botocore's), a 500 and a 503 on LIST are survived."""
    options = {"client_kwargs": {"endpoint_url": faults.url}}
    faults.add("500", listing, times=1)
    faults.add("503", listing, times=1)
    manifest = build(data.url, chunk_size=CHUNK, storage_options=options)
    assert faults.injected("500") == 1 and faults.injected("503") == 1
    assert manifest.root.hex() == data.root


def test_cli_build_and_verify_through_a_mix_of_faults(cli, data, faults, tmp_path):
    """The real program, real backoff: 500, 503, reset, truncated and slow
    answers on a few reads each; build and verify succeed with the root of
    the local copy."""

    def arm() -> None:
        faults.reset()
        faults.add("500", object_get, times=2)
        faults.add("503", object_get, times=2)
        faults.add("reset", object_get, times=1)
        faults.add("close-early", object_get, times=1)
        faults.add("short", object_get, times=1)
        faults.add("delay", object_get, times=2, arg=0.3)

    arm()
    m = tmp_path / "m.json"
    r = cli("build", data.url, "-o", str(m), "--chunk-size", "64K", *data.cli_options)
    assert r.returncode == 0, r.stderr
    assert json.loads(m.read_text())["root"] == data.root
    assert r.stdout.split()[0] == data.root
    assert all(faults.injected(a) for a in ("500", "503", "reset", "close-early", "short", "delay"))

    arm()
    r = cli("verify", data.url, str(m), *data.cli_options)
    assert r.returncode == 0, r.stdout + r.stderr
    assert set(statuses(r.stdout).values()) == {"="}
    assert len(statuses(r.stdout)) == len(data.objects)
    assert faults.injected("500") == 2 and faults.injected("reset") == 1


# --------------------------------------------------------------------------
# (2) Persistent faults: exit 2, one line, no manifest, never success


PERSISTENT = ["500", "503", "reset", "close-early"]


@pytest.mark.parametrize("action", PERSISTENT)
def test_persistent_faults_fail_build_and_verify(data, faults, tmp_path, run_main, fast_backoff, action):
    m = tmp_path / "m.json"
    good = tmp_path / "good.json"
    assert run_main("build", data.url, "-o", str(good), "--chunk-size", "64K", *data.cli_options)[0] == 0

    faults.add(action, object_get)
    code, out, build_err = run_main("build", data.url, "-o", str(m), "--chunk-size", "64K", *data.cli_options)
    assert code == 2, (out, build_err)
    assert out == ""
    assert_no_manifest(m)
    assert faults.injected(action) >= remote.RETRIES + 1

    code, out, verify_err = run_main("verify", data.url, str(good), *data.cli_options)
    assert code == 2, (out, verify_err)
    got = statuses(out)
    assert got.pop("empty.bin") == "="  # nothing to read, nothing to fail
    assert set(got.values()) == {"!"}, out
    assert "failed after" in out
    assert "verified" not in verify_err and "FAILED" in verify_err

    # one clear line each, and nothing else (no thread tracebacks)
    assert_one_line_error(_Result(build_err), f"{data.url}/", f"failed after {remote.RETRIES + 1} attempts")
    assert "Traceback" not in verify_err, verify_err
    assert [line for line in verify_err.splitlines() if line.strip()] == [verify_err.strip().splitlines()[-1]]


def test_persistent_500s_fail_the_real_program(cli, data, faults, tmp_path):
    """Once through a child process with merkle's real backoff."""
    faults.add("500", object_get)
    m = tmp_path / "m.json"
    r = cli("build", data.url, "-o", str(m), "--chunk-size", "64K", *data.cli_options)
    assert r.returncode == 2, r.stdout + r.stderr
    assert faults.injected("500") >= remote.RETRIES + 1
    assert r.stdout == ""
    assert_no_manifest(m)
    assert_one_line_error(r, f"{data.url}/", f"failed after {remote.RETRIES + 1} attempts", "internal error")


def test_persistent_listing_faults_are_one_line(cli, data, faults, tmp_path):
    faults.add("500", listing)
    m = tmp_path / "m.json"
    r = cli("build", data.url, "-o", str(m), *data.cli_options)
    assert r.returncode == 2
    assert faults.injected("500") >= 1
    assert_no_manifest(m)
    assert_one_line_error(r, data.url)


# --------------------------------------------------------------------------
# (3) A short body is never hashed as if it were complete


def big_get(req: Request) -> bool:
    return object_get(req) and req.key.endswith("/nested/big.bin")


@pytest.mark.parametrize("action", ["short", "unframed"])
def test_short_bodies_on_every_read_are_read_to_the_end(data, faults, tmp_path, fast_backoff, action):
    """Every ranged read of big.bin (partial ranges of a 4-chunk object)
    answered with half its bytes and nothing on the wire to say so (a
    matching Content-Length and Content-Range, or no length at all): merkle
    asks for the rest, and the root is the root of the bytes."""
    manifest = build(data.url, chunk_size=CHUNK, storage_options=data.options)
    assert manifest.root.hex() == data.root
    faults.add(action, big_get)
    manifest = build(data.url, chunk_size=CHUNK, storage_options=data.options)
    assert faults.injected(action) > 4 * 8  # each 64 KiB chunk took many answers
    assert manifest.root.hex() == data.root
    faults.reset()
    faults.add(action, big_get)
    report = verify(data.url, manifest, storage_options=data.options)
    assert report.ok and faults.injected(action) > 4 * 8


@pytest.mark.parametrize("action", ["short", "unframed", "close-early", "empty"])
def test_every_body_cut_short_is_never_a_wrong_root(data, faults, run_main, tmp_path, fast_backoff, action):
    """Every ranged GET of every object cut short.  (botocore checks the
    CRC32 that moto sends for a range that is the whole object, so small
    objects fail; partial ranges have no checksum.)  merkle may fail or may
    read the rest; it must never hash a part as the whole."""
    faults.add(action, object_get)
    m = tmp_path / "m.json"
    code, out, err = run_main("build", data.url, "-o", str(m), "--chunk-size", "64K", *data.cli_options)
    assert faults.injected(action) >= GET_COUNT
    if code == 0:
        assert json.loads(m.read_text())["root"] == data.root, "a truncated body was hashed as complete"
    else:
        assert code == 2 and out == ""
        assert f"merkle: error: {data.url}/" in err
        assert_no_manifest(m)


@pytest.mark.parametrize("action", ["short", "unframed", "close-early", "empty"])
def test_verify_never_says_ok_for_bytes_it_did_not_get(data, faults, run_main, tmp_path, fast_backoff, action):
    good = tmp_path / "good.json"
    assert run_main("build", data.url, "-o", str(good), "--chunk-size", "64K", *data.cli_options)[0] == 0
    faults.add(action, object_get)
    code, out, err = run_main("verify", data.url, str(good), *data.cli_options)
    assert faults.injected(action) >= GET_COUNT
    got = statuses(out)
    assert len(got) == len(data.objects)
    # unread is an error, not a mismatch; '=' only where every byte arrived
    assert set(got.values()) <= {"=", "!"}, out
    assert code == (0 if set(got.values()) == {"="} else 2)
    if action == "close-early":  # an honest Content-Length: every read fails
        assert {got[n] for n in data.objects if data.objects[n]} == {"!"}


def test_sample_audit_with_short_bodies_never_reports_corruption(data, faults, run_main, tmp_path, fast_backoff):
    good = tmp_path / "good.json"
    assert run_main("build", data.url, "-o", str(good), "--chunk-size", "4K", *data.cli_options)[0] == 0
    faults.add("short", big_get)
    code, out, err = run_main("audit", data.url, str(good), "--sample", "0.3", "--seed", "1", *data.cli_options)
    assert faults.injected("short") > 20  # a dozen 4 KiB chunks of big.bin, each in several answers
    assert code == 0, out + err
    assert set(statuses(out).values()) == {"="}
    assert "chunks sampled" in statuses_detail(out)["nested/big.bin"]
    faults.reset()
    faults.add("short", object_get)
    code, out, err = run_main("audit", data.url, str(good), "--sample", "0.2", "--seed", "2", *data.cli_options)
    assert faults.injected("short") >= 1
    assert code in (0, 2), out + err
    assert "*" not in statuses(out).values()


def test_an_empty_answer_to_a_ranged_read_is_never_a_verdict(data, faults, run_main, tmp_path, fast_backoff):
    """One ranged GET answered 206 with no bytes at all (Content-Length: 0),
    once.  build and verify: the right root, or an error.  The sample audit
    must not call the chunk corrupt: bytes that never arrived are no
    evidence either way ('=' after a retry, or '!'; never '*', exit 1)."""
    good = tmp_path / "good.json"
    assert run_main("build", data.url, "-o", str(good), "--chunk-size", "4K", *data.cli_options)[0] == 0
    big = get_of("nested/big.bin", 8192)

    faults.add("empty", big, times=1)
    m = tmp_path / "m.json"
    code, out, err = run_main("build", data.url, "-o", str(m), "--chunk-size", "4K", *data.cli_options)
    assert faults.injected("empty") == 1
    if code == 0:
        assert json.loads(m.read_text())["root"] == json.loads(good.read_text())["root"]
    else:
        assert code == 2 and "nested/big.bin" in err
        assert_no_manifest(m, "nested/big.bin")

    faults.reset()
    faults.add("empty", big, times=1)
    code, out, err = run_main("verify", data.url, str(good), *data.cli_options)
    assert faults.injected("empty") == 1
    assert statuses(out)["nested/big.bin"] in ("=", "!"), out
    assert code in (0, 2)

    faults.reset()
    faults.add("empty", big, times=1)
    code, out, err = run_main("audit", data.url, str(good), "--sample", "1", "--seed", "1", *data.cli_options)
    assert faults.injected("empty") == 1
    assert statuses(out)["nested/big.bin"] in ("=", "!"), out
    assert code in (0, 2), out + err


# --------------------------------------------------------------------------
# (4) Objects deleted or overwritten between listing and reading


def test_object_deleted_mid_build(cli, data, faults, direct, tmp_path):
    faults.add("before", get_of("part-003.bin"), times=1, arg=lambda req: direct.rm(data.key("part-003.bin")))
    m = tmp_path / "m.json"
    r = cli("build", data.url, "-o", str(m), "--chunk-size", "64K", *data.cli_options)
    assert faults.injected("before") == 1
    assert r.returncode == 2, r.stdout + r.stderr
    assert_one_line_error(r, f"{data.url}/part-003.bin", "deleted")
    assert r.stdout == ""
    assert_no_manifest(m, "part-003.bin")


def test_object_overwritten_mid_build(cli, data, faults, direct, tmp_path):
    body = os.urandom(len(data.objects["part-004.bin"]))  # same size, new bytes
    faults.add("before", get_of("part-004.bin"), times=1, arg=lambda req: direct.pipe(data.key("part-004.bin"), body))
    m = tmp_path / "m.json"
    r = cli("build", data.url, "-o", str(m), "--chunk-size", "64K", *data.cli_options)
    assert faults.injected("before") == 1
    assert r.returncode == 2, r.stdout + r.stderr
    assert_one_line_error(r, f"{data.url}/part-004.bin", "changed")
    assert r.stdout == ""
    assert_no_manifest(m, "part-004.bin")


def test_multi_chunk_object_overwritten_between_its_reads(cli, data, faults, direct, tmp_path):
    """big.bin is four ranged reads; it changes after the first."""
    name = "nested/big.bin"
    body = os.urandom(len(data.objects[name]))
    faults.add("after", get_of(name, 0), times=1, arg=lambda req: direct.pipe(data.key(name), body))
    m = tmp_path / "m.json"
    r = cli("build", data.url, "-o", str(m), "--chunk-size", "64K", *data.cli_options)
    assert faults.injected("after") == 1
    assert r.returncode == 2, r.stdout + r.stderr
    assert_one_line_error(r, f"{data.url}/{name}", "changed")
    assert_no_manifest(m, name)


def test_object_deleted_or_overwritten_mid_verify(cli, data, faults, direct, tmp_path):
    m = tmp_path / "m.json"
    assert cli("build", data.url, "-o", str(m), "--chunk-size", "64K", *data.cli_options).returncode == 0
    new = os.urandom(len(data.objects["part-004.bin"]))
    faults.add("before", get_of("part-003.bin"), times=1, arg=lambda req: direct.rm(data.key("part-003.bin")))
    faults.add("before", get_of("part-004.bin"), times=1, arg=lambda req: direct.pipe(data.key("part-004.bin"), new))
    r = cli("verify", data.url, str(m), *data.cli_options)
    assert faults.injected("before") == 2
    assert r.returncode in (1, 2), r.stdout + r.stderr
    got = statuses(r.stdout)
    assert got["part-003.bin"] == "!" and "deleted" in r.stdout
    assert got["part-004.bin"] in ("!", "*"), r.stdout
    assert got["part-005.bin"] == "="
    assert "FAILED" in r.stderr


def test_large_object_overwritten_while_its_units_are_read(direct, faults, tmp_path):
    """An object larger than the engine's unit (8 MiB) is hashed as several
    units on different workers, and only the unit holding the last chunk
    calls check_end.  Here the last unit reads its byte and refreshes the
    metadata (unchanged), then the object is overwritten (same size, new
    bytes) before the first unit's first read.  merkle must refuse the
    object or hash the bytes it listed: a success with a root of neither
    content is a manifest no byte sequence ever had."""
    from merkle.hashing.engine import UNIT_BYTES

    bucket = f"f{os.urandom(4).hex()}"
    direct.mkdir(bucket)
    old = os.urandom(UNIT_BYTES + 1)
    new = os.urandom(len(old))
    key = f"{bucket}/race/big.bin"
    direct.pipe(key, old)
    chunk = 1 << 20
    old_root = _local_root(tmp_path, {"big.bin": old}, chunk)
    new_root = _local_root(tmp_path, {"big.bin": new}, chunk)
    checked = threading.Event()

    def hold_then_overwrite(req: Request) -> None:
        assert checked.wait(20), "the last unit never refreshed the metadata"
        direct.pipe(key, new)

    faults.add("after", head_of("big.bin"), arg=lambda req: checked.set())
    faults.add("before", get_of("big.bin", 0), times=1, arg=hold_then_overwrite)
    options = {"client_kwargs": {"endpoint_url": faults.url}, **NO_CLIENT_RETRIES}
    try:
        manifest = build(f"s3://{bucket}/race", chunk_size=chunk, storage_options=options)
    except SourceError as e:
        assert "big.bin" in str(e)
        return
    finally:
        assert faults.injected("before") == 1
    root = manifest.root.hex()
    assert root == old_root, (
        f"build succeeded with root {root}: not the listed bytes ({old_root}), not the new ones ({new_root})"
    )


def assert_no_manifest(m: Path, failed: str | None = None) -> None:
    """Nothing that looks like a result, nothing at all beside the output: no
    manifest, no sidecars, no checkpoint.  A checkpoint may stay in the
    private checkpoint directory for a rerun with --resume (by design), but
    never with the object that failed in it."""
    left = sorted(p.name for p in m.parent.glob(m.name + "*"))
    assert left == [], left
    private = Path(os.environ["MERKLE_CHECKPOINTS"])
    for checkpoint in private.glob("*.checkpoint") if failed else ():
        lines = [line.partition(" ")[2] for line in checkpoint.read_text().splitlines() if line]
        recorded = [record[0] for line in lines[1:] for record in json.loads(line)]
        assert failed not in recorded, recorded


def statuses_detail(stdout: str) -> dict[str, str]:
    out = {}
    for line in stdout.splitlines():
        _, _, rest = line.partition(" ")
        name, _, detail = rest.partition("  (")
        out[name] = detail.rstrip(")")
    return out


class _Result:
    """What assert_one_line_error reads, for in-process runs."""

    def __init__(self, stderr: str) -> None:
        self.stderr = stderr
