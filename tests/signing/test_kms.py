"""Signing with AWS KMS keys (issue 23), against moto's server on loopback
(the `endpoint` fixture, as the S3 tests use it) and, for a failing service,
through the fault proxy of the object-store tests (support.s3proxy), which
relays KMS's POSTs as it relays S3's GETs.

Bundles signed by KMS verify with the public key `merkle key export` fetched
(GetPublicKey), through merkle and (OpenSSF format) model-signing's own CLI.
A disabled key, a key of the wrong spec or usage, a missing key and an
endpoint that answers 500 or too late are each one line, exit 2, nothing
written; a service whose signature does not verify with the key's public
key never yields a bundle."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support.cli import assert_one_line_error, run_model_signing

boto3 = pytest.importorskip("boto3")
pytest.importorskip("moto.server")


@pytest.fixture(scope="module")
def kms(endpoint):
    return boto3.client("kms", endpoint_url=endpoint, region_name="us-east-1")


def new_key(kms, spec: str = "ECC_NIST_P256", usage: str = "SIGN_VERIFY") -> str:
    return kms.create_key(KeySpec=spec, KeyUsage=usage)["KeyMetadata"]["KeyId"]


def at(endpoint: str) -> list[str]:
    return ["--signer-option", f"endpoint_url={endpoint}"]


@pytest.mark.parametrize("spec", ["ECC_NIST_P256", "ECC_NIST_P384"])
def test_sign_with_kms_and_verify_with_the_exported_key(cli, kms, endpoint, model_dir, tmp_path, spec):
    key = f"awskms:///{new_key(kms, spec)}"
    pub = tmp_path / "kms.pub"
    r = cli("key", "export", key, "-o", str(pub), *at(endpoint))
    assert r.returncode == 0, r.stderr
    # The exported key is KMS's own public key, not something merkle made up.
    from cryptography.hazmat.primitives import serialization

    der = kms.get_public_key(KeyId=key.rsplit("/", 1)[1])["PublicKey"]
    assert serialization.load_pem_public_key(pub.read_bytes()).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == bytes(der)
    out = tmp_path / "m.bundle.json"
    r = cli("build", str(model_dir), "--sign", key, "-o", str(out), "-q", *at(endpoint))
    assert r.returncode == 0, r.stderr
    assert cli("verify", str(model_dir), str(out), "--key", str(pub)).returncode == 0
    (model_dir / "config.json").write_text('{"hidden_size": 385}\n')
    assert cli("verify", str(model_dir), str(out), "--key", str(pub)).returncode == 1


def test_an_alias_and_an_arn_name_the_same_key(cli, kms, endpoint, model_dir, tmp_path):
    key_id = new_key(kms)
    kms.create_alias(AliasName="alias/merkle-release", TargetKeyId=key_id)
    arn = kms.describe_key(KeyId=key_id)["KeyMetadata"]["Arn"]
    pems = set()
    for name in ("awskms:///alias/merkle-release", f"awskms:///{arn}"):
        out = tmp_path / "pub"
        assert cli("key", "export", name, "-o", str(out), *at(endpoint)).returncode == 0
        pems.add(out.read_bytes())
    assert len(pems) == 1


def test_openssf_bundle_signed_by_kms_verifies_with_model_signing(cli, kms, endpoint, model_dir, tmp_path):
    key = f"awskms:///{new_key(kms)}"
    pub = tmp_path / "kms.pub"
    assert cli("key", "export", key, "-o", str(pub), *at(endpoint)).returncode == 0
    bundle = tmp_path / "oms.sig"
    r = cli("build", str(model_dir), "--sign", key, "--format", "oms", "-o", str(bundle), "-q", *at(endpoint))
    assert r.returncode == 0, r.stderr
    done = run_model_signing("verify", "key", "--signature", str(bundle), "--public_key", str(pub), str(model_dir))
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("disabled", "the key is disabled"),
        ("rsa", "key spec RSA_2048 is not allowed"),
        ("encrypt-only", "usage is ENCRYPT_DECRYPT, not SIGN_VERIFY"),
        ("missing", "no such key"),
        ("no-key-in-uri", "no key in the URI"),
        ("unknown-option", "unknown signer option 'colour'"),
    ],
)
def test_keys_kms_cannot_sign_with_are_one_line(cli, kms, endpoint, model_dir, tmp_path, case, needle):
    options = at(endpoint)
    if case == "disabled":
        key_id = new_key(kms)
        kms.disable_key(KeyId=key_id)
    elif case == "rsa":
        key_id = new_key(kms, "RSA_2048")
    elif case == "encrypt-only":
        key_id = new_key(kms, "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT")
    elif case == "missing":
        key_id = "00000000-0000-0000-0000-000000000000"
    elif case == "no-key-in-uri":
        key_id = ""
    else:
        key_id = new_key(kms)
        options += ["--signer-option", "colour=blue"]
    out = tmp_path / "out"
    out.mkdir()
    r = cli("build", str(model_dir), "--sign", f"awskms:///{key_id}", "-o", str(out / "b.json"), "-q", *options)
    assert r.returncode == 2, r.stderr
    assert_one_line_error(r, needle)
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("fault", ["500", "slow"])
def test_a_failing_endpoint_is_one_line_and_nothing_is_written(cli, kms, proxy, model_dir, tmp_path, fault):
    """Every KMS request through the proxy answers 500, or answers after the
    read timeout: botocore retries (max_attempts), then one line, exit 2."""
    key_id = new_key(kms)
    proxy.reset()
    proxy.add("500" if fault == "500" else "delay", lambda req: req.method == "POST", arg=3)
    out = tmp_path / "out"
    out.mkdir()
    options = [*at(proxy.url), "--signer-option", "max_attempts=2", "--signer-option", "read_timeout=1"]
    try:
        r = cli("build", str(model_dir), "--sign", f"awskms:///{key_id}", "-o", str(out / "b.json"), "-q", *options)
    finally:
        injected = proxy.injected("500" if fault == "500" else "delay")
        proxy.reset()
    assert injected >= 2  # retried, then given up
    assert r.returncode == 2, r.stderr
    assert_one_line_error(r, "AWS KMS failed")
    assert list(out.iterdir()) == []


def test_a_signature_that_does_not_verify_never_becomes_a_bundle(cli, kms, endpoint, tmp_path):
    """A payload over 4096 bytes goes to KMS as its digest (MessageType
    DIGEST), which real KMS signs as given; moto signs it as a message (it
    hashes the digest again).  The signature then does not verify with the
    key's public key: merkle says so in one line and writes nothing, as it
    would for any service or token that signed something else."""
    tree = tmp_path / "many"
    tree.mkdir()
    for i in range(60):
        (tree / f"shard-{i:03d}-of-060.safetensors").write_bytes(os.urandom(64))
    out = tmp_path / "out"
    out.mkdir()
    key = f"awskms:///{new_key(kms)}"
    r = cli("build", str(tree), "--sign", key, "-o", str(out / "b.json"), "-q", *at(endpoint))
    assert r.returncode == 1, r.stderr
    assert_one_line_error(r, "does not verify with its public key")
    assert list(out.iterdir()) == []


def test_signing_with_kms_writes_only_the_bundle(cli, kms, endpoint, model_dir, tmp_path):
    """Signing with KMS writes the bundle, its sidecar and the store's record;
    nothing else appears anywhere under the test's folder."""
    key = f"awskms:///{new_key(kms)}"
    before = {p for p in Path(tmp_path).rglob("*") if p.is_file()}
    r = cli("build", str(model_dir), "--sign", key, "-o", str(tmp_path / "b.json"), "-q", *at(endpoint))
    assert r.returncode == 0, r.stderr
    new = {str(p.relative_to(tmp_path)) for p in Path(tmp_path).rglob("*") if p.is_file()} - {
        str(p.relative_to(tmp_path)) for p in before
    }
    assert {n for n in new if not n.startswith("store/")} == {"b.json", "b.json.leaves"}
