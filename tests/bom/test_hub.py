"""A Hugging Face cache folder: the purl names the Hub repository at its commit, an LFS file's signed Hub
identity is its SHA-256 without a second read, `other:NAME` stays distinct; a dataset repository is `data`."""

from __future__ import annotations

import hashlib
import json

import pytest
from support import hf_layout
from support.cli import run_cli


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    d = tmp_path_factory.mktemp("hub")
    src = d / "src"
    src.mkdir()
    (src / "config.json").write_text('{"a": 1}\n')
    (src / "weights.bin").write_bytes(bytes(range(256)) * 4096)
    (src / "README.md").write_text("---\nlicense: other\nlicense_name: MIT\npipeline_tag: fill-mask\n---\n# tiny\n")
    info = hf_layout.make_git_repo(src, d / "repo", lfs_patterns=["*.bin"])
    model = hf_layout.make_cache(d / "cache", "Org/Tiny", info)
    data = hf_layout.make_cache(d / "dcache", "org/rows", info, repo_type="dataset")
    assert run_cli("keygen", "-o", str(d / "k")).returncode == 0
    return d, src, model, data


def _tree(path):
    doc = json.loads(path.read_text())
    (tree,) = doc["components"]
    return tree


def test_purl_licenses_and_signed_lfs_sha256(hub):
    d, src, model, _ = hub
    bundle = d / "b.json"
    r = run_cli("build", str(model.repo_folder), "--sign", str(d / "k"), "-o", str(bundle), "--no-store")
    assert r.returncode == 0, r.stderr
    out = d / "bom.json"
    r = run_cli("bom", str(bundle), "--key", str(d / "k.pub"), "-o", str(out), "--no-store")
    assert r.returncode == 0, r.stderr
    tree = _tree(out)
    assert tree["purl"] == f"pkg:huggingface/Org/Tiny@{model.commit}"
    assert (tree["group"], tree["name"], tree["version"]) == ("Org", "Tiny", model.commit)
    hashes = {f["name"]: {h["alg"]: h["content"] for h in f.get("hashes", [])} for f in tree["components"]}
    # Signed with the manifest (the Hub's LFS identity): no read of the tree, no --sha256.
    assert hashes["weights.bin"] == {"SHA-256": hashlib.sha256((src / "weights.bin").read_bytes()).hexdigest()}
    assert hashes["config.json"] == {}
    r = run_cli("bom", str(model.repo_folder), str(bundle), "--key", str(d / "k.pub"), "-o", str(out), "--no-store")
    assert r.returncode == 0, r.stderr
    tree = _tree(out)
    # `license: other` named MIT is not the SPDX MIT.
    assert tree["licenses"] == [{"license": {"name": "other:mit"}}]
    assert tree["modelCard"]["modelParameters"]["task"] == "fill-mask"


def test_a_dataset_repository_is_data_without_a_model_purl(hub):
    d, _, _, data = hub
    out = d / "data.json"
    r = run_cli("bom", str(data.repo_folder), "-o", str(out))
    assert r.returncode == 0, r.stderr
    tree = _tree(out)
    assert tree["type"] == "data" and "purl" not in tree and "modelCard" not in tree
    props = {p["name"]: p["value"] for p in tree["properties"]}
    assert props["merkle:origin:repo"] == "org/rows" and props["merkle:origin:repoType"] == "dataset"


def test_a_signed_bom_of_a_cache_folder_checks_its_snapshot(hub):
    """The BOM records the origin, so --check reads the cache folder as the tree check did (its snapshot)."""
    d, _, model, _ = hub
    signed = d / "cache-bom.bundle"
    r = run_cli("bom", str(model.repo_folder), "--sha256", "--sign", str(d / "k"), "-o", str(signed), "--no-store")
    assert r.returncode == 0, r.stderr
    r = run_cli("bom", str(model.repo_folder), "--check", str(signed), "--key", str(d / "k.pub"), "--no-store")
    assert r.returncode == 0, r.stderr + r.stdout
    assert sorted(r.stdout.split()) == sorted(["=", ".gitattributes", "=", "README.md", "=", "config.json", "=",
                                               "weights.bin"])  # fmt: skip
