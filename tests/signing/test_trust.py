"""Issue 14 items 6-9: one trust path for every entry point (merkle.signing.trust +
merkle.verifying.signed.open_signed), rollback records keyed by signer and subject,
certificates for code signing with pinned identities, co-signing only what
verified.  Each test reproduces an attack or a false failure of the review."""

from __future__ import annotations

import base64
import datetime
import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from support.cli import assert_one_line_error

import merkle
from merkle.errors import FormatError, PolicyError, SignatureError
from merkle.signing import statements
from merkle.signing.keys import generate, key_id, load_private_key, load_public_key, write_keypair

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("trust-keys")
    out = {}
    for name in ("alice", "bob", "mallory"):
        write_keypair(str(d / name), generate())
        out[name] = d / name
    return out


def pub(key: Path) -> str:
    return f"{key}.pub"


def model(root: Path, name: str = "model", text: str = "weights") -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "weights.bin").write_bytes(text.encode() * 5000)
    (d / "config.json").write_text('{"a": 1}\n')
    return d


def sign(cli, tree: Path, key: Path, out: Path, *extra: str) -> Path:
    r = cli("build", str(tree), "--sign", str(key), "-o", str(out), "-q", *extra)
    assert r.returncode == 0, r.stderr
    return out


def verify(cli, tree: Path, bundle: Path, *keys: Path, extra: tuple[str, ...] = ()):
    return cli("verify", str(tree), str(bundle), *[a for k in keys for a in ("--key", pub(k))], "-q", *extra)


def assert_error(r, code, *needles):
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    assert_one_line_error(r, *needles)


# -- 7. rollback records: by signer and subject; none without an explicit version -------------------


def test_two_models_in_folders_named_alike_both_verify(cli, tmp_path, keys):
    """Default options, one signer, two unrelated models both called `model`."""
    a = model(tmp_path / "team-a", text="first")
    b = model(tmp_path / "team-b", text="second")
    ba = sign(cli, a, keys["alice"], tmp_path / "a.json")
    bb = sign(cli, b, keys["alice"], tmp_path / "b.json")
    for _ in range(2):
        assert verify(cli, a, ba, keys["alice"]).returncode == 0
        assert verify(cli, b, bb, keys["alice"]).returncode == 0


def test_a_model_re_signed_after_an_edit_verifies(cli, tmp_path, keys):
    m = model(tmp_path)
    first = sign(cli, m, keys["alice"], tmp_path / "1.json")
    assert verify(cli, m, first, keys["alice"]).returncode == 0
    (m / "config.json").write_text('{"a": 2}\n')
    second = sign(cli, m, keys["alice"], tmp_path / "2.json")
    r = verify(cli, m, second, keys["alice"])
    assert r.returncode == 0, r.stderr
    assert verify(cli, m, first, keys["alice"]).returncode == 1  # the old bundle no longer matches the bytes


def test_an_explicit_rollback_is_still_refused(cli, tmp_path, keys):
    m = model(tmp_path)
    v1 = sign(cli, m, keys["alice"], tmp_path / "v1.json", "--version", "1")
    (m / "config.json").write_text('{"a": 2}\n')
    v2 = sign(cli, m, keys["alice"], tmp_path / "v2.json", "--version", "2")
    assert verify(cli, m, v2, keys["alice"]).returncode == 0
    (m / "config.json").write_text('{"a": 1}\n')  # the attacker restores the old bytes and serves the old bundle
    assert_error(verify(cli, m, v1, keys["alice"]), 1, str(v1), "rollback", "version 1", "'model'")


def test_an_unversioned_statement_after_versioned_ones_is_refused(cli, tmp_path, keys):
    m = model(tmp_path)
    old = sign(cli, m, keys["alice"], tmp_path / "old.json")  # before the publisher used versions
    v3 = sign(cli, m, keys["alice"], tmp_path / "v3.json", "--version", "3")
    assert verify(cli, m, v3, keys["alice"]).returncode == 0
    assert_error(verify(cli, m, old, keys["alice"]), 1, str(old), "no version", "version 3")


def test_another_signers_version_does_not_block_an_unrelated_publisher(cli, tmp_path, keys):
    """Both keys trusted; alice's `d` at version 5 says nothing about bob's `d`."""
    a = model(tmp_path / "a", "d", "alice's")
    b = model(tmp_path / "b", "d", "bob's")
    a5 = sign(cli, a, keys["alice"], tmp_path / "a5.json", "--version", "5")
    b2 = sign(cli, b, keys["bob"], tmp_path / "b2.json", "--version", "2")
    assert verify(cli, a, a5, keys["alice"], keys["bob"]).returncode == 0
    r = verify(cli, b, b2, keys["alice"], keys["bob"])
    assert r.returncode == 0, r.stderr
    b1 = sign(cli, b, keys["bob"], tmp_path / "b1.json", "--version", "1")
    assert_error(verify(cli, b, b1, keys["alice"], keys["bob"]), 1, "rollback", "version 2")


def test_a_malformed_store_index_is_one_line_naming_it(cli, tmp_path, keys, private_store):
    m = model(tmp_path)
    b = sign(cli, m, keys["alice"], tmp_path / "b.json", "--version", "1")
    index = private_store / "index.json"
    for bad in (
        '{"format": 2, "bundles": [], "versions": {}}',
        '{"format": 2, "bundles": {}, "versions": {"key:x": {"model": {"version": "1", "root": "ab"}}}}',
        '{"bundles": {"x": 1}, "highest": {}}',
        "[]",
        '{"format": 3, "bundles": {}, "versions": {}}',
    ):
        index.write_text(bad)
        r = verify(cli, m, b, keys["alice"])
        assert_error(r, 2, str(index))


def test_a_store_index_of_format_1_keeps_its_bundles_and_drops_name_keyed_records(cli, tmp_path, keys, private_store):
    m = model(tmp_path)
    b = sign(cli, m, keys["alice"], tmp_path / "b.json", "--version", "1", "--no-store")
    private_store.mkdir(parents=True)
    record = {"name": "model", "root": "00" * 32, "version": 7, "kind": "merkle", "signers": ["x"]}
    (private_store / "index.json").write_text(
        json.dumps({"bundles": {"ab" * 32: record}, "highest": {"model": {"version": 7, "root": "00" * 32}}})
    )
    r = verify(cli, m, b, keys["alice"])
    assert r.returncode == 0, r.stderr  # version 7 of *some* `model` no longer blocks this one
    names = [e["name"] for e in json.loads(cli("store", "list", "--json").stdout)]
    assert names == ["model", "model"]


def test_concurrent_verifications_keep_the_store_whole(tmp_path, keys, private_store):
    trees, bundles = [], []
    for i in range(6):
        t = model(tmp_path / f"m{i}", text=f"model {i}")
        trees.append(t)
        bundles.append(
            sign(
                merkle_cli,
                t,
                keys["alice"],
                tmp_path / f"b{i}.json",
                "--version",
                str(i + 1),
                "--name",
                f"n{i}",
                "--no-store",
            )
        )
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "merkle", "verify", str(t), str(b), "--key", pub(keys["alice"]), "-q"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for t, b in zip(trees, bundles, strict=True)
        for _ in range(2)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0] * len(procs)
    doc = json.loads((private_store / "index.json").read_text())
    assert len(doc["bundles"]) == 6
    ((identity, names),) = doc["versions"].items()
    assert identity.startswith("key:")
    assert {n: r["version"] for n, r in names.items()} == {f"n{i}": i + 1 for i in range(6)}


def merkle_cli(*args: str):
    return subprocess.run([sys.executable, "-m", "merkle", *args], capture_output=True, text=True, timeout=120)


# -- 6. one trust path: rollback is refused through every entry point ---------------------------------


@pytest.fixture
def rolled_back(cli, tmp_path, keys):
    """v2 verified on this machine; the tree restored to v1's bytes; v1's bundle (a full and a compact one)."""
    m = model(tmp_path)
    v1 = sign(cli, m, keys["alice"], tmp_path / "v1.json", "--version", "1")
    v1c = sign(cli, m, keys["alice"], tmp_path / "v1c.json", "--version", "1", "--compact")
    (m / "config.json").write_text('{"a": 2}\n')
    v2 = sign(cli, m, keys["alice"], tmp_path / "v2.json", "--version", "2")
    assert verify(cli, m, v2, keys["alice"]).returncode == 0
    (m / "config.json").write_text('{"a": 1}\n')
    return m, v1, v1c


@pytest.mark.parametrize("which", ["full", "compact"])
def test_rollback_is_refused_by_every_cli_entry_point(cli, tmp_path, keys, rolled_back, which):
    m, v1, v1c = rolled_back
    bundle = v1 if which == "full" else v1c
    key = ("--key", pub(keys["alice"]))
    proof = tmp_path / "config.proof"
    r = cli("prove", str(v1), "config.json", "-o", str(proof), *key)
    assert_error(r, 1, "rollback")
    assert not proof.exists()
    assert cli("prove", str(v1), "config.json", "-o", str(proof), *key, "--no-store").returncode == 0
    runs = {
        "verify": cli("verify", str(m), str(bundle), *key),
        "verify --file": cli("verify", str(m), str(bundle), "--file", "config.json", *key),
        "verify --proof": cli("verify", str(m / "config.json"), str(bundle), "--proof", str(proof), *key),
        "audit": cli("audit", str(m), str(bundle), *key),
        "prove": cli("prove", str(bundle), "config.json", *key),
    }
    for what, r in runs.items():
        assert r.returncode == 1, (what, r.stderr)
        assert_one_line_error(r, "rollback")
    ok = cli("verify", str(m / "config.json"), str(bundle), "--proof", str(proof), *key, "--no-store")
    assert ok.returncode == 0, ok.stderr


@pytest.mark.parametrize("which", ["full", "compact"])
def test_rollback_is_refused_by_merkle_open(tmp_path, keys, rolled_back, which):
    m, v1, v1c = rolled_back
    bundle = v1 if which == "full" else v1c
    with pytest.raises(PolicyError, match="rollback"):
        merkle.open(m / "weights.bin", bundle, name="weights.bin", keys=[pub(keys["alice"])])
    with merkle.open(
        m / "weights.bin", bundle, name="weights.bin", keys=[pub(keys["alice"])], attestations=False
    ) as f:  # compact bundles work too, with BUNDLE.manifest beside
        assert f.read() == b"weights" * 5000


def test_rollback_is_refused_by_verify_signed(keys, rolled_back):
    m, v1, _ = rolled_back
    with pytest.raises(PolicyError, match="rollback"):
        merkle.verify_signed(m, [v1], keys=[pub(keys["alice"])])
    verified, report = merkle.verify_signed(m, [v1], keys=[pub(keys["alice"])], attestations=False)
    assert report and verified.version == 1


def test_rollback_is_refused_by_the_zarr_store(cli, tmp_path, keys):
    zarr = pytest.importorskip("zarr")  # a test extra: CI runs this
    import numpy as np

    from merkle.zarr import VerifiedStore

    path = tmp_path / "data.zarr"
    arr = zarr.create_array(str(path), shape=(8,), chunks=(4,), dtype="i4")
    arr[:] = np.arange(8)
    v1 = sign(cli, path, keys["alice"], tmp_path / "v1.json", "--version", "1", "--name", "data")
    v2 = sign(cli, path, keys["alice"], tmp_path / "v2.json", "--version", "2", "--name", "data")
    assert cli("verify", str(path), str(v2), "--key", pub(keys["alice"])).returncode == 0
    with pytest.raises(PolicyError, match="rollback"):
        VerifiedStore(str(path), v1, keys=[pub(keys["alice"])])
    assert VerifiedStore(str(path), v2, keys=[pub(keys["alice"])]).manifest.root


def test_library_sign_then_verify_signed(tmp_path, keys):
    m = model(tmp_path)
    manifest = merkle.build(m)
    out = tmp_path / "lib.json"
    signed = merkle.sign(manifest, keys["bob"], out, name="lib-model", version=4, attestations=False)
    assert signed.name == "lib-model" and out.exists() and Path(f"{out}.leaves").exists()
    policy = merkle.policy_from_files([pub(keys["bob"])])
    verified, report = merkle.verify_signed(m, [out], policy=policy, attestations=tmp_path / "store")
    assert report and verified.version == 4 and verified.signers[0].key_id == key_id(load_public_key(pub(keys["bob"])))
    with pytest.raises(SignatureError):
        merkle.verify_signed(m, [out], keys=[pub(keys["alice"])], attestations=False)


def test_one_module_makes_the_trust_decisions():
    """The places that check signatures, expiry and rollback are merkle.signing.trust's; entry points go
    through merkle.verifying.signed.open_signed (a reader of the code finds the one place)."""
    callers = {}
    for path in (ROOT / "merkle").rglob("*.py"):
        text = path.read_text()
        for needle in ("trust.decide(", ".check(bundle", "history.check(", "interpret("):
            if needle in text:
                callers.setdefault(needle, set()).add(path.relative_to(ROOT).as_posix())
    assert callers["trust.decide("] <= {"merkle/verifying/signed.py", "merkle/signing/writing.py", "merkle/cli/demo.py"}
    assert callers[".check(bundle"] == {"merkle/signing/trust.py"}
    assert callers["history.check("] == {"merkle/signing/trust.py"}
    assert callers["interpret("] == {"merkle/signing/trust.py", "merkle/signing/statements.py"}


# -- 8. certificates: code signing, pinned identity and issuer -------------------------------------------


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("trust-pki")
    now = datetime.datetime.now(datetime.timezone.utc)
    root_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())

    def cert(key, subject, *, ca, usage=None, email=None):
        b = (
            x509.CertificateBuilder()
            .subject_name(_name(subject))
            .issuer_name(_name("release CA"))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if usage is not None:
            b = b.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        if email:
            b = b.add_extension(x509.SubjectAlternativeName([x509.RFC822Name(email)]), critical=False)
        return b.sign(root_key, hashes.SHA256())

    files = {
        "root": cert(root_key, "release CA", ca=True),
        "codesign": cert(
            leaf_key, "releaser", ca=False, usage=[ExtendedKeyUsageOID.CODE_SIGNING], email="release@example.com"
        ),
        "tls": cert(leaf_key, "www", ca=False, usage=[ExtendedKeyUsageOID.SERVER_AUTH]),
        "none": cert(leaf_key, "no usage", ca=False),
    }
    out = {}
    for name, c in files.items():
        out[name] = d / f"{name}.pem"
        out[name].write_bytes(c.public_bytes(serialization.Encoding.PEM))
    out["key"] = d / "leaf.key"
    out["key"].write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return out


def _cert_signed(cli, tmp_path, tree, pki, which):
    b = tmp_path / f"{which}.json"
    r = cli("build", str(tree), "--sign", str(pki["key"]), "--cert", str(pki[which]), "-o", str(b), "-q")
    assert r.returncode == 0, r.stderr
    return b


@pytest.mark.parametrize(
    "which, needle",
    [("tls", "not for code signing (serverAuth)"), ("none", "not for code signing (no extended key usage)")],
)
def test_a_certificate_for_another_purpose_is_refused(cli, tmp_path, pki, which, needle):
    m = model(tmp_path)
    b = _cert_signed(cli, tmp_path, m, pki, which)
    assert_error(cli("verify", str(m), str(b), "--ca", str(pki["root"])), 1, str(b), needle)


def test_certificate_identity_and_issuer_are_pinned(cli, tmp_path, pki):
    m = model(tmp_path)
    b = _cert_signed(cli, tmp_path, m, pki, "codesign")
    ca = ("--ca", str(pki["root"]))
    assert cli("verify", str(m), str(b), *ca).returncode == 0
    ok = cli("verify", str(m), str(b), *ca, "--cert-identity", "release@example.com", "--cert-issuer", "CN=release CA")
    assert ok.returncode == 0, ok.stderr
    assert cli("verify", str(m), str(b), *ca, "--cert-identity", "CN=releaser").returncode == 0
    assert_error(
        cli("verify", str(m), str(b), *ca, "--cert-identity", "attacker@example.com"),
        1,
        "identity is not a trusted one",
        "release@example.com",
    )
    assert_error(cli("verify", str(m), str(b), *ca, "--cert-issuer", "CN=other CA"), 1, "issuer is not a trusted one")
    assert_error(cli("verify", str(m), str(b), "--key", str(pki["key"]) + ".nope", "--cert-identity", "x"), 2)


# -- 9. co-signing only what verified -------------------------------------------------------------------------


def test_co_signing_a_forged_bundle_is_refused(cli, tmp_path, keys):
    m = model(tmp_path)
    good = sign(cli, m, keys["alice"], tmp_path / "good.json")
    doc = json.loads(good.read_text())
    stmt = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))
    stmt["predicate"]["version"] = 999
    doc["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(stmt).encode()).decode()  # signature now garbage
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(doc))
    out = tmp_path / "co.json"
    r = cli("sign", str(forged), "--key", str(keys["bob"]), "-o", str(out), "--verify-key", pub(keys["alice"]))
    assert_error(r, 1, str(forged), "signature")
    assert not out.exists()
    r = cli("sign", str(forged), "--key", str(keys["bob"]), "-o", str(out))
    assert_error(r, 2, "--verify-key")
    assert not out.exists()
    r = cli("sign", str(good), "--key", str(keys["bob"]), "-o", str(out), "--verify-key", pub(keys["alice"]))
    assert r.returncode == 0, r.stderr
    assert "signature ok: 'model' no version" in r.stderr and "co-signing it" in r.stderr
    both = cli(
        "verify",
        str(m),
        str(good),
        str(out),
        "--key",
        pub(keys["alice"]),
        "--key",
        pub(keys["bob"]),
        "--threshold",
        "2",
    )
    assert both.returncode == 0, both.stderr


def test_a_statement_signed_without_a_version_carries_none():
    """`version` is optional in the predicate; when present it is a positive integer (not null)."""
    assert "version" not in statements.statement(_tiny(), "x").predicate
    assert statements.statement(_tiny(), "x", version=3).predicate["version"] == 3


def _tiny() -> merkle.Manifest:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        Path(d, "f").write_bytes(b"x")
        return merkle.build(d)


def test_a_null_version_is_refused(tmp_path, keys):
    stmt = statements.statement(_tiny(), "x")
    stmt.predicate["version"] = None
    bundle = statements.sign_statement(stmt, load_private_key(str(keys["alice"])))
    from merkle.signing import trust

    policy = trust.TrustPolicy(keys=(load_public_key(pub(keys["alice"])),))
    with pytest.raises(FormatError, match="version"):
        trust.decide([(bundle, "b.json")], policy)
