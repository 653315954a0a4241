"""--sign and --check: a BOM signed as an in-toto statement (predicate type https://cyclonedx.org/bom), kept in
the store, checked against a tree; and the attacks on it (docs/threat-model.md, "The ML-BOM")."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest
from support.cli import assert_one_line_error, run_cli, statuses


@pytest.fixture(scope="module")
def signed_bom(signed, tmp_path_factory) -> tuple[Path, Path]:
    """(signed BOM bundle, its store): made from the model verified against its bundle, with --sha256."""
    model, key, bundle = signed
    d = tmp_path_factory.mktemp("signed-bom")
    out, store = d / "bom.bundle", d / "store"
    r = run_cli("bom", str(model), str(bundle), "--key", f"{key}.pub", "--sha256", "--sign", str(key),
                "-o", str(out), "--store", str(store))  # fmt: skip
    assert r.returncode == 0, r.stderr
    return out, store


def _payload(bundle: Path) -> dict:
    return json.loads(base64.b64decode(json.loads(bundle.read_text())["dsseEnvelope"]["payload"]))


def test_a_signed_bom_is_an_in_toto_statement_kept_in_the_store(signed, signed_bom):
    _, _, bundle = signed
    out, store = signed_bom
    statement = _payload(out)
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == "https://cyclonedx.org/bom"
    assert statement["predicate"]["bomFormat"] == "CycloneDX"
    root = _payload(bundle)["predicate"]["manifest"]["root"]
    assert statement["subject"] == [{"name": "model", "digest": {"merkle-blake3": root}}]
    r = run_cli("store", "list", "--store", str(store), "--json")
    assert sorted(b["kind"] for b in json.loads(r.stdout)) == ["bom", "merkle"]


def test_check_verifies_the_signature_then_every_claim_against_the_tree(signed, signed_bom):
    model, key, _ = signed
    out, _ = signed_bom
    r = run_cli("bom", str(model), "--check", str(out), "--key", f"{key}.pub", "--no-store")
    assert r.returncode == 0, r.stderr
    assert set(statuses(r.stdout).values()) == {"="} and len(statuses(r.stdout)) == 13
    assert "a signed BOM" in r.stderr


def test_a_tree_writer_is_caught_by_the_check(signed, signed_bom, tmp_path):
    """Threat: a writer changes a file after the BOM was signed (one flipped byte, or an extra file)."""
    model, key, _ = signed
    out, _ = signed_bom
    copy = tmp_path / "model"
    shutil.copytree(model, copy)
    with open(copy / "model.safetensors", "r+b") as f:
        f.seek(12345)
        byte = f.read(1)
        f.seek(12345)
        f.write(bytes([byte[0] ^ 0x80]))
    (copy / "extra.bin").write_bytes(b"x")
    r = run_cli("bom", str(copy), "--check", str(out), "--key", f"{key}.pub", "--no-store")
    assert r.returncode == 1, r.stderr
    got = statuses(r.stdout)
    assert got["model.safetensors"] == "*" and got["extra.bin"] == "+" and got["config.json"] == "="


def test_a_signed_bom_is_not_a_manifest(signed, signed_bom):
    model, key, _ = signed
    out, _ = signed_bom
    r = run_cli("verify", str(model), str(out), "--key", f"{key}.pub", "--no-store")
    assert r.returncode == 2
    assert_one_line_error(r, "a signed BOM", "merkle bom --check")
    r = run_cli("bom", str(out), "--key", f"{key}.pub", "-o", "-", "--no-store")
    assert r.returncode == 2
    assert_one_line_error(r, "a signed BOM")


def test_a_forged_bom_fails_its_signature(signed, signed_bom, tmp_path):
    """Threat: a forged modelCard or license edited into a signed BOM: the signature no longer verifies."""
    model, key, _ = signed
    out, _ = signed_bom
    doc = json.loads(out.read_text())
    statement = _payload(out)
    statement["predicate"]["components"][0]["licenses"] = [{"license": {"id": "MIT"}}]
    doc["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    forged = tmp_path / "forged.bundle"
    forged.write_text(json.dumps(doc))
    r = run_cli("bom", str(model), "--check", str(forged), "--key", f"{key}.pub", "--no-store")
    assert r.returncode == 1
    assert_one_line_error(r, "signature")


def _sign_bom(statement: dict, key: Path, out: Path) -> None:
    from merkle.signing import statements
    from merkle.signing.envelope import Statement
    from merkle.signing.keys import load_private_key

    stmt = Statement(
        tuple((s["name"], s["digest"]) for s in statement["subject"]),
        statement["predicateType"],
        statement["predicate"],
    )
    out.write_bytes(statements.sign_statement(stmt, load_private_key(str(key))).to_json())


def test_a_bom_that_does_not_describe_its_subject_is_refused(signed, signed_bom, tmp_path):
    """Threat: a BOM signed by a trusted key whose file list is not the signed tree (a file's root swapped,
    or a SHA-256 that is not the file's): the first fails as a claim, the second as that file's check."""
    model, key, _ = signed
    out, _ = signed_bom
    statement = _payload(out)
    files = statement["predicate"]["components"][0]["components"]
    config = next(f for f in files if f["name"] == "config.json")
    good = json.loads(json.dumps(statement))
    for p in config["properties"]:
        if p["name"] == "merkle:root":
            p["value"] = "00" * 32
    bad = tmp_path / "bad.bundle"
    _sign_bom(statement, key, bad)
    r = run_cli("bom", str(model), "--check", str(bad), "--key", f"{key}.pub", "--no-store")
    assert r.returncode == 1
    assert_one_line_error(r, "do not add up to its merkle:root")
    files = good["predicate"]["components"][0]["components"]
    config = next(f for f in files if f["name"] == "config.json")
    for h in config["hashes"]:
        if h["alg"] == "SHA-256":
            h["content"] = "11" * 32
    _sign_bom(good, key, bad)
    r = run_cli("bom", str(model), "--check", str(bad), "--key", f"{key}.pub", "--no-store")
    assert r.returncode == 1, r.stderr
    assert statuses(r.stdout)["config.json"] == "*" and "SHA-256 differs" in r.stdout


def test_an_older_bundle_is_refused_once_a_newer_one_was_seen(signed, tmp_path):
    """Threat: an older signed version of the tree (rollback): the store's records refuse it before any BOM."""
    model, key, _ = signed
    store = tmp_path / "store"
    v1, v2 = tmp_path / "v1.json", tmp_path / "v2.json"
    for version, out in (("1", v1), ("2", v2)):
        r = run_cli("build", str(model), "--sign", str(key), "--version", version, "-o", str(out), "--no-store")
        assert r.returncode == 0, r.stderr
    r = run_cli("bom", str(v2), "--key", f"{key}.pub", "--store", str(store), "-o", str(tmp_path / "b2.json"))
    assert r.returncode == 0, r.stderr
    r = run_cli("bom", str(v1), "--key", f"{key}.pub", "--store", str(store), "-o", str(tmp_path / "b1.json"))
    assert r.returncode == 1 and not (tmp_path / "b1.json").exists()
    assert_one_line_error(r, "rollback")
