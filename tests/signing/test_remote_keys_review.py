"""Review of issue 23 (keys that stay in a PKCS#11 token or AWS KMS): each
test guards against one problem an attacker review found by reading
merkle/signing/{keys,pkcs11,kms}.py and merkle/cli/signing.py as an attacker
and as a demanding user; all are fixed.  Where a docstring tells how the
first version broke (unchecked attributes, a label-only lookup...), that is
what the test keeps from coming back.  A real SoftHSM2 token, initialised
here as tests/signing/test_pkcs11.py does (keys generated on it), moto's
KMS through the `endpoint` fixture, and the real CLI; nothing of merkle is
mocked."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import softhsm
from support.cli import assert_one_line_error

pytest.importorskip("pkcs11")

MODULE = softhsm.MODULE
if not softhsm.AVAILABLE:
    pytest.skip("SoftHSM2 is not installed (apt-get install softhsm2)", allow_module_level=True)

PIN = "975312"
PIV_PRIVATE = "Private key for Digital Signature"
PIV_PUBLIC = "Public key for Digital Signature"
KEYGEN = f"""
import sys, pkcs11
from pkcs11 import Attribute, KeyType, ObjectClass
from pkcs11.util.ec import encode_named_curve_parameters
lib = pkcs11.lib(sys.argv[1])
token = lib.get_token(token_label="merkle-review")
sealed = {{Attribute.EXTRACTABLE: False, Attribute.SENSITIVE: True, Attribute.TOKEN: True}}
def curve(s, name):
    return s.create_domain_parameters(
        KeyType.EC, {{Attribute.EC_PARAMS: encode_named_curve_parameters(name)}}, local=True)
with token.open(rw=True, user_pin=sys.argv[2]) as s:
    curve(s, "secp256r1").generate_keypair(store=True, label="p256", id=b"p256", private_template=sealed)
    # secp256k1: a curve merkle does not sign with (K3: exit 2)
    curve(s, "secp256k1").generate_keypair(store=True, label="k1", id=b"k1", private_template=sealed)
    # A signature key that wants the PIN again for each signature (PIV slot 9c, OpenPGP cards' signing key)
    curve(s, "secp256r1").generate_keypair(
        store=True, label="always", id=b"always",
        private_template={{**sealed, Attribute.ALWAYS_AUTHENTICATE: True}})
    # As a YubiKey's PIV module (ykcs11) names them: one CKA_ID, a label per object class
    curve(s, "secp256r1").generate_keypair(
        store=True, id=b"\\x02",
        public_template={{Attribute.LABEL: "{PIV_PUBLIC}"}},
        private_template={{**sealed, Attribute.LABEL: "{PIV_PRIVATE}"}})
    # A key regenerated on the token whose old public key object stayed: same label and id, another key
    stale, _ = curve(s, "secp256r1").generate_keypair(store=True, label="swapped", id=b"sw",
                                                      private_template=sealed)
    stale.destroy()
    other, other_private = curve(s, "secp256r1").generate_keypair(store=True, label="other", id=b"other",
                                                                  private_template=sealed)
    s.create_object({{
        Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.KEY_TYPE: KeyType.EC, Attribute.TOKEN: True,
        Attribute.LABEL: "swapped", Attribute.ID: b"sw", Attribute.VERIFY: True,
        Attribute.EC_PARAMS: other[Attribute.EC_PARAMS], Attribute.EC_POINT: other[Attribute.EC_POINT],
    }})
print("ok")
"""


@pytest.fixture(scope="module")
def token(tmp_path_factory):
    """A SoftHSM2 token of this module's own, with keys made on it; the
    environment (SOFTHSM2_CONF) every child process of these tests reads."""
    home = tmp_path_factory.mktemp("softhsm")
    with softhsm.token(home, "merkle-review", PIN, KEYGEN) as (pin, said):
        assert said == "ok", said
        yield home, pin


def uri(pin: Path | None, path: str = "token=merkle-review;object=p256", **query: str) -> str:
    q = {"module-path": MODULE, **({"pin-source": f"file:{pin}"} if pin else {}), **query}
    return f"pkcs11:{path}?" + "&".join(f"{k}={v}" for k, v in q.items())


# -- merkle key export -o ------------------------------------------------------


@pytest.mark.parametrize("source", ["token", "the-same-key-file"])
def test_key_export_does_not_replace_a_private_key(cli, token, tmp_path, source):
    """`merkle key export KEY -o PUB` renames its output over any regular
    file (write_atomic), so `-o` naming a private key (the usual slip:
    `merkle key export release.key -o release.key`, or a token's export over
    an old key file) destroys that key, with exit 0.  keygen refuses to
    overwrite a key; export should refuse as well (or at least refuse a file
    that holds a private key)."""
    _, pin = token
    victim = tmp_path / "release.key"
    assert cli("keygen", "-o", str(victim)).returncode == 0
    before = victim.read_bytes()
    assert b"PRIVATE KEY" in before
    spec = uri(pin) if source == "token" else str(victim)
    r = cli("key", "export", spec, "-o", str(victim))
    assert victim.read_bytes() == before, "the private key was replaced by a public key"
    assert r.returncode == 2, r.stderr


# -- the PIN -------------------------------------------------------------------


def test_a_pin_file_readable_by_every_user_is_not_used_silently(cli, token, model_dir, tmp_path):
    """pin-source=file: is read whatever its mode: a 0644 PIN file (every
    user of the machine can read the PIN, and with it sign with the token)
    is used without a word.  ssh refuses a private key readable by others;
    merkle should refuse a PIN file that others can read or write (or, for
    container secrets mounted 0444, at least warn)."""
    _, good = token
    pin = tmp_path / "pin"
    pin.write_text(PIN + "\n")
    pin.chmod(0o644)
    out = tmp_path / "b.json"
    r = cli("build", str(model_dir), "--sign", uri(pin), "-o", str(out), "-q")
    assert r.returncode == 2 or "warning" in r.stderr, (r.returncode, r.stderr)
    assert PIN not in r.stderr


@pytest.mark.parametrize("name", ["PIN-VALUE", "pin_value", "pinvalue"])
def test_a_misspelt_pin_value_is_not_repeated_in_the_message(cli, token, model_dir, tmp_path, name):
    """`_shown` masks only the exact `pin-value=`; any other spelling is an
    unknown attribute whose message repeats the whole URI, PIN included
    (docs/signing.md: the PIN "is never repeated in a message").  Mask the
    value of every unknown attribute, or print only the attribute's name."""
    r = cli("build", str(model_dir), "--sign", uri(None, **{name: PIN}), "-o", str(tmp_path / "b.json"), "-q")
    assert r.returncode == 2, r.stderr
    assert_one_line_error(r, "unknown PKCS#11 URI attribute")
    assert PIN not in r.stderr


def test_a_pin_source_with_a_host_is_not_read_from_the_working_directory(cli, token, model_dir, tmp_path):
    """_pin drops the leading '//' of `file://HOST/PATH` and keeps the rest:
    `pin-source=file://pins.example/release` reads `pins.example/release`
    relative to the working directory (whoever controls the directory a
    build runs in chooses the PIN file merkle sends to the token).  Accept
    `file:/P`, `file:///P` and `file://localhost/P` (RFC 8089) and refuse any
    other host; never resolve a pin-source relative to the cwd."""
    _, pin = token
    work = tmp_path / "work"
    (work / "pins.example").mkdir(parents=True)
    (work / "pins.example" / "release").write_text(PIN + "\n")
    (work / "pins.example" / "release").chmod(0o600)
    spec = uri(None, **{"pin-source": "file://pins.example/release"})
    r = cli("build", str(model_dir), "--sign", spec, "-o", str(tmp_path / "b.json"), "-q", cwd=work)
    assert r.returncode == 2, r.stderr
    assert not (tmp_path / "b.json").exists()


@pytest.mark.parametrize("case", ["label-not-utf8", "pin-file-not-utf8"])
def test_undecodable_input_is_a_usage_error_not_an_internal_error(cli, token, model_dir, tmp_path, case):
    """`unquote(value, errors="strict")` and `data.decode("utf-8",
    errors="strict")` raise UnicodeDecodeError, which nothing turns into a
    UsageError: `merkle: internal error: UnicodeDecodeError ...` (the CLI's
    wording for a bug) instead of one line naming the URI or the PIN file."""
    _, pin = token
    if case == "label-not-utf8":
        spec = uri(pin, "token=merkle-review;object=%FF")
    else:
        bad = tmp_path / "pin"
        bad.write_bytes(b"\xff\xfe975312\n")
        bad.chmod(0o600)
        spec = uri(bad)
    out = tmp_path / "out"
    out.mkdir()
    r = cli("build", str(model_dir), "--sign", spec, "-o", str(out / "b.json"), "-q")
    assert r.returncode == 2, r.stderr
    assert_one_line_error(r)
    assert list(out.iterdir()) == []


# -- which token and which key a URI names --------------------------------------


@pytest.mark.parametrize(
    "extra",
    [
        ("path", "slot-id=424242"),
        ("path", "slot-description=another%20slot"),
        ("path", "slot-manufacturer=Nobody"),
        ("path", "library-manufacturer=Nobody"),
        ("path", "library-description=another%20module"),
        ("path", "library-version=99.99"),
        ("query", "module-name=opensc-pkcs11"),
    ],
    ids=lambda e: e[1].split("=")[0],
)
def test_uri_attributes_merkle_knows_but_does_not_check_match_nothing(cli, token, tmp_path, extra):
    """PATH_ATTRIBUTES and QUERY_ATTRIBUTES list slot-id, slot-description,
    slot-manufacturer, library-manufacturer, library-description,
    library-version and module-name as known, so they pass the RFC 7512 2.3
    check, but _token and open_pkcs11_key never compare them: a URI naming
    slot 424242, or another module, signs with whatever token of that label
    the loaded module has.  Each must either be matched (token.slot.slot_id,
    slot info, lib.manufacturer_id / library_description / library_version)
    or refused as unsupported, like an unknown attribute."""
    _, pin = token
    where, attribute = extra
    if where == "path":
        spec = uri(pin, f"token=merkle-review;{attribute};object=p256")
    else:
        spec = uri(pin) + f"&{attribute}"
    r = cli("key", "export", spec, "-o", str(tmp_path / "pub"))
    assert r.returncode == 2, r.stderr
    assert not (tmp_path / "pub").exists()


def test_an_uninitialised_token_does_not_make_a_uri_ambiguous(cli, token, tmp_path):
    """SoftHSM2 (like many HSMs) always shows one more slot with an
    uninitialised token; `pkcs11:object=p256` (no token=) then fails with
    "2 tokens match", though only one token holds any key.  _token should
    skip tokens without CKF_TOKEN_INITIALIZED (TokenFlag.TOKEN_INITIALIZED)."""
    _, pin = token
    r = cli("key", "export", uri(pin, "object=p256"), "-o", str(tmp_path / "pub"))
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("path", [f"object={PIV_PRIVATE.replace(' ', '%20')}", "id=%02"])
def test_the_public_key_of_a_key_whose_objects_have_their_own_labels(cli, token, model_dir, tmp_path, path):
    """_objects looks for the public key object (and the certificate) with
    the private key's label AND id.  Tokens that label each object by its
    class, as a YubiKey's PIV module does ("Private key for Digital
    Signature" / "Public key for Digital Signature" / "X.509 Certificate
    for ...", one CKA_ID), then have "no public key or certificate of the
    same label and id", even for `pkcs11:id=%02`.  Match by CKA_ID when the
    key has one (label only when it has none): sign_bytes checks the pair."""
    _, pin = token
    spec = uri(pin, f"token=merkle-review;{path}")
    pub = tmp_path / "pub"
    r = cli("key", "export", spec, "-o", str(pub))
    assert r.returncode == 0, r.stderr
    r = cli("build", str(model_dir), "--sign", spec, "-o", str(tmp_path / "b.json"), "-q")
    assert r.returncode == 0, r.stderr
    assert cli("verify", str(model_dir), str(tmp_path / "b.json"), "--key", str(pub)).returncode == 0


def test_a_key_that_wants_the_pin_for_each_signature_can_sign(cli, token, model_dir, tmp_path):
    """A private key with CKA_ALWAYS_AUTHENTICATE (smart cards' signature
    keys: PIV slot 9c, OpenPGP cards) needs C_Login(CKU_CONTEXT_SPECIFIC)
    after C_SignInit; Pkcs11Key.sign_data never does it, so the token
    answers CKR_USER_NOT_LOGGED_IN: "the token did not sign:
    UserNotLoggedIn", though docs/signing.md lists smart cards.  Keep the PIN
    when key[Attribute.ALWAYS_AUTHENTICATE] and pass it:
    `self._key.sign(..., pin=pin)` (python-pkcs11 reaffirms credentials)."""
    _, pin = token
    spec = uri(pin, "token=merkle-review;object=always")
    r = cli("build", str(model_dir), "--sign", spec, "-o", str(tmp_path / "b.json"), "-q")
    assert r.returncode == 0, r.stderr


def test_key_export_refuses_a_public_key_the_token_cannot_sign_for(cli, token, model_dir, tmp_path):
    """A stale public key object (same label and id, another key) is
    exported with exit 0: verifiers are handed a key no signature will ever
    match.  Signing then fails (K2 works: exit 1, nothing written), but the
    export, the step that publishes the key, never checks.  key_export
    should prove the pair first: sign_bytes(key, os.urandom(32)) (a remote
    key: one signature, checked against the public key) before writing."""
    _, pin = token
    spec = uri(pin, "token=merkle-review;object=swapped")
    out = tmp_path / "out"
    out.mkdir()
    r = cli("build", str(model_dir), "--sign", spec, "-o", str(out / "b.json"), "-q")
    assert r.returncode == 1 and list(out.iterdir()) == [], r.stderr  # K2 holds for signing
    r = cli("key", "export", spec, "-o", str(tmp_path / "swapped.pub"))
    assert r.returncode != 0, r.stderr
    assert not (tmp_path / "swapped.pub").exists()


def test_a_token_key_of_another_curve_is_exit_2_as_k3_says(cli, token, model_dir, tmp_path):
    """K3: a key type merkle does not sign with is "one line, exit 2".  An EC
    key on a curve other than P-256/384/521 (secp256k1 here) goes through
    check_public, which raises SignatureError: exit 1, the code of a
    signature that does not verify.  _public_of should raise UsageError for
    it (as it does for RSA and non-Ed25519 Edwards keys)."""
    _, pin = token
    out = tmp_path / "out"
    out.mkdir()
    r = cli("build", str(model_dir), "--sign", uri(pin, "token=merkle-review;object=k1"), "-o", str(out / "b"), "-q")
    assert_one_line_error(r, "secp256k1")
    assert list(out.iterdir()) == []
    assert r.returncode == 2, r.stderr


# -- when the key is opened ----------------------------------------------------


@pytest.fixture
def signed_model(cli, model_dir, tmp_path):
    d = tmp_path / "signed"
    d.mkdir()
    assert cli("keygen", "-o", str(d / "k")).returncode == 0
    r = cli("build", str(model_dir), "--sign", str(d / "k"), "-o", str(d / "b.json"), "-q", "--no-store")
    assert r.returncode == 0, r.stderr
    (d / "p.yaml").write_text("version: 1\nrules:\n  hashing:\n    algorithms: [blake3]\n")
    return d


@pytest.mark.parametrize("command", ["policy-check", "bom"])
def test_a_wrong_pin_is_said_before_the_tree_is_hashed(cli, token, model_dir, tmp_path, signed_model, command):
    """docs/signing.md: "Wherever merkle signs (build --sign, sign --key, bom
    --sign, policy check --sign, ...) the key is opened before any content is
    read, so a wrong PIN or a disabled key is said before hours of hashing."
    Only build (commands.build) and image build open it early; policy check
    (policy._sign) and bom (bom._sign) open it after verifying the whole
    tree.  Here the tree changed and the PIN is wrong: the user is told the
    tree did not verify (exit 1) and learns of the PIN only after the next
    full hash.  Call cli.signing.signing_key(args) at the start of
    policy check and bom when --sign is given."""
    d = signed_model
    bad = tmp_path / "bad-pin"
    bad.write_text("000000\n")
    bad.chmod(0o600)
    (model_dir / "config.json").write_text('{"hidden_size": 385}\n')
    out = tmp_path / "result.json"
    if command == "policy-check":
        argv = ["policy", "check", str(model_dir), str(d / "b.json"), "--key", str(d / "k.pub"),
                "--policy", str(d / "p.yaml"), "--no-store"]  # fmt: skip
    else:
        argv = ["bom", str(model_dir), str(d / "b.json"), "--key", str(d / "k.pub"), "--no-store"]
    r = cli(*argv, "--sign", uri(bad), "-o", str(out))
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "wrong PIN" in r.stderr
    assert not out.exists()


# -- AWS KMS -------------------------------------------------------------------


@pytest.fixture(scope="module")
def kms(endpoint):
    boto3 = pytest.importorskip("boto3")
    return boto3.client("kms", endpoint_url=endpoint, region_name="us-east-1")


def new_key(kms, spec: str = "ECC_NIST_P256") -> str:
    return kms.create_key(KeySpec=spec, KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]


def test_the_uri_host_is_not_silently_replaced_by_endpoint_url(cli, kms, endpoint, tmp_path):
    """`awskms://HOST/KEY` names the endpoint; docs/signing.md says the
    endpoint is "the URI's host over https, else --signer-option
    endpoint_url".  The code does the opposite (`options.get("endpoint_url")
    or https://HOST`): with both, the URI's host is dropped without a word
    and another service's key of that id is used (here: a URI naming
    127.0.0.1:9, where nothing listens, signs through moto).  Refuse both
    at once (or at least honour the URI as documented)."""
    key = f"awskms://127.0.0.1:9/{new_key(kms)}"
    r = cli("key", "export", key, "-o", str(tmp_path / "pub"), "--signer-option", f"endpoint_url={endpoint}")
    assert r.returncode == 2, r.stderr
    assert not (tmp_path / "pub").exists()


@pytest.mark.parametrize(
    ("option", "needle"),
    [
        ("read_timeout=abc", "read_timeout"),
        ("connect_timeout=[1]", "connect_timeout"),
        ("max_attempts=x", "max_attempts"),
        ("endpoint_url", "--signer-option"),
    ],
)
def test_bad_signer_options_are_one_line_usage_errors(cli, kms, endpoint, tmp_path, option, needle):
    """float()/int() of a signer option's value raise ValueError/TypeError
    outside any handler: "merkle: internal error: ValueError: could not
    convert string to float" (the CLI's wording for a bug).  And a pair
    without '=' is blamed on --storage-option (parse_storage_options's
    message), an option the user did not give.  Check the values in
    open_aws_kms_key (a positive finite number; an integer >= 1 for
    max_attempts) and let the message name the option that was given."""
    key = f"awskms:///{new_key(kms)}"
    r = cli("key", "export", key, "-o", str(tmp_path / "pub"), "--signer-option", f"endpoint_url={endpoint}",
            "--signer-option", option)  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert_one_line_error(r, needle)


def test_a_secp256k1_kms_key_is_refused(cli, kms, endpoint, tmp_path):
    """Sound (kept as a guard): ECC_SECG_P256K1 is refused from DescribeKey's
    KeySpec, before GetPublicKey or any Sign."""
    r = cli("key", "export", f"awskms:///{new_key(kms, 'ECC_SECG_P256K1')}", "-o", str(tmp_path / "pub"),
            "--signer-option", f"endpoint_url={endpoint}")  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert_one_line_error(r, "ECC_SECG_P256K1 is not allowed")
    assert not (tmp_path / "pub").exists()


def test_a_slot_id_that_matches_no_token_is_named_in_the_message(cli, token, tmp_path):
    _, pin = token
    r = cli("key", "export", uri(pin, "token=merkle-review;slot-id=424242;object=p256"), "-o", str(tmp_path / "pub"))
    assert r.returncode == 2
    assert_one_line_error(r, "slot-id='424242'")


def test_an_id_that_is_not_percent_encoded_is_a_usage_error(cli, token, tmp_path):
    _, pin = token
    r = cli("key", "export", uri(pin, "token=merkle-review;id=%zz"), "-o", str(tmp_path / "pub"))
    assert r.returncode == 2
    assert_one_line_error(r, "attribute 'id' is not percent-encoded")
