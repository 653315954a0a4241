"""An OpenSSF model-signing bundle: every file's SHA-256 is signed, so the BOM has them with no read; its
merkle:root is the statement's subject digest; a signed BOM of it is checked with the statement's own rules."""

from __future__ import annotations

import hashlib
import json
import shutil

from support.cli import run_cli, statuses


def test_an_openssf_bundle_gives_every_sha256_and_checks(signed, tmp_path):
    model, key, _ = signed
    bundle = tmp_path / "oms.sig"
    r = run_cli("build", str(model), "--sign", str(key), "--format", "oms", "-o", str(bundle), "--no-store")
    assert r.returncode == 0, r.stderr
    out = tmp_path / "bom.json"
    r = run_cli("bom", str(bundle), "--key", f"{key}.pub", "-o", str(out), "--no-store")
    assert r.returncode == 0, r.stderr
    (tree,) = json.loads(out.read_text())["components"]
    props = {p["name"]: p["value"] for p in tree["properties"]}
    assert props["merkle:format"] == "oms" and props["merkle:digestKey"] == "sha256"
    payload = json.loads(__import__("base64").b64decode(json.loads(bundle.read_text())["dsseEnvelope"]["payload"]))
    assert props["merkle:root"] == payload["subject"][0]["digest"]["sha256"]
    for f in tree["components"]:
        (h,) = f["hashes"]
        assert h == {"alg": "SHA-256", "content": hashlib.sha256((model / f["name"]).read_bytes()).hexdigest()}
    signed_bom = tmp_path / "bom.bundle"
    r = run_cli("bom", str(model), str(bundle), "--key", f"{key}.pub", "--sign", str(key), "-o", str(signed_bom),
                "--no-store")  # fmt: skip
    assert r.returncode == 0, r.stderr
    r = run_cli("bom", str(model), "--check", str(signed_bom), "--key", f"{key}.pub", "--no-store")
    assert r.returncode == 0, r.stderr
    copy = tmp_path / "model"
    shutil.copytree(model, copy)
    (copy / "config.json").write_text("{}\n")
    r = run_cli("bom", str(copy), "--check", str(signed_bom), "--key", f"{key}.pub", "--no-store")
    assert r.returncode == 1 and statuses(r.stdout)["config.json"] == "*", r.stdout
