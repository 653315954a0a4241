"""The model inside an image (docs/images.md): the real model files put in a real image by `umoci`, copied to a
docker archive by `skopeo`, checked straight from the layer tars against the model's own manifest; a changed byte
names the file and the layer; whiteouts, links and `..` entries in hand-written layers."""

from __future__ import annotations

import gzip
import json
import shutil
import tarfile
from pathlib import Path

import pytest
from support import hf_layout
from support import oci as o
from support.cli import run_cli

from merkle.format.manifest import Manifest
from merkle.image import open_image
from merkle.image.layers import verify_model
from merkle.image.oci import check_blobs
from merkle.report import Status

MODEL_PATH = "/models/minilm"


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> tuple[Path, Manifest]:
    d = tmp_path_factory.mktemp("model")
    shutil.copytree(hf_layout.model_dir(), d / "minilm")
    r = run_cli("build", str(d / "minilm"), "-o", str(d / "m.json"))
    assert r.returncode == 0, r.stderr
    return d / "minilm", Manifest.from_json((d / "m.json").read_bytes())


@pytest.fixture(scope="module")
def image(tmp_path_factory, model) -> Path:
    return o.umoci_image(tmp_path_factory.mktemp("img"), model[0], MODEL_PATH)


def statuses(report) -> dict[str, str]:
    return {x.path: x.status.name for x in report.outcomes if x.status is not Status.OK}


def test_a_real_image_carries_exactly_the_signed_model(image, model):
    with open_image(f"oci:{image}:v1") as img:
        assert img.digest == json.loads(o.run("skopeo", "inspect", f"oci:{image}:v1"))["Digest"]
        assert all(x.status is Status.OK for x in check_blobs(img))
        report = verify_model(img, MODEL_PATH, model[1])
    assert report.ok, statuses(report)
    assert {x.path for x in report.outcomes} == {f.path for f in model[1].files}


def test_the_same_image_as_a_docker_archive(image, model, tmp_path):
    archive = tmp_path / "img.tar"
    o.run("skopeo", "copy", f"oci:{image}:v1", f"docker-archive:{archive}:minilm:v1")
    with open_image(f"docker-archive:{archive}") as img:
        assert all(x.status is Status.OK for x in check_blobs(img))
        assert verify_model(img, MODEL_PATH, model[1]).ok


def test_a_changed_byte_in_the_model_names_the_file_and_the_layer(model, tmp_path):
    changed = tmp_path / "minilm"
    shutil.copytree(model[0], changed)
    with open(changed / "config.json", "r+b") as f:
        b = f.read(1)
        f.seek(0)
        f.write(bytes([b[0] ^ 1]))
    image = o.umoci_image(tmp_path, changed, MODEL_PATH)
    with open_image(f"oci:{image}:v1") as img:
        report = verify_model(img, MODEL_PATH, model[1])
        layer = img.layers[-1].digest
    assert statuses(report) == {"config.json": "MISMATCH"}
    (bad,) = [x for x in report.outcomes if x.path == "config.json"]
    assert layer in bad.detail


def test_a_flipped_byte_in_a_layer_blob_is_a_layer_mismatch(image, model, tmp_path):
    work = tmp_path / "img"
    shutil.copytree(image, work)
    with open_image(f"oci:{work}:v1") as img:
        layer = img.layers[-1]
    path = work / "blobs" / "sha256" / layer.digest.split(":")[1]
    data = bytearray(gzip.decompress(path.read_bytes()))
    data[len(data) // 2] ^= 1  # a byte of the model inside, recompressed: the blob no longer has its digest
    path.write_bytes(gzip.compress(bytes(data)))
    with open_image(f"oci:{work}:v1") as img:
        outcomes = {x.path: x.status for x in check_blobs(img)}
        report = verify_model(img, MODEL_PATH, model[1])
    assert outcomes[f"layer {layer.index} ({layer.digest})"] is Status.MISMATCH
    assert not report.ok


def test_a_whiteout_in_a_later_layer_removes_the_file(model, tmp_path):
    files = sorted(f.path for f in model[1].files)
    base = [("models", None, {}), ("models/minilm", None, {})]
    base += [(f"models/minilm/{p}", (model[0] / p).read_bytes(), {}) for p in files]
    later = [("models/minilm/.wh.config.json", b"", {})]
    digest = o.write_layout(tmp_path / "img", [o.tar_of(base), o.tar_of(later)])
    with open_image(f"oci:{tmp_path / 'img'}:v1") as img:
        assert img.digest == digest
        report = verify_model(img, MODEL_PATH, model[1])
    assert statuses(report) == {"config.json": "MISSING"}
    opaque = [("models/minilm/.wh..wh..opq", b"", {}), ("models/minilm/config.json", b"{}", {})]
    o.write_layout(tmp_path / "img2", [o.tar_of(base), o.tar_of(opaque)])
    with open_image(f"oci:{tmp_path / 'img2'}:v1") as img:
        report = verify_model(img, MODEL_PATH, model[1])
    got = statuses(report)
    assert got["config.json"] == "MISMATCH" and got["vocab.txt"] == "MISSING"


@pytest.mark.parametrize(
    ("entries", "status"),
    [
        ([("models/minilm", None, {"type": tarfile.SYMTYPE, "linkname": "/etc"})], "ERROR"),
        ([("models", None, {"type": tarfile.SYMTYPE, "linkname": "/tmp"})], "ERROR"),
        ([("models/minilm/config.json", None, {"type": tarfile.SYMTYPE, "linkname": "/etc/passwd"})], "ERROR"),
        (
            [
                ("etc/passwd", b"x", {}),
                ("models/minilm/config.json", None, {"type": tarfile.LNKTYPE, "linkname": "etc/passwd"}),
            ],
            "ERROR",
        ),
    ],
    ids=["model-path-link", "ancestor-link", "file-symlink", "hardlink-outside"],
)
def test_links_are_reported_never_followed(model, tmp_path, entries, status):
    files = sorted(f.path for f in model[1].files)
    base = [(f"models/minilm/{p}", (model[0] / p).read_bytes(), {}) for p in files]
    o.write_layout(tmp_path / "img", [o.tar_of(base), o.tar_of(entries)])
    with open_image(f"oci:{tmp_path / 'img'}:v1") as img:
        report = verify_model(img, MODEL_PATH, model[1])
    assert not report.ok
    assert status in set(statuses(report).values())


def test_an_entry_with_dotdot_is_refused_and_names_the_layer(model, tmp_path):
    files = sorted(f.path for f in model[1].files)
    base = [(f"models/minilm/{p}", (model[0] / p).read_bytes(), {}) for p in files]
    evil = [("models/minilm/../../../etc/x", b"x", {})]
    o.write_layout(tmp_path / "img", [o.tar_of(base), o.tar_of(evil)])
    with open_image(f"oci:{tmp_path / 'img'}:v1") as img:
        report = verify_model(img, MODEL_PATH, model[1])
        name = f"layer 1 ({img.layers[1].digest})"
    assert statuses(report) == {name: "ERROR"}


def test_two_manifests_for_this_platform_are_refused(tmp_path):
    from merkle.errors import IntegrityError
    from merkle.image.oci import machine_platform

    os_, arch = machine_platform()
    o.write_layout(tmp_path / "img", [o.tar_of([("a", b"a", {})])], manifests=2,
                   platform={"os": os_, "architecture": arch})  # fmt: skip
    with pytest.raises(IntegrityError, match="2 manifests"):
        open_image(f"oci:{tmp_path / 'img'}:v1")
