"""`merkle verify oci:DIR[:TAG] BUNDLE --key PUB --model PATH` and `docker-archive:FILE` (docs/images.md I10): a
real image made by umoci from the real model files verifies against the model's own signed bundle; a changed model
file exits 1 naming the file and the layer; a manifest re-pointed to another layer exits 1."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from support import hf_layout
from support import oci as o
from support.cli import assert_one_line_error, run_cli, statuses

MODEL = "/models/minilm"


@pytest.fixture(scope="module")
def signed(tmp_path_factory) -> tuple[Path, Path, Path, Path]:
    """(model folder, bundle, public key, image made by umoci)."""
    d = tmp_path_factory.mktemp("signed")
    shutil.copytree(hf_layout.model_dir(), d / "minilm")
    assert run_cli("keygen", "-o", str(d / "k")).returncode == 0
    r = run_cli("build", str(d / "minilm"), "--sign", str(d / "k"), "-o", str(d / "b.json"), "--no-store")
    assert r.returncode == 0, r.stderr
    return d / "minilm", d / "b.json", d / "k.pub", o.umoci_image(d, d / "minilm", MODEL)


def verify(target: str, bundle: Path, key: Path, *extra: str):
    return run_cli("verify", target, str(bundle), "--key", str(key), "--model", MODEL, "--no-store", *extra)


def test_the_image_carries_exactly_the_signed_model(signed, tmp_path):
    model, bundle, key, image = signed
    r = verify(f"oci:{image}:v1", bundle, key, "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["image"]["digest"] == json.loads(o.run("skopeo", "inspect", f"oci:{image}:v1"))["Digest"]
    assert {f["path"] for f in doc["files"]} == {p.relative_to(model).as_posix() for p in model.rglob("*")
                                                 if p.is_file()}  # fmt: skip
    archive = tmp_path / "img.tar"
    o.run("skopeo", "copy", f"oci:{image}:v1", f"docker-archive:{archive}:minilm:v1")
    r = verify(f"docker-archive:{archive}", bundle, key)
    assert r.returncode == 0, r.stdout + r.stderr


def _changed_image(model: Path, work: Path) -> Path:
    changed = work / "minilm"
    shutil.copytree(model, changed)
    text = (changed / "config.json").read_bytes()
    (changed / "config.json").write_bytes(text.replace(b"{", b"{ ", 1)[:-1])  # same size, other bytes
    return o.umoci_image(work, changed, MODEL)


def test_a_changed_model_file_names_the_file_and_the_layer(signed, tmp_path):
    model, bundle, key, _ = signed
    image = _changed_image(model, tmp_path)
    r = verify(f"oci:{image}:v1", bundle, key)
    assert r.returncode == 1
    assert statuses(r.stdout)["config.json"] == "*"
    (line,) = [ln for ln in r.stdout.splitlines() if "config.json" in ln and ln.startswith("*")]
    index = json.loads((image / "index.json").read_text())
    manifest = json.loads((image / "blobs/sha256" / index["manifests"][0]["digest"].split(":")[1]).read_text())
    assert manifest["layers"][-1]["digest"] in line


def test_a_manifest_repointed_to_another_layer(signed, tmp_path):
    """The index and manifest rewritten (as anyone who can write the layout can): the model comes from the
    other layer, and the model's own signature finds it."""
    model, bundle, key, image = signed
    other = _changed_image(model, tmp_path / "other")
    work = tmp_path / "img"
    shutil.copytree(image, work)
    index = json.loads((work / "index.json").read_text())
    manifest_path = work / "blobs/sha256" / index["manifests"][0]["digest"].split(":")[1]
    manifest = json.loads(manifest_path.read_text())
    other_index = json.loads((other / "index.json").read_text())
    other_manifest = json.loads((other / "blobs/sha256" / other_index["manifests"][0]["digest"].split(":")[1])
                                .read_text())  # fmt: skip
    layer = other_manifest["layers"][-1]
    shutil.copy(other / "blobs/sha256" / layer["digest"].split(":")[1], work / "blobs/sha256")
    manifest["layers"][-1] = layer
    data = json.dumps(manifest).encode()
    digest = hashlib.sha256(data).hexdigest()
    (work / "blobs/sha256" / digest).write_bytes(data)
    index["manifests"][0].update({"digest": f"sha256:{digest}", "size": len(data)})
    (work / "index.json").write_text(json.dumps(index))
    r = verify(f"oci:{work}:v1", bundle, key)
    assert r.returncode == 1
    assert statuses(r.stdout)["config.json"] == "*"


def test_usage_errors(signed):
    _, bundle, key, image = signed
    r = run_cli("verify", f"oci:{image}:v1", str(bundle), "--key", str(key), "--no-store")
    assert r.returncode == 2
    assert_one_line_error(r, "--model")
    r = run_cli("verify", str(image), str(bundle), "--key", str(key), "--model", MODEL, "--no-store")
    assert r.returncode == 2
    assert_one_line_error(r, "oci:DIR")
    r = verify(f"oci:{image}:nope", bundle, key)
    assert r.returncode == 2
    assert_one_line_error(r, "nope")
