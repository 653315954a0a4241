"""`merkle bom` on the real model files: the BOM validates against the CycloneDX schema the library ships
(offline), names every file with the hashes sha256sum and b3sum print, carries the verified card's licenses and
modelCard, and is bound to the signed tree by merkle's properties (docs/bom.md)."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from support.cli import assert_one_line_error, run_cli, statuses


def _validate(doc: dict, spec: str = "1.6") -> None:
    error = JsonStrictValidator(SchemaVersion.from_version(spec)).validate_str(json.dumps(doc))
    assert error is None, error


def _tree(doc: dict) -> dict:
    (tree,) = [c for c in doc["components"] if c["bom-ref"] == "merkle:tree"]
    return tree


def _props(item: dict) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for p in item.get("properties", []):
        out.setdefault(p["name"], []).append(p["value"])
    return out


def _hashes(tree: dict) -> dict[str, dict[str, str]]:
    return {f["name"]: {h["alg"]: h["content"] for h in f.get("hashes", [])} for f in tree["components"]}


def _tool(tool: str, model: Path) -> dict[str, str]:
    """{path: hex} as the real `sha256sum` / `b3sum` print it, over every file of the model."""
    names = sorted(str(p.relative_to(model)) for p in model.rglob("*") if p.is_file())
    out = subprocess.run([tool, *names], cwd=model, capture_output=True, text=True, check=True).stdout
    return {line.split("  ", 1)[1]: line.split("  ", 1)[0] for line in out.splitlines()}


def _statement(bundle: Path) -> dict:
    return json.loads(base64.b64decode(json.loads(bundle.read_text())["dsseEnvelope"]["payload"]))


@pytest.fixture(scope="module")
def verified_bom(signed, tmp_path_factory) -> dict:
    model, key, bundle = signed
    out = tmp_path_factory.mktemp("out") / "bom.json"
    r = run_cli("bom", str(model), str(bundle), "--key", f"{key}.pub", "--sha256", "-o", str(out), "--no-store")
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    return json.loads(out.read_text())


def test_the_bom_validates_and_names_every_file_with_sha256sum_and_b3sum_hashes(signed, verified_bom):
    model, _, _ = signed
    _validate(verified_bom, "1.6")
    assert verified_bom["specVersion"] == "1.6"
    hashes = _hashes(_tree(verified_bom))
    sha256sum, b3sum = _tool("sha256sum", model), _tool("b3sum", model)
    assert sorted(hashes) == sorted(sha256sum) and len(hashes) == 13
    for name, got in hashes.items():
        assert got["SHA-256"] == sha256sum[name] == hashlib.sha256((model / name).read_bytes()).hexdigest(), name
        assert got["BLAKE3"] == b3sum[name], name


def test_the_bom_is_bound_to_the_signed_tree(signed, verified_bom):
    """merkle:root, algorithm and chunk size equal the signed manifest's; each file's merkle:root and size
    equal its entry's."""
    _, _, bundle = signed
    manifest = _statement(bundle)["predicate"]["manifest"]
    props = _props(_tree(verified_bom))
    assert props["merkle:root"] == [manifest["root"]]
    assert props["merkle:algorithm"] == [manifest["algorithm"]] == ["blake3"]
    assert props["merkle:chunkSize"] == [str(manifest["chunk_size"])]
    assert props["merkle:basis"] == ["verified"]
    entries = {f["path"]: f for f in manifest["files"]}
    for f in _tree(verified_bom)["components"]:
        fp = _props(f)
        assert f["type"] == "file"
        assert fp["merkle:root"] == [entries[f["name"]]["root"]]
        assert fp["merkle:size"] == [str(entries[f["name"]]["size"])]


def test_licenses_and_model_card_come_from_the_verified_card(verified_bom):
    tree = _tree(verified_bom)
    assert tree["type"] == "machine-learning-model"
    assert tree["licenses"] == [{"license": {"id": "Apache-2.0"}}]
    card = tree["modelCard"]
    assert card["modelParameters"]["task"] == "sentence-similarity"
    assert {"type": "dataset", "name": "s2orc"} in card["modelParameters"]["datasets"]
    assert {"name": "huggingface:library_name", "value": "sentence-transformers"} in card["properties"]
    assert "merkle:modelCard" not in _props(tree)


def test_cyclonedx_1_7_on_request(signed, tmp_path):
    model, _, _ = signed
    out = tmp_path / "bom.json"
    r = run_cli("bom", str(model), "--spec-version", "1.7", "-o", str(out), "-q")
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    assert doc["specVersion"] == "1.7"
    _validate(doc, "1.7")


def test_path_alone_is_built_by_this_run_and_sha256_is_optional(signed, tmp_path):
    """Without a bundle every fact is this run's own hashing (basis built); without --sha256 no file has a
    whole-file digest (a BLAKE3 tree has none), with it every one has, from the same read."""
    model, _, bundle = signed
    out = tmp_path / "bom.json"
    r = run_cli("bom", str(model), "-o", str(out), "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["basis"] == "built" and summary["sha256"] == 0 and summary["files"] == 13
    doc = json.loads(out.read_text())
    _validate(doc)
    assert all(not h for h in _hashes(_tree(doc)).values())
    assert _props(_tree(doc))["merkle:root"] == [_statement(bundle)["predicate"]["manifest"]["root"]]
    r = run_cli("bom", str(model), "-o", str(out), "--json", "--sha256")
    assert r.returncode == 0 and json.loads(r.stdout)["sha256"] == 13 == json.loads(r.stdout)["blake3"]


def test_a_bundle_alone_describes_what_it_signs_and_reads_no_tree(signed, tmp_path):
    model, key, bundle = signed
    out = tmp_path / "bom.json"
    r = run_cli("bom", str(bundle), "--key", f"{key}.pub", "-o", str(out), "--no-store")
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    _validate(doc)
    tree = _tree(doc)
    assert _props(tree)["merkle:basis"] == ["signed"]
    assert _props(tree)["merkle:modelCard"] == ["not described: no tree given: README.md was not read"]
    assert "licenses" not in tree and "modelCard" not in tree
    r = run_cli("bom", str(bundle), "--key", f"{key}.pub", "--sha256", "-o", str(out), "--no-store")
    assert_one_line_error(r, "--sha256")
    assert r.returncode == 2


def test_a_bundle_that_does_not_verify_writes_no_bom(signed, tmp_path):
    model, key, bundle = signed
    out = tmp_path / "bom.json"
    assert run_cli("keygen", "-o", str(tmp_path / "other")).returncode == 0
    r = run_cli("bom", str(model), str(bundle), "--key", str(tmp_path / "other.pub"), "-o", str(out), "--no-store")
    assert r.returncode == 1 and not out.exists(), r.stderr
    assert_one_line_error(r)
    copy = tmp_path / "model"
    shutil.copytree(model, copy)
    with open(copy / "model.safetensors", "r+b") as f:
        f.seek(1 << 20)
        byte = f.read(1)
        f.seek(1 << 20)
        f.write(bytes([byte[0] ^ 1]))
    r = run_cli("bom", str(copy), str(bundle), "--key", f"{key}.pub", "-o", str(out), "--no-store")
    assert r.returncode == 1 and not out.exists(), r.stderr
    assert statuses(r.stdout) == {"model.safetensors": "*"}
    assert "no BOM written" in r.stderr and "Traceback" not in r.stderr


def test_bad_input_is_one_line_and_writes_nothing(signed, tmp_path):
    model, _, _ = signed
    r = run_cli("bom", str(tmp_path / "nowhere"), "-o", str(tmp_path / "b.json"))
    assert r.returncode == 2 and not (tmp_path / "b.json").exists()
    assert_one_line_error(r, "nowhere")
    r = run_cli("bom", str(model), "-o", str(tmp_path / "no" / "b.json"))
    assert r.returncode == 2
    assert_one_line_error(r, "no directory")
    (tmp_path / "dir.json").mkdir()
    r = run_cli("bom", str(model), "-o", str(tmp_path / "dir.json"))
    assert r.returncode == 2
    assert_one_line_error(r, "dir.json")
    manifest = tmp_path / "m.json"
    assert run_cli("build", str(model), "-o", str(manifest), "-q").returncode == 0
    r = run_cli("bom", str(manifest), "--key", str(manifest), "-o", str(tmp_path / "b.json"))
    assert r.returncode == 2 and not (tmp_path / "b.json").exists()


def test_broken_front_matter_writes_the_bom_without_card_and_says_why(signed, tmp_path):
    """Decided (docs/bom.md B4): the BOM is still written, without modelCard and licenses, and names the
    reason in merkle:modelCard and on stderr."""
    model, _, _ = signed
    copy = tmp_path / "model"
    shutil.copytree(model, copy)
    (copy / "README.md").write_text("---\nlicense: [mit\n---\n# card\n")
    out = tmp_path / "bom.json"
    r = run_cli("bom", str(copy), "-o", str(out))
    assert r.returncode == 0, r.stderr
    tree = _tree(json.loads(out.read_text()))
    assert "licenses" not in tree and "modelCard" not in tree
    (why,) = _props(tree)["merkle:modelCard"]
    assert why.startswith("not described: README.md: front matter is not valid YAML")
    assert "model card not described" in r.stderr


def test_a_card_without_a_license_keeps_its_model_card_and_says_why_there_is_no_license(signed, tmp_path):
    model, _, _ = signed
    copy = tmp_path / "model"
    shutil.copytree(model, copy)
    (copy / "README.md").write_text("---\npipeline_tag: fill-mask\n---\n# card\n")
    out = tmp_path / "bom.json"
    r = run_cli("bom", str(copy), "-o", str(out), "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["model_card"] is True and summary["licenses"] is None
    assert "declares no license" in summary["license_problem"]
    tree = _tree(json.loads(out.read_text()))
    assert tree["modelCard"]["modelParameters"] == {"task": "fill-mask"} and "licenses" not in tree
    props = _props(tree)
    assert "merkle:modelCard" not in props and props["merkle:licenses"][0].startswith("not described: README.md")
