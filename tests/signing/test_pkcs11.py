"""Signing with keys on a PKCS#11 token (issue 23): a real software token,
SoftHSM2 from Debian's packages, initialised here with softhsm2-util in a
folder of the test's own (SOFTHSM2_CONF), keys generated on the token, not
extractable.  Bundles signed through the token verify with the exported
public key, through merkle and (OpenSSF format) through model-signing's own
CLI; a wrong PIN, a missing token or object, a PIN on the command line and
a key of a type merkle does not sign with are each one line, exit 2, and
nothing written."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from support import softhsm
from support.cli import assert_one_line_error, run_model_signing

pytest.importorskip("pkcs11")

MODULE = softhsm.MODULE
if not softhsm.AVAILABLE:
    pytest.skip(
        "SoftHSM2 is not installed (scripts/test installs it: apt-get install softhsm2)", allow_module_level=True
    )

PIN = "246810"
KEYGEN = """
import sys, pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.util.ec import encode_named_curve_parameters
lib = pkcs11.lib(sys.argv[1])
token = lib.get_token(token_label="merkle-test")
private = {Attribute.EXTRACTABLE: False, Attribute.SENSITIVE: True, Attribute.TOKEN: True}
with token.open(rw=True, user_pin=sys.argv[2]) as s:
    for label, curve in (("p256", "secp256r1"), ("p384", "secp384r1")):
        params = s.create_domain_parameters(
            KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters(curve)}, local=True)
        params.generate_keypair(store=True, label=label, id=label.encode(), private_template=private)
    params = s.create_domain_parameters(
        KeyType.EC_EDWARDS, {Attribute.EC_PARAMS: encode_named_curve_parameters("1.3.101.112")}, local=True)
    params.generate_keypair(store=True, label="ed", id=b"ed", mechanism=Mechanism.EC_EDWARDS_KEY_PAIR_GEN,
                            private_template=private)
    s.generate_keypair(KeyType.RSA, 2048, store=True, label="rsa", id=b"rsa")
    params = s.create_domain_parameters(
        KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")}, local=True)
    public, _ = params.generate_keypair(store=True, label="lonely", id=b"lonely", private_template=private)
    public.destroy()
    extractable = s.get_key(object_class=ObjectClass.PRIVATE_KEY, label="p256")[Attribute.EXTRACTABLE]
    print("extractable" if extractable else "sealed")
"""


@pytest.fixture(scope="module")
def token(tmp_path_factory):
    """A SoftHSM2 token of this module's own, with keys made on it; the
    environment (SOFTHSM2_CONF) every child process of these tests reads."""
    home = tmp_path_factory.mktemp("softhsm")
    with softhsm.token(home, "merkle-test", PIN, KEYGEN) as (pin, said):
        assert said == "sealed", said  # the private keys cannot leave the token
        yield home, pin


def uri(pin: Path | None, label: str = "p256", token_label: str = "merkle-test", **query: str) -> str:
    q = {"module-path": MODULE, **({"pin-source": f"file:{pin}"} if pin else {}), **query}
    return f"pkcs11:token={token_label};object={label}?" + "&".join(f"{k}={v}" for k, v in q.items())


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("label", ["p256", "p384", "ed"])
def test_sign_with_the_token_and_verify_with_the_exported_key(cli, token, model_dir, tmp_path, label):
    _, pin = token
    key = uri(pin, label)
    pub = tmp_path / "token.pub"
    r = cli("key", "export", key, "-o", str(pub))
    assert r.returncode == 0, r.stderr
    assert pub.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    out = tmp_path / "out"
    out.mkdir()
    before = files_under(tmp_path)
    r = cli("build", str(model_dir), "--sign", key, "-o", str(out / "m.bundle.json"), "-q")
    assert r.returncode == 0, r.stderr
    # What signing wrote: the bundle and its sidecar, and the attestation store; no key material anywhere.
    new = files_under(tmp_path) - before
    assert {n for n in new if not n.startswith("store/")} <= {"out/m.bundle.json", "out/m.bundle.json.leaves"}
    r = cli("verify", str(model_dir), str(out / "m.bundle.json"), "--key", str(pub))
    assert r.returncode == 0, r.stderr
    # The same public key as a file signer's: a bundle signed by another key does not verify with it.
    assert cli("keygen", "-o", str(tmp_path / "other")).returncode == 0
    r = cli("verify", str(model_dir), str(out / "m.bundle.json"), "--key", str(tmp_path / "other.pub"))
    assert r.returncode == 1


def test_openssf_bundle_signed_on_the_token_verifies_with_model_signing(cli, token, model_dir, tmp_path):
    _, pin = token
    pub = tmp_path / "token.pub"
    assert cli("key", "export", uri(pin), "-o", str(pub)).returncode == 0
    bundle = tmp_path / "oms.sig"
    r = cli("build", str(model_dir), "--sign", uri(pin), "--format", "oms", "-o", str(bundle), "-q")
    assert r.returncode == 0, r.stderr
    done = run_model_signing("verify", "key", "--signature", str(bundle), "--public_key", str(pub), str(model_dir))
    assert done.returncode == 0, done.stdout + done.stderr
    assert cli("verify", str(model_dir), str(bundle), "--key", str(pub)).returncode == 0


def test_sign_command_and_pin_from_the_environment(cli, token, model_dir, tmp_path, monkeypatch):
    _, pin = token
    manifest = tmp_path / "m.json"
    assert cli("build", str(model_dir), "-o", str(manifest), "-q").returncode == 0
    monkeypatch.setenv("MERKLE_PKCS11_PIN", PIN)
    r = cli("sign", str(manifest), "--key", uri(None, "ed"), "-o", str(tmp_path / "s.bundle.json"))
    assert r.returncode == 0, r.stderr
    assert cli("key", "export", uri(None, "ed"), "-o", str(tmp_path / "ed.pub")).returncode == 0
    r = cli("verify", str(model_dir), str(tmp_path / "s.bundle.json"), "--key", str(tmp_path / "ed.pub"))
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("wrong-pin", "wrong PIN for token 'merkle-test'"),
        ("no-token", "no token matching label='absent'"),
        ("no-object", "no private key on the token matches"),
        ("pin-on-command-line", "a PIN in the URI is on the command line"),
        ("no-pin", "needs a PIN"),
        ("bad-module", "cannot load the PKCS#11 module"),
        ("rsa", "key type"),
        ("no-public-key", "no public key or certificate"),
        ("unknown-attribute", "unknown PKCS#11 URI attribute 'colour'"),
    ],
)
def test_bad_keys_are_one_line_and_nothing_is_written(cli, token, model_dir, tmp_path, case, needle):
    home, pin = token
    bad_pin = tmp_path / "bad-pin"
    bad_pin.write_text("000000\n")
    bad_pin.chmod(0o600)
    key = {
        "wrong-pin": uri(bad_pin),
        "no-token": uri(pin, token_label="absent"),
        "no-object": uri(pin, "absent"),
        "pin-on-command-line": uri(None, **{"pin-value": PIN}),
        "no-pin": uri(None),
        "bad-module": uri(pin, **{"module-path": str(home / "softhsm2.conf")}),
        "rsa": uri(pin, "rsa"),
        "no-public-key": uri(pin, "lonely"),
        "unknown-attribute": uri(pin) + "&colour=blue",
    }[case]
    out = tmp_path / "out"
    out.mkdir()
    r = cli("build", str(model_dir), "--sign", key, "-o", str(out / "b.json"), "-q")
    assert r.returncode == 2, r.stderr
    assert_one_line_error(r, needle)
    assert PIN not in r.stderr  # a PIN is never repeated into a log
    assert list(out.iterdir()) == []


def test_the_pin_is_asked_for_on_a_terminal_and_never_echoed(token, tmp_path, monkeypatch):
    """No pin-source and no $MERKLE_PKCS11_PIN: on a terminal (a real
    pseudo-terminal here) merkle prompts, reads the PIN without echo, and
    signs; what the terminal shows never holds the PIN."""
    import pty
    import select
    import time

    monkeypatch.delenv("MERKLE_PKCS11_PIN", raising=False)
    pub = tmp_path / "tty.pub"
    pid, fd = pty.fork()
    if pid == 0:  # the child: the real program, its stdin and stdout the terminal
        os.execv(sys.executable, [sys.executable, "-m", "merkle", "key", "export", uri(None), "-o", str(pub)])
    seen = b""
    answered = False
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:  # the child closed the terminal: it has ended
                    break
                if not chunk:
                    break
                seen += chunk
            if not answered and b"PIN for token 'merkle-test'" in seen:
                os.write(fd, PIN.encode() + b"\n")
                answered = True
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    assert answered, seen
    assert os.waitstatus_to_exitcode(status) == 0, seen
    assert PIN.encode() not in seen
    assert pub.read_text().startswith("-----BEGIN PUBLIC KEY-----")
