"""Issue 14, second review: further instances of the classes of the issue, found by attacking the
merged fixes, each run as a user would (the real CLI, merkle.open / merkle.verify_signed); the zarr
store's findings are tests/zarr/test_review_i14.py.  Each test failed on the merged snapshot before its
fix (or is xfail, strict, with the reason the fix is left for later)."""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from support.cli import assert_one_line_error

from merkle.signing.keys import generate, write_keypair


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("review-keys")
    out = {}
    for name in ("alice", "bob"):
        write_keypair(str(d / name), generate())
        out[name] = d / name
    return out


def pub(key: Path) -> str:
    return f"{key}.pub"


def assert_error(r, code, *needles):
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    assert_one_line_error(r, *needles)


# -- class 7: rollback -----------------------------------------------------------------------------------


def test_an_openssf_bundle_does_not_roll_back_a_versioned_subject(cli, tmp_path, keys):
    """An OpenSSF statement carries no version: after version 3 of `model` from the same signer was
    verified, an older OpenSSF bundle of `model` (and its bytes) is an unversioned statement where
    versioned ones were seen (V6), refused like a merkle statement without --version."""
    m = tmp_path / "model"
    m.mkdir()
    (m / "w.bin").write_bytes(b"old weights")
    old = tmp_path / "old.sig"
    r = cli("build", str(m), "--format", "oms", "--sign", str(keys["alice"]), "-o", str(old), "-q")
    assert r.returncode == 0, r.stderr
    (m / "w.bin").write_bytes(b"new weights")
    v3 = tmp_path / "v3.json"
    r = cli("build", str(m), "--sign", str(keys["alice"]), "-o", str(v3), "--version", "3", "-q")
    assert r.returncode == 0, r.stderr
    assert cli("verify", str(m), str(v3), "--key", pub(keys["alice"]), "-q").returncode == 0
    (m / "w.bin").write_bytes(b"old weights")  # the attacker restores the old bytes, serves the old bundle
    assert_error(
        cli("verify", str(m), str(old), "--key", pub(keys["alice"]), "-q"),
        1,
        str(old),
        "rollback",
        "no version",
        "version 3",
    )
    # another signer's OpenSSF bundle of a model of the same name is not blocked
    other = tmp_path / "bob.sig"
    r = cli("build", str(m), "--format", "oms", "--sign", str(keys["bob"]), "-o", str(other), "-q")
    assert r.returncode == 0, r.stderr
    r = cli("verify", str(m), str(other), "--key", pub(keys["alice"]), "--key", pub(keys["bob"]), "-q")
    assert r.returncode == 0, r.stderr


# -- class 8: certificates -------------------------------------------------------------------------------


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(key, subject, issuer, issuer_key, *, ca, usage=None, email=None):
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer_key is not key:
        b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    if usage is not None:
        b = b.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
    if email:
        b = b.add_extension(x509.SubjectAlternativeName([x509.RFC822Name(email)]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def _pem(path: Path, cert: x509.Certificate) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


@pytest.mark.parametrize(
    "usage, ok", [([ExtendedKeyUsageOID.SERVER_AUTH], False), ([ExtendedKeyUsageOID.CODE_SIGNING], True), (None, True)]
)
def test_an_intermediate_for_another_purpose_cannot_issue_code_signing(cli, tmp_path, usage, ok):
    """A subordinate CA whose extended key usage limits it to TLS (serverAuth) is a CA certificate
    for another purpose: a code-signing leaf it issues is refused, as the Web PKI's EKU chaining
    does; an intermediate for code signing, or one without the extension, issues them."""
    root_key, mid_key, leaf_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    root = _pem(tmp_path / "root.pem", _cert(root_key, "root CA", "root CA", root_key, ca=True))
    mid = _pem(tmp_path / "mid.pem", _cert(mid_key, "sub CA", "root CA", root_key, ca=True, usage=usage))
    leaf = _pem(
        tmp_path / "leaf.pem",
        _cert(
            leaf_key,
            "releaser",
            "sub CA",
            mid_key,
            ca=False,
            usage=[ExtendedKeyUsageOID.CODE_SIGNING],
            email="release@example.com",
        ),
    )
    key = tmp_path / "leaf.key"
    key.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    m = tmp_path / "model"
    m.mkdir()
    (m / "w.bin").write_bytes(b"weights")
    b = tmp_path / "b.json"
    r = cli("build", str(m), "--sign", str(key), "--cert", str(leaf), "--cert-chain", str(mid), "-o", str(b), "-q")
    assert r.returncode == 0, r.stderr
    r = cli("verify", str(m), str(b), "--ca", str(root), "--cert-identity", "release@example.com", "-q")
    if ok:
        assert r.returncode == 0, r.stderr
    else:
        assert_error(r, 1, str(b), "code signing", "CN=sub CA")


# -- unauthenticated sidecars never decide a verdict ------------------------------------------------------


def test_a_planted_object_metadata_sidecar_does_not_fail_a_signed_verify(cli, tmp_path, keys):
    """BUNDLE.objects.json is unsigned (it serves only `audit --fast`, which says so): whoever can write
    beside the bundle must not turn a good tree's verdict into exit 2, as a damaged leaf sidecar does
    not (S3: ignored with a warning)."""
    m = tmp_path / "model"
    m.mkdir()
    (m / "w.bin").write_bytes(b"weights")
    b = tmp_path / "b.json"
    assert cli("build", str(m), "--sign", str(keys["alice"]), "-o", str(b), "-q").returncode == 0
    Path(f"{b}.objects.json").write_text("[]")
    r = cli("verify", str(m), str(b), "--key", pub(keys["alice"]), "-q")
    assert r.returncode == 0, r.stderr
    assert "objects.json" in r.stderr and "ignored" in r.stderr
    r = cli("verify", str(m), str(b), "--key", pub(keys["alice"]), "--file", "w.bin")
    assert r.returncode == 0, r.stderr


# -- class 11: every build output excluded inside the tree --------------------------------------------------


def test_an_openssf_build_through_a_linked_path_leaves_out_its_own_bundle(cli, tmp_path, keys):
    """`build LINK --format oms -o REAL/b.sig`, LINK naming REAL: the bundle lies inside the model,
    so it is in the statement's ignore_paths (as `-o` inside a plainly named PATH is); a rebuild
    signed the previous bundle as a resource and the new one never verified."""
    real = tmp_path / "real"
    real.mkdir()
    (real / "w.bin").write_bytes(b"weights")
    link = tmp_path / "link"
    link.symlink_to(real)
    out = real / "b.sig"
    for _ in range(2):  # the second build finds the first one's bundle inside the model
        r = cli("build", str(link), "--format", "oms", "--sign", str(keys["alice"]), "-o", str(out), "-q")
        assert r.returncode == 0, r.stderr
    r = cli("verify", str(link), str(out), "--key", pub(keys["alice"]))
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "b.sig" not in r.stdout


# -- class 3: a listed path behind a refused link is an error in every mode -----------------------------------


@pytest.mark.parametrize("what", ["link", "fifo"])
def test_an_openssf_resource_behind_a_refused_link_is_an_error_not_missing(cli, tmp_path, keys, what):
    """`merkle verify` of an OpenSSF bundle said `- sub/b.bin` (missing) when `sub` had been swapped
    for a link to another folder (or a FIFO): what is there is unknown, so it is `!` naming why, as
    for merkle bundles in every mode (docs/cli.md)."""
    m = tmp_path / "m"
    (m / "sub").mkdir(parents=True)
    (m / "a").write_bytes(b"a")
    (m / "sub" / "b.bin").write_bytes(b"b")
    b = tmp_path / "b.sig"
    r = cli("build", str(m), "--format", "oms", "--sign", str(keys["alice"]), "-o", str(b), "-q")
    assert r.returncode == 0, r.stderr
    other = tmp_path / "other"
    other.mkdir()
    (other / "b.bin").write_bytes(b"other bytes")
    (m / "sub" / "b.bin").unlink()
    (m / "sub").rmdir()
    if what == "link":
        (m / "sub").symlink_to(other)
    else:
        os.mkfifo(m / "sub")
    r = cli("verify", str(m), str(b), "--key", pub(keys["alice"]))
    assert r.returncode != 0
    reason = "symbolic link refused" if what == "link" else "a FIFO"
    assert f"! sub/b.bin  (sub: {reason}" in r.stdout, r.stdout
    assert "- sub/b.bin" not in r.stdout


# -- parsers: a hostile bundle is a one-line signature failure, never an internal error ------------------------


@pytest.mark.parametrize(
    "usage, days", [(None, 1), ([ExtendedKeyUsageOID.CODE_SIGNING], -5), ([ExtendedKeyUsageOID.CODE_SIGNING], 1)]
)
def test_a_certificate_with_a_malformed_name_is_a_signature_failure(cli, tmp_path, keys, usage, days):
    """A forged bundle whose certificate's subject is not valid UTF-8 (an UTF8String of bytes 0xff...)
    made `verify` print `internal error: ValueError` (exit 2): names are parsed lazily, and the checks
    quoted them in their messages.  Exit 1, one line naming the bundle."""
    import base64
    import json

    m = tmp_path / "model"
    m.mkdir()
    (m / "w.bin").write_bytes(b"weights")
    good = tmp_path / "good.json"
    assert cli("build", str(m), "--sign", str(keys["alice"]), "-o", str(good), "-q").returncode == 0
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (
        x509.CertificateBuilder()
        .subject_name(_name("QQQQ"))
        .issuer_name(_name("QQQQ"))
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=10))
        .not_valid_after(now + datetime.timedelta(days=days))
    )
    if usage:
        b = b.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
    der = b.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
    der = der.replace(b"\x0c\x04QQQQ", b"\x0c\x04\xff\xfe\xfd\xfc")  # UTF8String that is not UTF-8
    doc = json.loads(good.read_text())
    raw = base64.b64encode(der).decode()
    doc["verificationMaterial"] = {"x509CertificateChain": {"certificates": [{"rawBytes": raw}]}, "tlogEntries": []}
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(doc))
    ca = _pem(tmp_path / "ca.pem", _cert(key, "some CA", "some CA", key, ca=True))
    assert_error(cli("verify", str(m), str(forged), "--ca", str(ca)), 1, str(forged), "certificate")


# -- class 7: a signer is told, not its verifiers ---------------------------------------------------------------


def test_re_signing_a_version_with_other_bytes_is_refused_when_signing(cli, tmp_path, keys):
    """`build --sign --version 1` after an edit, with the version not bumped: signing succeeded and
    wrote a bundle that every machine which saw the first version 1 (the signer's own included)
    refuses forever ('version 1 ... verified before with another root').  The signer's store knows:
    signing says so (exit 1, nothing written); with the version bumped it signs."""
    m = tmp_path / "model"
    m.mkdir()
    (m / "w.bin").write_bytes(b"first")
    first = tmp_path / "v1.json"
    assert cli("build", str(m), "--sign", str(keys["alice"]), "-o", str(first), "--version", "1", "-q").returncode == 0
    (m / "w.bin").write_bytes(b"second")
    again = tmp_path / "v1-again.json"
    r = cli("build", str(m), "--sign", str(keys["alice"]), "-o", str(again), "--version", "1", "-q")
    assert_error(r, 1, "version 1", "another root")
    assert not again.exists() and not Path(f"{again}.leaves").exists()
    r = cli("build", str(m), "--sign", str(keys["alice"]), "-o", str(again), "--version", "2", "-q")
    assert r.returncode == 0, r.stderr
    assert cli("verify", str(m), str(again), "--key", pub(keys["alice"]), "-q").returncode == 0
    # the same bytes signed again at the same version (a compact twin, a re-run) are fine
    twin = tmp_path / "v2c.json"
    r = cli("build", str(m), "--sign", str(keys["alice"]), "-o", str(twin), "--version", "2", "--compact", "-q")
    assert r.returncode == 0, r.stderr


def _leaf(key, subject, issuer_key, *, email, uri=None):
    now = datetime.datetime.now(datetime.timezone.utc)
    sans = [x509.RFC822Name(email)] + ([x509.UniformResourceIdentifier(uri)] if uri else [])
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name("release CA"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )


def test_a_pinned_identity_keeps_its_rollback_records_across_certificates(cli, tmp_path):
    """Records were keyed by the whole certificate identity (issuer, subject and every alternative
    name): version 2, signed under a reissued certificate whose subject or names changed, left
    version 1 of the same pinned identity (release@example.com) replayable.  With --cert-identity
    the records are the pinned identity's, whatever else the certificate says."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _pem(tmp_path / "ca.pem", _cert(ca_key, "release CA", "release CA", ca_key, ca=True))
    key = ec.generate_private_key(ec.SECP256R1())
    keyfile = tmp_path / "leaf.key"
    keyfile.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    old = _pem(tmp_path / "old.pem", _leaf(key, "releaser", ca_key, email="release@example.com"))
    new = _pem(
        tmp_path / "new.pem",
        _leaf(key, "release team", ca_key, email="release@example.com", uri="https://example.com/release"),
    )
    m = tmp_path / "model"
    m.mkdir()
    (m / "w.bin").write_bytes(b"version one")
    v1 = tmp_path / "v1.json"
    r = cli(
        "build", str(m), "--sign", str(keyfile), "--cert", str(old), "-o", str(v1), "--version", "1", "-q", "--no-store"
    )
    assert r.returncode == 0, r.stderr
    (m / "w.bin").write_bytes(b"version two")
    v2 = tmp_path / "v2.json"
    r = cli(
        "build", str(m), "--sign", str(keyfile), "--cert", str(new), "-o", str(v2), "--version", "2", "-q", "--no-store"
    )
    assert r.returncode == 0, r.stderr
    pinned = ("--ca", str(ca), "--cert-identity", "release@example.com", "-q")
    assert cli("verify", str(m), str(v2), *pinned).returncode == 0
    (m / "w.bin").write_bytes(b"version one")  # the old bytes and the old bundle, replayed
    assert_error(cli("verify", str(m), str(v1), *pinned), 1, str(v1), "rollback", "version 1", "version 2")


# -- class 11: untrusted text printed escaped ---------------------------------------------------------------


def test_check_lines_cannot_move_the_cursor(cli, tmp_path):
    """A sums file is unauthenticated.  b3sum's escaping (backslash and newline) left other control
    characters raw in `--check` lines: a listed name `x ESC[1A CR ESC[2K bad.bin` moved the cursor up
    over `bad.bin: FAILED`, erased it and wrote `bad.bin: OK` in its place on the terminal."""
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"good")
    forger = tmp_path / "x\x1b[1A\r\x1b[2Kbad.bin"
    forger.write_bytes(b"z")
    sums = tmp_path / "SUMS"
    with open(sums, "wb") as out:
        subprocess.run([sys.executable, "-m", "merkle", "hash", str(bad), str(forger)], stdout=out, check=True)
    bad.write_bytes(b"tampered")
    r = subprocess.run([sys.executable, "-m", "merkle", "hash", "--check", str(sums)], capture_output=True)
    assert r.returncode == 1
    assert b"\x1b" not in r.stdout and b"\r" not in r.stdout, r.stdout
    lines = r.stdout.decode().splitlines()
    assert lines[0] == f"{bad}: FAILED" and lines[1].endswith("\\x1b[2Kbad.bin: OK"), lines


# -- class 10: compare the size before reading ------------------------------------------------------------------


def test_a_file_proof_compares_the_size_before_hashing(cli, tmp_path, keys):
    """`verify FILE BUNDLE --proof P` hashed the whole file before comparing its size with the signed
    one: a file grown to 1 TiB (sparse here) was read to the end, for minutes, before `* size`."""
    m = tmp_path / "model"
    m.mkdir()
    (m / "w.bin").write_bytes(b"weights" * 1000)
    b = tmp_path / "b.json"
    assert cli("build", str(m), "--sign", str(keys["alice"]), "-o", str(b), "-q").returncode == 0
    proof = tmp_path / "w.proof"
    assert cli("prove", str(b), "w.bin", "-o", str(proof), "--key", pub(keys["alice"])).returncode == 0
    with open(m / "w.bin", "r+b") as f:
        f.truncate(1 << 40)
    try:
        r = cli("verify", str(m / "w.bin"), str(b), "--proof", str(proof), "--key", pub(keys["alice"]), timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("the grown file was hashed before its size was compared")
    assert r.returncode == 1
    assert f"* w.bin  (size {1 << 40}, signed 7000)" in r.stdout, r.stdout
