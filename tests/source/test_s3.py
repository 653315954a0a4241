"""Object stores for real: moto's S3 server on 127.0.0.1, started here, and
the `merkle` program talking to it over HTTP through s3fs."""

from __future__ import annotations

import json
import os

import pytest
from support.cli import assert_one_line_error, statuses

s3fs = pytest.importorskip("s3fs")  # installed by the test extras; CI runs these
moto_server = pytest.importorskip("moto.server")


@pytest.fixture
def s3(endpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("MERKLE_STORE", str(tmp_path / "store"))
    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint}, skip_instance_cache=True)
    bucket = f"b{os.urandom(4).hex()}"
    fs.mkdir(bucket)
    objects = {f"data/part-{i:03d}.bin": os.urandom(500 * i + 1) for i in range(12)}
    objects["data/nested/big.bin"] = os.urandom(3 * 65536 + 99)
    objects["data/empty.bin"] = b""
    for key, body in objects.items():
        fs.pipe(f"{bucket}/{key}", body)
    option = "client_kwargs=" + json.dumps({"endpoint_url": endpoint})
    return fs, bucket, objects, option


def test_build_and_verify_a_prefix(cli, s3, tmp_path):
    fs, bucket, objects, option = s3
    m = tmp_path / "m.json"
    r = cli("build", f"s3://{bucket}/data", "-o", str(m), "--chunk-size", "64K", "--storage-option", option)
    assert r.returncode == 0, r.stderr
    doc = json.loads(m.read_text())
    assert sorted(f["path"] for f in doc["files"]) == sorted(k.removeprefix("data/") for k in objects)
    meta = json.loads((tmp_path / "m.json.objects.json").read_text())
    assert meta["nested/big.bin"]["size"] == 3 * 65536 + 99 and meta["nested/big.bin"]["etag"]
    # the same bytes on local disk give the same manifest root
    local = tmp_path / "local"
    for key, body in objects.items():
        (local / key.removeprefix("data/")).parent.mkdir(parents=True, exist_ok=True)
        (local / key.removeprefix("data/")).write_bytes(body)
    r2 = cli("build", str(local), "-o", str(tmp_path / "l.json"), "--chunk-size", "64K")
    assert r2.returncode == 0
    assert json.loads((tmp_path / "l.json").read_text())["root"] == doc["root"]
    r = cli("verify", f"s3://{bucket}/data", str(m), "--storage-option", option)
    assert r.returncode == 0, r.stdout + r.stderr


def test_audit_names_overwritten_deleted_and_added_objects(cli, s3, tmp_path):
    fs, bucket, objects, option = s3
    assert cli("keygen", "-o", str(tmp_path / "k")).returncode == 0
    b = tmp_path / "b.json"
    r = cli(
        "build",
        f"s3://{bucket}/data",
        "--sign",
        str(tmp_path / "k"),
        "-o",
        str(b),
        "--chunk-size",
        "64K",
        "--storage-option",
        option,
    )
    assert r.returncode == 0, r.stderr
    fs.pipe(f"{bucket}/data/part-003.bin", os.urandom(1501))  # same size, new bytes
    fs.rm(f"{bucket}/data/part-004.bin")
    fs.pipe(f"{bucket}/data/new.bin", b"added")
    for mode in ([], ["--fast"], ["--sample", "1.0", "--seed", "7"]):
        r = cli(
            "audit", f"s3://{bucket}/data", str(b), "--key", f"{tmp_path / 'k'}.pub", "--storage-option", option, *mode
        )
        assert r.returncode == 1, (mode, r.stdout, r.stderr)
        got = statuses(r.stdout)
        assert (got["part-003.bin"], got["part-004.bin"], got["new.bin"]) == ("*", "-", "+"), (mode, r.stdout)
        assert got["part-005.bin"] == "="
    r = cli(
        "audit", f"s3://{bucket}/data", str(b), "--key", f"{tmp_path / 'k'}.pub", "--storage-option", option, "--fast"
    )
    assert "NOT a cryptographic check" in r.stderr


def test_sample_audit_states_its_odds(cli, s3, tmp_path):
    fs, bucket, objects, option = s3
    m = tmp_path / "m.json"
    assert (
        cli("build", f"s3://{bucket}/data", "-o", str(m), "--chunk-size", "4K", "--storage-option", option).returncode
        == 0
    )
    r = cli(
        "audit", f"s3://{bucket}/data", str(m), "--sample", "0.25", "--seed", "1", "--json", "--storage-option", option
    )
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    total = doc["sample"]["total_chunks"]
    assert doc["sample"]["sampled"] == -(-total // 4)
    assert 0 < doc["sample"]["catch_probability_at_1_percent"] < 1


def test_sample_catches_a_corrupt_chunk_when_it_is_drawn(cli, s3, tmp_path):
    fs, bucket, objects, option = s3
    m = tmp_path / "m.json"
    assert (
        cli("build", f"s3://{bucket}/data", "-o", str(m), "--chunk-size", "4K", "--storage-option", option).returncode
        == 0
    )
    body = bytearray(objects["data/nested/big.bin"])
    body[70000] ^= 1
    fs.pipe(f"{bucket}/data/nested/big.bin", bytes(body))
    r = cli("audit", f"s3://{bucket}/data", str(m), "--sample", "1", "--seed", "3", "--storage-option", option)
    assert r.returncode == 1
    assert "* nested/big.bin  (sampled chunk(s) 17 differ)" in r.stdout.splitlines()


def test_missing_bucket_and_missing_credentials(cli, s3, tmp_path, monkeypatch):
    fs, bucket, objects, option = s3
    r = cli("build", f"s3://{bucket}-nope/data", "-o", str(tmp_path / "m.json"), "--storage-option", option)
    assert r.returncode == 2
    assert_one_line_error(r, f"s3://{bucket}-nope/data")
    assert not (tmp_path / "m.json").exists()
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(var)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    r = cli("build", f"s3://{bucket}/data", "-o", str(tmp_path / "m.json"), "--storage-option", option, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_unknown_scheme_is_a_clear_error(cli, tmp_path):
    r = cli("build", "nosuchscheme://x/y", "-o", str(tmp_path / "m.json"))
    assert r.returncode == 2
    assert_one_line_error(r)
