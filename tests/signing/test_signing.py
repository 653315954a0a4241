"""Signed manifests (issue 3): keys, DSSE/Sigstore bundles, trust rules, the
attestation store.  Real keys, real files, the real `merkle` program; bundles
are only built by hand (with merkle.signing.statements.sign_payload, so the signature is
valid) where a hostile but validly signed statement is the point."""

import base64
import copy
import datetime
import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from support.cli import assert_one_line_error, run_cli, statuses

import merkle
from merkle.errors import BundleError
from merkle.signing import documents, envelope, statements

PASS_ENV = "MERKLE_KEY_PASSPHRASE"
MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
PAYLOAD_TYPE = "application/vnd.in-toto+json"


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """Three ECDSA P-256 key pairs written by the real `merkle keygen`."""
    d = tmp_path_factory.mktemp("keys")
    out = {}
    for name in ("k1", "k2", "k3"):
        r = run_cli("keygen", "-o", str(d / name))
        assert r.returncode == 0, r.stderr
        out[name] = d / name
    return out


def pub(key: Path) -> str:
    return str(key) + ".pub"


def run_no_tty(*args, env_extra=None, timeout=20):
    """The real `merkle` with stdin not a terminal (and no inherited tty)."""
    env = dict(os.environ)
    env.pop(PASS_ENV, None)
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "merkle", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def assert_error(r, code, *needles):
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    assert_one_line_error(r, *needles)


def load_priv(path: Path, passphrase: bytes | None = None):
    return serialization.load_pem_private_key(path.read_bytes(), passphrase)


def read_doc(path: Path) -> dict:
    return json.loads(path.read_bytes())


def payload_of(doc: dict) -> bytes:
    return base64.b64decode(doc["dsseEnvelope"]["payload"])


def statement_of(path: Path) -> dict:
    return json.loads(payload_of(read_doc(path)))


def write_doc(path: Path, doc: dict) -> Path:
    path.write_text(json.dumps(doc))
    return path


def sign_raw(payload: bytes, key: Path, out: Path) -> Path:
    """A correctly signed bundle over exactly `payload` (however hostile)."""
    bundle = statements.sign_payload(payload, load_priv(key))
    out.write_bytes(bundle.to_json())
    return out


def signed_bundle(cli, model_dir, key, out, *extra):
    r = cli("build", str(model_dir), "--sign", str(key), "-o", str(out), *extra)
    assert r.returncode == 0, r.stderr
    return out


def flip_byte(path: Path, offset: int = 0) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


# -- DSSE ------------------------------------------------------------------------


def test_pae_matches_the_dsse_spec_vector():
    assert envelope.pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_pae_counts_bytes_not_characters():
    assert envelope.pae("t", "é".encode()) == b"DSSEv1 1 t 2 \xc3\xa9"


# -- keygen -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind, check",
    [
        (None, lambda k: isinstance(k, ec.EllipticCurvePrivateKey) and k.curve.name == "secp256r1"),
        ("ecdsa-p256", lambda k: isinstance(k, ec.EllipticCurvePrivateKey) and k.curve.name == "secp256r1"),
        ("ecdsa-p384", lambda k: isinstance(k, ec.EllipticCurvePrivateKey) and k.curve.name == "secp384r1"),
        ("ed25519", lambda k: isinstance(k, ed25519.Ed25519PrivateKey)),
    ],
)
def test_keygen_writes_a_pem_key_pair(cli, tmp_path, kind, check):
    key = tmp_path / "release.key"
    r = cli("keygen", "-o", str(key), *(["--type", kind] if kind else []))
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    private = load_priv(key)
    assert check(private)
    public = serialization.load_pem_public_key(Path(pub(key)).read_bytes())
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert public.public_bytes(*spki) == private.public_key().public_bytes(*spki)
    assert b"PRIVATE" not in Path(pub(key)).read_bytes()


def test_keygen_key_signs_and_verifies_each_type(cli, tmp_path, model_dir):
    for kind in ("ecdsa-p384", "ed25519"):
        key = tmp_path / kind
        assert cli("keygen", "-o", str(key), "--type", kind).returncode == 0
        b = signed_bundle(cli, model_dir, key, tmp_path / f"{kind}.json")
        r = cli("verify", str(model_dir), str(b), "--key", pub(key))
        assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("existing", ["key", "pub"])
def test_keygen_never_overwrites(cli, tmp_path, existing):
    key = tmp_path / "k"
    target = key if existing == "key" else Path(pub(key))
    target.write_text("precious\n")
    r = cli("keygen", "-o", str(key))
    assert_error(r, 2, str(target), "not overwriting")
    assert target.read_text() == "precious\n"
    other = Path(pub(key)) if existing == "key" else key
    assert not other.exists()


def test_keygen_twice_keeps_the_first_key(cli, tmp_path):
    key = tmp_path / "k"
    assert cli("keygen", "-o", str(key)).returncode == 0
    before = key.read_bytes(), Path(pub(key)).read_bytes()
    assert_error(cli("keygen", "-o", str(key)), 2, "not overwriting")
    assert (key.read_bytes(), Path(pub(key)).read_bytes()) == before


def test_encrypted_key_signs_with_the_passphrase_from_the_environment(tmp_path, model_dir):
    key = tmp_path / "enc"
    env = {PASS_ENV: "correct horse"}
    r = run_no_tty("keygen", "-o", str(key), "--encrypt", env_extra=env)
    assert r.returncode == 0, r.stderr
    assert key.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    with pytest.raises((TypeError, ValueError)):
        load_priv(key)
    assert isinstance(load_priv(key, b"correct horse"), ec.EllipticCurvePrivateKey)
    b = tmp_path / "b.json"
    r = run_no_tty("build", str(model_dir), "--sign", str(key), "-o", str(b), env_extra=env)
    assert r.returncode == 0, r.stderr
    r = run_no_tty("verify", str(model_dir), str(b), "--key", pub(key))
    assert r.returncode == 0, r.stderr


def test_wrong_passphrase_is_a_one_line_error(tmp_path, model_dir):
    key = tmp_path / "enc"
    assert run_no_tty("keygen", "-o", str(key), "--encrypt", env_extra={PASS_ENV: "right"}).returncode == 0
    b = tmp_path / "b.json"
    r = run_no_tty("build", str(model_dir), "--sign", str(key), "-o", str(b), env_extra={PASS_ENV: "wrong"})
    assert_error(r, 2, str(key), "passphrase")
    assert not b.exists()


def test_keygen_encrypt_without_passphrase_or_terminal_fails_fast(tmp_path):
    key = tmp_path / "enc"
    r = run_no_tty("keygen", "-o", str(key), "--encrypt", timeout=20)
    assert_error(r, 2, PASS_ENV)
    assert not key.exists() and not Path(pub(key)).exists()


def test_encrypted_key_without_passphrase_or_terminal_fails_fast(tmp_path, model_dir):
    key = tmp_path / "enc"
    assert run_no_tty("keygen", "-o", str(key), "--encrypt", env_extra={PASS_ENV: "pw"}).returncode == 0
    b = tmp_path / "b.json"
    r = run_no_tty("build", str(model_dir), "--sign", str(key), "-o", str(b), timeout=20)
    assert_error(r, 2, str(key), "encrypted", PASS_ENV)
    assert not b.exists()
    m = tmp_path / "m.json"
    merkle.build(model_dir).save(m)
    r = run_no_tty("sign", str(m), "--key", str(key), "-o", str(b), timeout=20)
    assert_error(r, 2, str(key), "encrypted", PASS_ENV)
    assert not b.exists()


def test_encrypted_traditional_openssl_key_takes_the_passphrase(tmp_path, model_dir):
    """An encrypted key from `openssl ec -aes256` (PEM with Proc-Type:
    4,ENCRYPTED, not PKCS#8) is an encrypted key too: the passphrase from
    the environment must unlock it."""
    key = tmp_path / "legacy.key"
    private = ec.generate_private_key(ec.SECP256R1())
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.BestAvailableEncryption(b"pw"),
        )
    )
    Path(pub(key)).write_bytes(
        private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    b = tmp_path / "b.json"
    r = run_no_tty("build", str(model_dir), "--sign", str(key), "-o", str(b), env_extra={PASS_ENV: "pw"})
    assert r.returncode == 0, r.stderr
    assert run_no_tty("verify", str(model_dir), str(b), "--key", pub(key)).returncode == 0


# -- acceptance -----------------------------------------------------------------------


def test_acceptance_keygen_build_sign_verify(cli, tmp_path, model_dir, keys):
    key = tmp_path / "key"
    assert cli("keygen", "-o", str(key)).returncode == 0
    b = signed_bundle(cli, model_dir, key, tmp_path / "b.json")
    r = cli("verify", str(model_dir), str(b), "--key", pub(key))
    assert r.returncode == 0, r.stderr
    assert "signature ok" in r.stderr
    r = cli("verify", str(model_dir), str(b), "--key", pub(keys["k2"]))
    assert_error(r, 1, str(b), "signature")
    flip_byte(model_dir / "config.json", 3)
    r = cli("verify", str(model_dir), str(b), "--key", pub(key))
    assert r.returncode == 1, r.stderr
    assert statuses(r.stdout)["config.json"] == "*"
    assert statuses(r.stdout)["model.safetensors"] == "="


def test_bundle_is_sigstore_dsse_in_toto_checked_independently(cli, tmp_path, model_dir, keys):
    """Decode the bundle with json/base64/cryptography only: mediaType, one
    signature over the spec's PAE, hint = SHA-256 of the PEM public key,
    an in-toto statement whose subject digest is the dataset root."""
    b = signed_bundle(cli, model_dir, keys["k1"], tmp_path / "b.json", "--version", "7")
    doc = read_doc(b)
    assert doc["mediaType"] == MEDIA_TYPE
    assert doc["verificationMaterial"]["tlogEntries"] == []
    pem = Path(pub(keys["k1"])).read_bytes()
    assert doc["verificationMaterial"]["publicKey"]["hint"] == hashlib.sha256(pem).hexdigest()
    env = doc["dsseEnvelope"]
    assert env["payloadType"] == PAYLOAD_TYPE
    assert len(env["signatures"]) == 1
    body = base64.b64decode(env["payload"])
    pae = b"DSSEv1 %d %s %d %s" % (len(PAYLOAD_TYPE), PAYLOAD_TYPE.encode(), len(body), body)
    serialization.load_pem_public_key(pem).verify(
        base64.b64decode(env["signatures"][0]["sig"]), pae, ec.ECDSA(hashes.SHA256())
    )
    stmt = json.loads(body)
    assert stmt["_type"] == "https://in-toto.io/Statement/v1"
    root = merkle.build(model_dir).root.hex()
    assert stmt["subject"] == [{"name": "model", "digest": {"merkle-blake3": root}}]
    assert stmt["predicate"]["version"] == 7
    assert stmt["predicate"]["manifest"]["root"] == root


def test_sign_manifest_then_verify(cli, tmp_path, model_dir, keys):
    m = tmp_path / "weights.json"
    assert cli("build", str(model_dir), "-o", str(m)).returncode == 0
    b = tmp_path / "b.json"
    r = cli("sign", str(m), "--key", str(keys["k1"]), "-o", str(b))
    assert r.returncode == 0, r.stderr
    assert statement_of(b)["subject"][0]["name"] == "weights"
    assert cli("verify", str(model_dir), str(b), "--key", pub(keys["k1"])).returncode == 0


def test_bundle_needs_a_trusted_key(cli, tmp_path, model_dir, keys):
    b = signed_bundle(cli, model_dir, keys["k1"], tmp_path / "b.json")
    r = cli("verify", str(model_dir), str(b))
    assert_error(r, 2, "--key")


# -- bad bundles ---------------------------------------------------------------------


@pytest.fixture
def good(cli, tmp_path, model_dir, keys):
    return signed_bundle(cli, model_dir, keys["k1"], tmp_path / "good.json")


def _mutate(doc, fn):
    d = copy.deepcopy(doc)
    fn(d)
    return d


def _tamper_payload(d):
    stmt = json.loads(base64.b64decode(d["dsseEnvelope"]["payload"]))
    stmt["subject"][0]["name"] += "-forged"
    d["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(stmt).encode()).decode()


def _tamper_sig(d):
    sig = bytearray(base64.b64decode(d["dsseEnvelope"]["signatures"][0]["sig"]))
    sig[-1] ^= 0x01
    d["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()


BAD_DOCS = {
    "tampered-payload": (_tamper_payload, "signature does not verify"),
    "tampered-signature": (_tamper_sig, "signature does not verify"),
    "payload-type": (lambda d: d["dsseEnvelope"].__setitem__("payloadType", "application/json"), "payloadType"),
    "media-type": (
        lambda d: d.__setitem__("mediaType", "application/vnd.dev.sigstore.bundle+json;version=0.2"),
        "mediaType",
    ),
    "zero-signatures": (lambda d: d["dsseEnvelope"].__setitem__("signatures", []), "0 signatures"),
    "two-signatures": (
        lambda d: d["dsseEnvelope"]["signatures"].append(dict(d["dsseEnvelope"]["signatures"][0])),
        "2 signatures",
    ),
    "empty-signature": (lambda d: d["dsseEnvelope"]["signatures"][0].__setitem__("sig", ""), "signature"),
    "sig-not-base64": (lambda d: d["dsseEnvelope"]["signatures"][0].__setitem__("sig", "!!"), "base64"),
    "unknown-key": (lambda d: d.__setitem__("messageSignature", {}), "unknown bundle key"),
}


@pytest.mark.parametrize("name", sorted(BAD_DOCS))
def test_bad_bundle_is_refused(cli, tmp_path, model_dir, keys, good, name):
    fn, needle = BAD_DOCS[name]
    bad = write_doc(tmp_path / f"{name}.json", _mutate(read_doc(good), fn))
    r = cli("verify", str(model_dir), str(bad), "--key", pub(keys["k1"]))
    assert_error(r, 1, str(bad), needle)
    assert r.stdout == ""  # nothing of the content was reported


def test_wrong_key_is_refused(cli, model_dir, keys, good):
    r = cli("verify", str(model_dir), str(good), "--key", pub(keys["k2"]))
    assert_error(r, 1, str(good), "signature does not verify")


def test_truncated_bundle_is_refused(cli, tmp_path, model_dir, keys, good):
    bad = tmp_path / "truncated.json"
    bad.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    r = cli("verify", str(model_dir), str(bad), "--key", pub(keys["k1"]))
    assert_error(r, 1, str(bad))


@pytest.mark.parametrize(
    "content", [b"\xff\xfe\x00garbage\x81", b"hello world\n", b"[1, 2, 3]\n"], ids=["binary", "text", "json-list"]
)
def test_garbage_bundle_is_refused_with_exit_1(cli, tmp_path, model_dir, keys, content):
    """Issue 3, bad input: 'truncated, garbage or oversized bundles' exit 1.
    With --key given, the document can only be a bundle."""
    bad = tmp_path / "garbage.json"
    bad.write_bytes(content)
    r = cli("verify", str(model_dir), str(bad), "--key", pub(keys["k1"]))
    assert_error(r, 1, str(bad))


def test_duplicate_keys_in_the_bundle_are_refused(cli, tmp_path, model_dir, keys, good):
    text = good.read_text().rstrip()
    assert text.endswith("}")
    bad = tmp_path / "dup.json"
    bad.write_text(text[:-1] + f',"mediaType":"{MEDIA_TYPE}"}}')
    r = cli("verify", str(model_dir), str(bad), "--key", pub(keys["k1"]))
    assert_error(r, 1, str(bad), "duplicate key")


def test_duplicate_payload_in_the_envelope_is_refused(cli, tmp_path, model_dir, keys, good):
    """A second 'payload' (a parser differential: first signed, last used)."""
    doc = read_doc(good)
    evil = _mutate(doc, _tamper_payload)["dsseEnvelope"]["payload"]
    text = good.read_text()
    needle = '"payloadType":'
    assert text.count(needle) == 1
    bad = tmp_path / "dup-payload.json"
    bad.write_text(text.replace(needle, f'"payload":"{evil}",' + needle))
    r = cli("verify", str(model_dir), str(bad), "--key", pub(keys["k1"]))
    assert_error(r, 1, str(bad), "duplicate key")


def test_duplicate_keys_in_the_signed_payload_are_refused(cli, tmp_path, model_dir, keys, good):
    body = payload_of(read_doc(good)).decode()
    assert body.endswith("}")
    hostile = body[:-1] + ',"predicateType":"https://merkle.dev/manifest/v1"}'
    bad = sign_raw(hostile.encode(), keys["k1"], tmp_path / "dup-payload.json")
    r = cli("verify", str(model_dir), str(bad), "--key", pub(keys["k1"]))
    assert_error(r, 1, str(bad), "duplicate key")


def _resigned(good, key, out, fn):
    stmt = json.loads(payload_of(read_doc(good)))
    fn(stmt)
    return sign_raw(json.dumps(stmt).encode(), key, out)


@pytest.mark.parametrize(
    "name, fn, needle",
    [
        ("md5", lambda s: s["predicate"]["manifest"].__setitem__("algorithm", "md5"), "md5"),
        ("escape", lambda s: s["predicate"]["manifest"]["files"][0].__setitem__("path", "../escape"), "'..'"),
        ("absolute", lambda s: s["predicate"]["manifest"]["files"][0].__setitem__("path", "/etc/passwd"), "absolute"),
        (
            "subject-digest",
            lambda s: s["subject"][0]["digest"].__setitem__("merkle-blake3", "0" * 64),
            "subject digest",
        ),
        (
            "subject-algorithm",
            lambda s: s["subject"][0].__setitem__(
                "digest", {"merkle-sha256": s["subject"][0]["digest"]["merkle-blake3"]}
            ),
            "subject digest",
        ),
        ("predicate-type", lambda s: s.__setitem__("predicateType", "https://slsa.dev/provenance/v1"), "predicateType"),
        ("version-zero", lambda s: s["predicate"].__setitem__("version", 0), "version"),
        ("extra-predicate-field", lambda s: s["predicate"].__setitem__("trusted", True), "predicate"),
        ("statement-type", lambda s: s.__setitem__("_type", "https://in-toto.io/Statement/v0.1"), "_type"),
    ],
)
def test_validly_signed_hostile_statement_is_refused(cli, tmp_path, model_dir, keys, good, name, fn, needle):
    bad = _resigned(good, keys["k1"], tmp_path / f"{name}.json", fn)
    r = cli("verify", str(model_dir), str(bad), "--key", pub(keys["k1"]))
    assert_error(r, 1, str(bad), needle)
    assert r.stdout == ""


def test_hand_signed_statement_is_accepted_when_sound(cli, tmp_path, model_dir, keys, good):
    """Control for the tests above: re-signing an unchanged statement by hand verifies."""
    b = _resigned(good, keys["k1"], tmp_path / "same.json", lambda s: None)
    assert cli("verify", str(model_dir), str(b), "--key", pub(keys["k1"])).returncode == 0


@pytest.mark.parametrize("kind", ["secp256k1", "rsa"])
def test_trusted_key_of_a_disallowed_type_is_refused(cli, tmp_path, model_dir, good, kind):
    private = ec.generate_private_key(ec.SECP256K1()) if kind == "secp256k1" else rsa.generate_private_key(65537, 2048)
    key = tmp_path / f"{kind}.pub"
    key.write_bytes(
        private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    r = cli("verify", str(model_dir), str(good), "--key", str(key))
    assert_error(r, 1, str(key), "not allowed")


def test_secp256k1_signed_bundle_is_refused_even_if_the_signature_is_valid(cli, tmp_path, model_dir, good):
    """The verifier pins the algorithms: a bundle signed with a secp256k1
    key does not verify even against that very key."""
    private = ec.generate_private_key(ec.SECP256K1())
    body = payload_of(read_doc(good))
    pae = b"DSSEv1 %d %s %d %s" % (len(PAYLOAD_TYPE), PAYLOAD_TYPE.encode(), len(body), body)
    sig = private.sign(pae, ec.ECDSA(hashes.SHA256()))
    bad = write_doc(
        tmp_path / "k1.json",
        _mutate(
            read_doc(good),
            lambda d: d["dsseEnvelope"]["signatures"][0].__setitem__("sig", base64.b64encode(sig).decode()),
        ),
    )
    key = tmp_path / "k1.pub"
    key.write_bytes(
        private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    r = cli("verify", str(model_dir), str(bad), "--key", str(key))
    assert r.returncode == 1, r.stderr
    assert_one_line_error(r)


def test_oversized_bundle_is_refused_before_decoding(tmp_path, monkeypatch, cli, model_dir, keys):
    cap = 4096
    monkeypatch.setattr(envelope, "MAX_BUNDLE_BYTES", cap)
    real = signed_bundle(cli, model_dir, keys["k1"], tmp_path / "b.json")
    data = real.read_bytes()
    assert len(data) < cap
    exact = tmp_path / "exact.json"
    exact.write_bytes(data + b" " * (cap - len(data)))
    assert envelope.read_bundle(str(exact)).payload == payload_of(read_doc(real))
    over = tmp_path / "over.json"
    over.write_bytes(data + b" " * (cap + 1 - len(data)))
    with pytest.raises(BundleError, match="limit") as e:
        envelope.read_bundle(str(over))
    assert e.value.path == str(over)
    deep = tmp_path / "deep.json"
    deep.write_bytes(b"[" * (cap + 1))  # would recurse if it were decoded
    with pytest.raises(BundleError, match="limit"):
        envelope.read_bundle(str(deep))


def test_oversized_bundle_is_refused_before_decoding_on_the_cli_path(tmp_path, monkeypatch):
    """`merkle verify --key` reads bundles through documents.load_document: the bundle
    cap must hold there too, before the JSON is decoded (docs/signing.md V1)."""
    cap = 4096
    monkeypatch.setattr(envelope, "MAX_BUNDLE_BYTES", cap)
    deep = tmp_path / "deep.json"
    deep.write_bytes(b'{"mediaType":' + b"[" * cap)
    with pytest.raises(BundleError, match="limit"):
        documents.load_document(str(deep), bundle=True)


# -- rollback and freeze ----------------------------------------------------------------


def test_rollback_is_refused_and_no_store_bypasses(cli, tmp_path, model_dir, keys, private_store):
    k = keys["k1"]
    b2 = signed_bundle(cli, model_dir, k, tmp_path / "v2.json", "--version", "2", "--name", "ds")
    assert cli("verify", str(model_dir), str(b2), "--key", pub(k)).returncode == 0
    b1 = signed_bundle(cli, model_dir, k, tmp_path / "v1.json", "--version", "1", "--name", "ds")
    r = cli("verify", str(model_dir), str(b1), "--key", pub(k))
    assert_error(r, 1, str(b1), "rollback", "'ds'")
    r = cli("verify", str(model_dir), str(b1), "--key", pub(k), "--no-store")
    assert r.returncode == 0, r.stderr
    other = tmp_path / "other-store"
    r = cli("verify", str(model_dir), str(b1), "--key", pub(k), "--store", str(other))
    assert r.returncode == 0, r.stderr
    # the default store still refuses, and the newer version still verifies
    assert cli("verify", str(model_dir), str(b1), "--key", pub(k)).returncode == 1
    assert cli("verify", str(model_dir), str(b2), "--key", pub(k)).returncode == 0


def test_rollback_is_remembered_from_verification_alone(cli, tmp_path, model_dir, keys):
    """Versions signed elsewhere (another store) are learned when verified here."""
    k = keys["k1"]
    elsewhere = str(tmp_path / "signer-store")
    b1 = signed_bundle(cli, model_dir, k, tmp_path / "v1.json", "--version", "1", "--store", elsewhere)
    b5 = signed_bundle(cli, model_dir, k, tmp_path / "v5.json", "--version", "5", "--store", elsewhere)
    assert cli("verify", str(model_dir), str(b1), "--key", pub(k)).returncode == 0
    assert cli("verify", str(model_dir), str(b5), "--key", pub(k)).returncode == 0
    assert_error(cli("verify", str(model_dir), str(b1), "--key", pub(k)), 1, "rollback")


def test_same_version_with_other_content_is_refused(cli, tmp_path, model_dir, keys):
    k = keys["k1"]
    a = signed_bundle(cli, model_dir, k, tmp_path / "a.json", "--version", "3")
    assert cli("verify", str(model_dir), str(a), "--key", pub(k)).returncode == 0
    (model_dir / "config.json").write_text('{"hidden_size": 768}\n')
    # signed where this store is not seen (on this machine the signing itself is refused:
    # tests/signing/test_review_i14.py::test_re_signing_a_version_with_other_bytes_is_refused_when_signing)
    c = signed_bundle(cli, model_dir, k, tmp_path / "c.json", "--version", "3", "--no-store")
    r = cli("verify", str(model_dir), str(c), "--key", pub(k))
    assert_error(r, 1, str(c), "another root")
    assert cli("verify", str(model_dir), str(c), "--key", pub(k), "--no-store").returncode == 0


def test_expired_statement_is_refused(cli, tmp_path, model_dir, keys):
    k = keys["k1"]
    past = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
    bundle = statements.sign(merkle.build(model_dir), load_priv(k), name="model", expires=past)
    b = tmp_path / "expired.json"
    b.write_bytes(bundle.to_json())
    assert statement_of(b)["predicate"]["expires"] == "2020-01-01T00:00:00Z"
    r = cli("verify", str(model_dir), str(b), "--key", pub(k))
    assert_error(r, 1, str(b), "expired")
    assert r.stdout == ""


def test_signing_an_already_expired_statement_writes_nothing(cli, tmp_path, model_dir, keys):
    b = tmp_path / "expired.json"
    r = cli("build", str(model_dir), "--sign", str(keys["k1"]), "-o", str(b), "--expires", "2020-01-01T00:00:00Z")
    assert r.returncode != 0
    assert_one_line_error(r, "expired")
    assert not b.exists()


def test_future_expiry_verifies(cli, tmp_path, model_dir, keys):
    k = keys["k1"]
    b = signed_bundle(cli, model_dir, k, tmp_path / "b.json", "--expires", "2099-01-31T00:00:00Z")
    assert statement_of(b)["predicate"]["expires"] == "2099-01-31T00:00:00Z"
    r = cli("verify", str(model_dir), str(b), "--key", pub(k))
    assert r.returncode == 0, r.stderr


def test_duration_expiry_verifies(cli, tmp_path, model_dir, keys):
    k = keys["k1"]
    before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    b = signed_bundle(cli, model_dir, k, tmp_path / "b.json", "--expires", "30d")
    after = datetime.datetime.now(datetime.timezone.utc)
    expires = datetime.datetime.strptime(statement_of(b)["predicate"]["expires"], "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc
    )
    assert before + datetime.timedelta(days=30) <= expires <= after + datetime.timedelta(days=30)
    assert cli("verify", str(model_dir), str(b), "--key", pub(k)).returncode == 0


@pytest.mark.parametrize("bad", ["yesterday", "2027-01-31", "-5d"])
def test_bad_expiry_is_a_usage_error(cli, tmp_path, model_dir, keys, bad):
    b = tmp_path / "b.json"
    r = cli("build", str(model_dir), "--sign", str(keys["k1"]), "-o", str(b), f"--expires={bad}")
    assert r.returncode == 2
    assert not b.exists()


# -- mix-and-match -------------------------------------------------------------------------


@pytest.fixture
def two_datasets(tmp_path):
    out = []
    for name, payload in (("A", b"weights of A" * 100), ("B", b"weights of B" * 100)):
        d = tmp_path / name
        d.mkdir()
        (d / "weights.bin").write_bytes(payload)
        (d / "config.json").write_text("{}\n")
        out.append(d)
    return out


def test_file_moved_between_signed_datasets_is_caught(cli, tmp_path, two_datasets, keys):
    a, b = two_datasets
    ba = signed_bundle(cli, a, keys["k1"], tmp_path / "a.json")
    signed_bundle(cli, b, keys["k1"], tmp_path / "b.json")
    assert cli("verify", str(a), str(ba), "--key", pub(keys["k1"])).returncode == 0
    (a / "weights.bin").write_bytes((b / "weights.bin").read_bytes())
    r = cli("verify", str(a), str(ba), "--key", pub(keys["k1"]))
    assert r.returncode == 1, r.stderr
    assert statuses(r.stdout) == {"weights.bin": "*", "config.json": "="}


def test_bundles_of_different_statements_do_not_add_up(cli, tmp_path, two_datasets, keys):
    a, b = two_datasets
    ba = signed_bundle(cli, a, keys["k1"], tmp_path / "a.json")
    bb = signed_bundle(cli, b, keys["k2"], tmp_path / "b.json")
    r = cli("verify", str(a), str(ba), str(bb), "--key", pub(keys["k1"]), "--key", pub(keys["k2"]), "--threshold", "2")
    assert_error(r, 1, str(bb), "different statements")


# -- threshold --------------------------------------------------------------------------------


def test_threshold_needs_distinct_trusted_signers(cli, tmp_path, model_dir, keys):
    k1, k2 = keys["k1"], keys["k2"]
    b1 = signed_bundle(cli, model_dir, k1, tmp_path / "b1.json")
    b2 = tmp_path / "b2.json"
    r = cli("sign", str(b1), "--key", str(k2), "-o", str(b2), "--verify-key", pub(k1))
    assert r.returncode == 0, r.stderr
    assert payload_of(read_doc(b2)) == payload_of(read_doc(b1))  # co-signed, unchanged
    both = ["--key", pub(k1), "--key", pub(k2), "--threshold", "2"]
    r = cli("verify", str(model_dir), str(b1), str(b2), *both)
    assert r.returncode == 0, r.stderr
    r = cli("verify", str(model_dir), str(b1), *both)
    assert_error(r, 1, "1 distinct", "2 required")
    b1again = tmp_path / "b1-again.json"
    assert cli("sign", str(b1), "--key", str(k1), "-o", str(b1again), "--verify-key", pub(k1)).returncode == 0
    assert b1again.read_bytes() != b1.read_bytes()  # another signature, same signer
    r = cli("verify", str(model_dir), str(b1), str(b1again), *both)
    assert_error(r, 1, "1 distinct", "2 required")
    r = cli("verify", str(model_dir), str(b1), str(b1), *both)
    assert_error(r, 1, "1 distinct", "2 required")


def test_threshold_with_an_untrusted_cosigner_fails(cli, tmp_path, model_dir, keys):
    b1 = signed_bundle(cli, model_dir, keys["k1"], tmp_path / "b1.json")
    b3 = tmp_path / "b3.json"
    r = cli("sign", str(b1), "--key", str(keys["k3"]), "-o", str(b3), "--verify-key", pub(keys["k1"]))
    assert r.returncode == 0, r.stderr
    r = cli(
        "verify",
        str(model_dir),
        str(b1),
        str(b3),
        "--key",
        pub(keys["k1"]),
        "--key",
        pub(keys["k2"]),
        "--threshold",
        "2",
    )
    assert_error(r, 1, str(b3))


def test_threshold_above_the_trusted_keys_is_a_usage_error(cli, tmp_path, model_dir, keys):
    b1 = signed_bundle(cli, model_dir, keys["k1"], tmp_path / "b1.json")
    r = cli("verify", str(model_dir), str(b1), "--key", pub(keys["k1"]), "--key", pub(keys["k1"]), "--threshold", "2")
    assert_error(r, 2, "threshold")


def test_cosigning_refuses_to_change_the_statement(cli, tmp_path, model_dir, keys):
    b1 = signed_bundle(cli, model_dir, keys["k1"], tmp_path / "b1.json")
    b2 = tmp_path / "b2.json"
    r = cli("sign", str(b1), "--key", str(keys["k2"]), "-o", str(b2), "--version", "9")
    assert_error(r, 2, "co-sign")
    assert not b2.exists()


# -- hints are not trust -------------------------------------------------------------------------


def test_keyid_and_hint_are_only_hints(cli, tmp_path, model_dir, keys, good):
    def relabel(d):
        d["verificationMaterial"]["publicKey"]["hint"] = "0" * 64
        d["dsseEnvelope"]["signatures"][0]["keyid"] = "someone-else"

    b = write_doc(tmp_path / "relabelled.json", _mutate(read_doc(good), relabel))
    r = cli("verify", str(model_dir), str(b), "--key", pub(keys["k1"]))
    assert r.returncode == 0, r.stderr
    r = cli("verify", str(model_dir), str(b), "--key", pub(keys["k2"]), "--key", pub(keys["k1"]))
    assert r.returncode == 0, r.stderr


def test_hint_naming_another_key_grants_nothing(cli, tmp_path, model_dir, keys, good):
    k2_id = hashlib.sha256(Path(pub(keys["k2"])).read_bytes()).hexdigest()

    def relabel(d):
        d["verificationMaterial"]["publicKey"]["hint"] = k2_id
        d["dsseEnvelope"]["signatures"][0]["keyid"] = k2_id

    b = write_doc(tmp_path / "claims-k2.json", _mutate(read_doc(good), relabel))
    r = cli("verify", str(model_dir), str(b), "--key", pub(keys["k2"]))
    assert_error(r, 1, str(b), "signature does not verify")


# -- X.509 ------------------------------------------------------------------------------------------


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(
    subject_key, subject, issuer_key, issuer, *, ca, days=(-1, 30), usage=(ExtendedKeyUsageOID.CODE_SIGNING,), extra=()
):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(subject_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + datetime.timedelta(days=days[0]))
        .not_valid_after(now + datetime.timedelta(days=days[1]))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca and usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(usage)), critical=False)
    for extension in extra:
        builder = builder.add_extension(extension, critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    k = {n: ec.generate_private_key(ec.SECP256R1()) for n in ("root", "inter", "leaf", "other", "notca", "old")}
    root = _cert(k["root"], "root", k["root"], "root", ca=True)
    other = _cert(k["other"], "other root", k["other"], "other root", ca=True)
    inter = _cert(k["inter"], "intermediate", k["root"], "root", ca=True)
    leaf = _cert(k["leaf"], "leaf", k["inter"], "intermediate", ca=False)
    expired = _cert(k["old"], "expired leaf", k["inter"], "intermediate", ca=False, days=(-30, -1))
    notca = _cert(k["notca"], "not a ca", k["root"], "root", ca=False)
    under_notca = _cert(k["leaf"], "leaf under non-CA", k["notca"], "not a ca", ca=False)
    files = {}
    for name, cert in (
        ("root", root),
        ("other", other),
        ("inter", inter),
        ("leaf", leaf),
        ("expired", expired),
        ("notca", notca),
        ("under_notca", under_notca),
    ):
        files[name] = d / f"{name}.pem"
        files[name].write_bytes(_pem(cert))
    for name in ("leaf", "old"):
        files[name + "key"] = d / f"{name}.key"
        files[name + "key"].write_bytes(
            k[name].private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        Path(pub(files[name + "key"])).write_bytes(
            k[name]
            .public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
    return files


def _cert_bundle(cli, tmp_path, model_dir, key, cert, chain, name="b.json"):
    b = tmp_path / name
    r = cli("build", str(model_dir), "--sign", str(key), "--cert", str(cert), "--cert-chain", str(chain), "-o", str(b))
    assert r.returncode == 0, r.stderr
    return b


def test_certificate_chain_verifies_up_to_the_root(cli, tmp_path, model_dir, pki):
    b = _cert_bundle(cli, tmp_path, model_dir, pki["leafkey"], pki["leaf"], pki["inter"])
    certs = read_doc(b)["verificationMaterial"]["x509CertificateChain"]["certificates"]
    leaf = x509.load_der_x509_certificate(base64.b64decode(certs[0]["rawBytes"]))
    assert leaf == x509.load_pem_x509_certificate(pki["leaf"].read_bytes())
    assert len(certs) == 2
    r = cli("verify", str(model_dir), str(b), "--ca", str(pki["root"]))
    assert r.returncode == 0, r.stderr
    assert "CN=leaf" in r.stderr
    r = cli("verify", str(model_dir), str(b), "--ca", str(pki["other"]))
    assert_error(r, 1, str(b), "trusted CA")
    r = cli("verify", str(model_dir), str(b), "--key", pub(pki["leafkey"]))
    assert_error(r, 1, str(b), "with a trusted CA")


def test_expired_leaf_is_refused(cli, tmp_path, model_dir, pki):
    b = _cert_bundle(cli, tmp_path, model_dir, pki["oldkey"], pki["expired"], pki["inter"])
    r = cli("verify", str(model_dir), str(b), "--ca", str(pki["root"]))
    assert_error(r, 1, str(b), "not valid now")


def test_leaf_issued_by_a_non_ca_is_refused(cli, tmp_path, model_dir, pki):
    b = _cert_bundle(cli, tmp_path, model_dir, pki["leafkey"], pki["under_notca"], pki["notca"])
    r = cli("verify", str(model_dir), str(b), "--ca", str(pki["root"]))
    assert_error(r, 1, str(b), "not issued by a trusted CA")


def test_chain_missing_the_intermediate_is_refused(cli, tmp_path, model_dir, pki):
    b = tmp_path / "b.json"
    r = cli("build", str(model_dir), "--sign", str(pki["leafkey"]), "--cert", str(pki["leaf"]), "-o", str(b))
    assert r.returncode == 0, r.stderr
    assert_error(cli("verify", str(model_dir), str(b), "--ca", str(pki["root"])), 1, str(b))


def test_certificate_for_another_key_is_a_usage_error(cli, tmp_path, model_dir, pki):
    b = tmp_path / "b.json"
    r = cli(
        "build",
        str(model_dir),
        "--sign",
        str(pki["oldkey"]),
        "--cert",
        str(pki["leaf"]),
        "--cert-chain",
        str(pki["inter"]),
        "-o",
        str(b),
    )
    assert_error(r, 2, str(pki["leaf"]), "not for this key")
    assert not b.exists()


def test_cert_bundle_with_a_swapped_leaf_is_refused(cli, tmp_path, model_dir, pki):
    """The signature must verify with the leaf's key, not merely the chain."""
    b = _cert_bundle(cli, tmp_path, model_dir, pki["oldkey"], pki["expired"], pki["inter"])
    leaf_der = x509.load_pem_x509_certificate(pki["leaf"].read_bytes()).public_bytes(serialization.Encoding.DER)
    bad = write_doc(
        tmp_path / "swapped.json",
        _mutate(
            read_doc(b),
            lambda d: d["verificationMaterial"]["x509CertificateChain"]["certificates"][0].__setitem__(
                "rawBytes", base64.b64encode(leaf_der).decode()
            ),
        ),
    )
    r = cli("verify", str(model_dir), str(bad), "--ca", str(pki["root"]))
    assert_error(r, 1, str(bad), "signature does not verify")


# -- store -----------------------------------------------------------------------------------------------


def test_store_lists_and_shows_content_addressed_bundles(cli, tmp_path, model_dir, keys, private_store):
    b = signed_bundle(cli, model_dir, keys["k1"], tmp_path / "b.json", "--version", "4", "--name", "my-model")
    for _ in range(2):
        assert cli("verify", str(model_dir), str(b), "--key", pub(keys["k1"])).returncode == 0
    digest = hashlib.sha256(b.read_bytes()).hexdigest()
    kept = sorted((private_store / "bundles").iterdir())
    assert [p.name for p in kept] == [digest + ".json"]
    assert kept[0].read_bytes() == b.read_bytes()

    r = cli("store", "list", "--json")
    assert r.returncode == 0, r.stderr
    entries = json.loads(r.stdout)
    assert len(entries) == 1
    e = entries[0]
    assert (e["name"], e["root"], e["version"], e["id"]) == ("my-model", merkle.build(model_dir).root.hex(), 4, digest)
    assert e["kind"] == "merkle"
    assert e["signers"] == [hashlib.sha256(Path(pub(keys["k1"])).read_bytes()).hexdigest()]

    for ref in ("my-model", e["root"], digest[:12]):
        r = cli("store", "show", ref, "--json")
        assert r.returncode == 0, (ref, r.stderr)
        assert [x["id"] for x in json.loads(r.stdout)] == [digest]
    r = cli("store", "show", "my-model")
    assert r.returncode == 0 and "my-model" in r.stdout and "v4" in r.stdout
    assert_error(cli("store", "show", "nobody"), 2, "nobody")


def test_store_keeps_a_cosigned_bundle_separately(cli, tmp_path, model_dir, keys, private_store):
    b1 = signed_bundle(cli, model_dir, keys["k1"], tmp_path / "b1.json")
    b2 = tmp_path / "b2.json"
    r = cli("sign", str(b1), "--key", str(keys["k2"]), "-o", str(b2), "--verify-key", pub(keys["k1"]))
    assert r.returncode == 0, r.stderr
    names = {p.name for p in (private_store / "bundles").iterdir()}
    assert names == {hashlib.sha256(p.read_bytes()).hexdigest() + ".json" for p in (b1, b2)}


def test_store_option_chooses_the_directory(cli, tmp_path, model_dir, keys, private_store):
    other = tmp_path / "elsewhere"
    signed_bundle(cli, model_dir, keys["k1"], tmp_path / "b.json", "--store", str(other))
    assert not private_store.exists() or not list((private_store / "bundles").iterdir())
    r = cli("store", "list", "--json", "--store", str(other))
    assert r.returncode == 0 and len(json.loads(r.stdout)) == 1


def test_failed_verification_adds_nothing_to_the_store(cli, tmp_path, model_dir, keys, good, private_store):
    before = set((private_store / "bundles").iterdir())
    bad = write_doc(tmp_path / "bad.json", _mutate(read_doc(good), _tamper_sig))
    assert cli("verify", str(model_dir), str(bad), "--key", pub(keys["k1"])).returncode == 1
    assert set((private_store / "bundles").iterdir()) == before


def test_no_store_neither_reads_nor_writes_the_store(cli, tmp_path, model_dir, keys, private_store):
    b = signed_bundle(cli, model_dir, keys["k1"], tmp_path / "b.json", "--store", str(tmp_path / "signer"))
    assert cli("verify", str(model_dir), str(b), "--key", pub(keys["k1"]), "--no-store").returncode == 0
    assert not private_store.exists()
    assert cli("verify", str(model_dir), str(b), "--key", pub(keys["k1"])).returncode == 0
    assert [p.name for p in (private_store / "bundles").iterdir()] == [
        hashlib.sha256(b.read_bytes()).hexdigest() + ".json"
    ]
