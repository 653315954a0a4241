"""zstd layers (docs/images.md I4): an image copied by skopeo with its layers recompressed to zstd
(`--dest-compress-format zstd`, media type tar+zstd) carries the same model, and verifies against its bundle;
a flipped byte in the zstd blob, bytes after its last frame, or a frame that does not decompress, fail the layer
in one line or one outcome, never a traceback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from support import hf_layout
from support import oci as o
from support.cli import run_cli, statuses
from support.damage import flip

MODEL = "/models/minilm"


@pytest.fixture(scope="module")
def zstd_image(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(zstd image, model bundle, public key)."""
    d = tmp_path_factory.mktemp("zstd")
    shutil.copytree(hf_layout.model_dir(), d / "minilm")
    assert run_cli("keygen", "-o", str(d / "k")).returncode == 0
    r = run_cli("build", str(d / "minilm"), "--sign", str(d / "k"), "-o", str(d / "m.json"), "--no-store")
    assert r.returncode == 0, r.stderr
    gz = o.umoci_image(d, d / "minilm", MODEL)
    o.run("skopeo", "copy", "--dest-compress", "--dest-compress-format", "zstd", f"oci:{gz}:v1", f"oci:{d / 'z'}:v1")
    return d / "z", d / "m.json", d / "k.pub"


def layer_blob(image: Path) -> tuple[str, Path]:
    manifest = json.loads(o.run("skopeo", "inspect", "--raw", f"oci:{image}:v1"))
    (layer,) = manifest["layers"]
    assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+zstd"
    return layer["digest"], image / "blobs" / "sha256" / layer["digest"].split(":")[1]


def verify(image: Path, bundle: Path, key: Path):
    return run_cli("verify", f"oci:{image}:v1", str(bundle), "--key", str(key), "--model", MODEL, "--no-store")


def test_a_zstd_image_carries_the_signed_model(zstd_image):
    image, bundle, key = zstd_image
    layer_blob(image)
    r = verify(image, bundle, key)
    assert r.returncode == 0, r.stdout + r.stderr
    assert set(statuses(r.stdout).values()) == {"="}


def _flipped(blob: Path) -> None:
    flip(blob, blob.stat().st_size // 2)


def _garbage_after(blob: Path) -> None:
    with open(blob, "ab") as f:
        f.write(b"not a zstd frame")


@pytest.mark.parametrize("damage", [_flipped, _garbage_after], ids=["flipped-byte", "bytes-after-the-frames"])
def test_a_damaged_zstd_layer_fails_naming_it(zstd_image, tmp_path, damage):
    image, bundle, key = zstd_image
    copy = tmp_path / "z"
    shutil.copytree(image, copy)
    digest, blob = layer_blob(copy)
    damage(blob)
    r = verify(copy, bundle, key)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    (line,) = [ln for ln in r.stdout.splitlines() if ln.startswith(("* layer 0", "! layer 0"))]
    assert digest in line
    assert not any(ln.startswith("= ") for ln in r.stdout.splitlines())
