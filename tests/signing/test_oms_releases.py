"""Bundles written by older releases of OpenSSF model-signing (0.2.0, 0.3.1,
1.0.0, 1.0.1, and 1.1.1 for reference) verify with merkle, as OMS 11.1
requires of verifiers (issue 18, item 4).  The bundles were made by those
real releases (tests/fixtures/oms-releases/README.md records each command);
the model they sign is laid out here from make_model.py.  Each also fails
when a file changes, and with another key."""

from __future__ import annotations

import base64
import importlib.util
import json
from pathlib import Path

import pytest
from support.cli import assert_one_line_error, run_cli

from merkle.signing.envelope import LEGACY_PREDICATE_TYPE, PAYLOAD_TYPE, legacy_pae
from merkle.signing.keys import load_private_key, sign_bytes

FIXTURES = Path(__file__).parents[1] / "fixtures" / "oms-releases"
CASES = json.loads((FIXTURES / "manifest.json").read_text())
_spec = importlib.util.spec_from_file_location("make_model", FIXTURES / "make_model.py")
assert _spec is not None and _spec.loader is not None
make_model = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_model)


def _trust(case: dict) -> list[str]:
    if case["kind"] == "key":
        return ["--key", str(FIXTURES / case["public_key"])]
    return [arg for root in case["root_certs"] for arg in ("--ca", str(FIXTURES / root))]


def _verify(case: dict, tmp_path: Path, *extra: str):
    make_model.write_model(tmp_path / "tiny-model")
    target = tmp_path / case["model_path"]
    return target, run_cli("verify", str(target), str(FIXTURES / case["file"]), *_trust(case), "--no-store", *extra)


def test_every_release_is_covered():
    releases = {c["release"] for c in CASES}
    assert {"0.2.0", "0.3.1", "1.0.0", "1.0.1"} <= releases, releases
    assert {c["kind"] for c in CASES} == {"key", "certificate"}
    assert any(c["predicate_type"] == LEGACY_PREDICATE_TYPE for c in CASES)
    assert any(c["single_file"] for c in CASES)


@pytest.mark.parametrize("case", CASES, ids=[c["file"] for c in CASES])
def test_older_release_bundle_verifies(case, tmp_path):
    target, r = _verify(case, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "OpenSSF" in r.stderr
    # Its bytes count: one changed byte fails the bundle, as it fails model_signing.
    changed = target if case["single_file"] else target / "config.json"
    changed.write_bytes(changed.read_bytes() + b" ")
    r = run_cli("verify", str(target), str(FIXTURES / case["file"]), *_trust(case), "--no-store")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "*" in r.stdout


@pytest.mark.parametrize("case", [c for c in CASES if c["kind"] == "key"][:3], ids=lambda c: c["file"])
def test_older_release_bundle_with_another_key_fails(case, tmp_path):
    other = tmp_path / "other"
    assert run_cli("keygen", "-o", str(other)).returncode == 0
    make_model.write_model(tmp_path / "tiny-model")
    r = run_cli("verify", str(tmp_path / case["model_path"]), str(FIXTURES / case["file"]), "--key", f"{other}.pub")
    assert r.returncode == 1
    assert_one_line_error(r, case["file"].split("/")[-1], "signature")


def test_legacy_encoding_is_accepted_for_legacy_statements_only(tmp_path):
    """model-signing 0.2's PAE bug is accepted for its own statement type: a
    signature over that encoding of a current statement does not verify."""
    key_path = tmp_path / "k"
    assert run_cli("keygen", "-o", str(key_path)).returncode == 0
    key = load_private_key(str(key_path))
    make_model.write_model(tmp_path / "tiny-model")
    stmt = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "tiny-model", "digest": {"sha256": "00" * 32}}],
        "predicateType": "https://model_signing/signature/v1.0",
        "predicate": {"resources": [], "serialization": {"method": "files", "hash_type": "sha256"}},
    }
    legacy_case = next(c for c in CASES if c["predicate_type"] == LEGACY_PREDICATE_TYPE and c["kind"] == "key")
    legacy_payload = base64.b64decode(
        json.loads((FIXTURES / legacy_case["file"]).read_text())["dsseEnvelope"]["payload"]
    )
    for payload, code in ((json.dumps(stmt).encode(), 1), (legacy_payload, 0)):
        bundle = {
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {"publicKey": {"hint": ""}},
            "dsseEnvelope": {
                "payload": base64.b64encode(payload).decode(),
                "payloadType": PAYLOAD_TYPE,
                "signatures": [{"sig": base64.b64encode(sign_bytes(key, legacy_pae(PAYLOAD_TYPE, payload))).decode()}],
            },
        }
        path = tmp_path / "b.json"
        path.write_text(json.dumps(bundle))
        r = run_cli("verify", str(tmp_path / "tiny-model"), str(path), "--key", f"{key_path}.pub", "--no-store")
        if payload is legacy_payload:  # a 0.2 statement under 0.2's encoding: it verifies, files and all
            assert r.returncode == 0, r.stdout + r.stderr
        else:
            assert r.returncode == code
            assert_one_line_error(r, "b.json", "signature does not verify")


def test_a_legacy_statement_is_no_way_around_rollback_records(tmp_path):
    """model-signing 0.2's statement names no model, so it could stand for
    any: once a versioned statement from the same key was verified, it is
    refused (V6), as an unversioned OpenSSF 1.0 statement is."""
    case = next(c for c in CASES if c["predicate_type"] == LEGACY_PREDICATE_TYPE and c["kind"] == "key")
    model = make_model.write_model(tmp_path / "tiny-model")
    store = tmp_path / "store"
    legacy = [str(model), str(FIXTURES / case["file"]), "--key", str(FIXTURES / case["public_key"])]
    r = run_cli("verify", *legacy, "--store", str(store))
    assert r.returncode == 0, r.stderr
    assert "model-signing 0.2 encoding" in r.stderr  # the signer line says what verified
    private = FIXTURES / "keys" / "TEST-ONLY-ec-p256-private.pem"
    v2 = tmp_path / "v2.json"
    r = run_cli("build", str(model), "--sign", str(private), "--version", "2", "-o", str(v2), "--store", str(store))
    assert r.returncode == 0, r.stderr
    r = run_cli("verify", str(model), str(v2), "--key", str(FIXTURES / case["public_key"]), "--store", str(store))
    assert r.returncode == 0, r.stderr
    r = run_cli("verify", *legacy, "--store", str(store))
    assert r.returncode == 1
    assert_one_line_error(r, "rollback", "0.2")


def test_a_large_payload_is_not_tried_with_the_legacy_encoding(tmp_path):
    """0.2's encoding costs up to four times the payload per trusted key: a
    forged bundle carrying its type string in a large payload is refused
    without building it."""
    from merkle.signing.envelope import MAX_LEGACY_PAYLOAD, Bundle

    big = b'{"predicateType":"' + LEGACY_PREDICATE_TYPE.encode() + b'","x":"' + b"a" * MAX_LEGACY_PAYLOAD + b'"}'
    assert Bundle(big, PAYLOAD_TYPE, b"sig").legacy_signed_bytes() is None
    small = big[:1000] + b'"}'
    assert Bundle(small, PAYLOAD_TYPE, b"sig").legacy_signed_bytes() == legacy_pae(PAYLOAD_TYPE, small)


@pytest.mark.parametrize("keyid", [0, False, [], {}, 1])
def test_a_keyid_must_be_a_string_or_null(tmp_path, keyid):
    case = CASES[0]
    doc = json.loads((FIXTURES / case["file"]).read_text())
    doc["dsseEnvelope"]["signatures"][0]["keyid"] = keyid
    path = tmp_path / "b.json"
    path.write_text(json.dumps(doc))
    make_model.write_model(tmp_path / "tiny-model")
    r = run_cli("verify", str(tmp_path / case["model_path"]), str(path), *_trust(case), "--no-store")
    assert r.returncode == 1
    assert_one_line_error(r, "b.json", "keyid")
