"""`merkle verify` of a model inside a container image (issue 21) against the
same model on disk, and against the floors and what a user would otherwise
do, every tool a whole process, hot cache, same run.

The model: three shards of 1 GiB (16 MiB in quick mode) of float16 values
drawn from a normal distribution, as weights are (gzip saves about a tenth
of them, and inflating them costs what it costs on real weights), and a
config; signed once (`merkle build --sign`).  The images, made by the real
tools: `umoci insert` of the model at /models/m (one gzip layer); the same
image with that layer stored uncompressed (umoci 0.4 cannot write one and
skopeo 1.9 labels an uncompressed blob as gzip, so its manifest is rewritten
here: the layer gunzipped, its media type `tar`, the config untouched, its
diff_id being the tar's digest already); `skopeo copy` of the gzip image to
a docker archive (whose layers are uncompressed tars).

Cases, all of one row group ("image: model", ratios over the disk verify):
- `merkle verify DIR BUNDLE --key PUB` of the model on disk (the goal: an
  image within 1.2x of it);
- `merkle verify oci:DIR:v1 BUNDLE --key PUB --model /models/m`, gzip and
  uncompressed layer, and `docker-archive:FILE`;
- floors: `gunzip -c` of the gzip layer, `sha256sum` and `openssl dgst
  -sha256` of the uncompressed layer (its digest must be checked over every
  byte);
- the peer: `umoci unpack` of the image then `merkle verify` of the
  unpacked folder (what a user does without image support; the unpacked
  folder is removed, untimed, before each run).

Like the other suites this records numbers and asserts only that each run
verifies; the ratios are printed at the end of the module.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from . import datasets
from .conftest import TIMINGS
from .procs import merkle_cli, require, run
from .settings import Settings

CASE = "image: model"
DISK = "merkle verify DIR"
MODEL_PATH = "/models/m"
PIECE = 64 << 20


@dataclass(frozen=True)
class Images:
    model: Path
    bundle: Path
    key: Path
    gzip_layout: Path
    tar_layout: Path
    archive: Path
    gzip_blob: Path
    tar_blob: Path
    size: int  # bytes of the model's files


def _weights(path: Path, size: int, seed: int) -> None:
    import numpy as np

    partial = path.with_suffix(".partial")
    with open(partial, "wb") as f:
        for offset in range(0, size, PIECE):
            rng = np.random.default_rng([seed, offset])
            n = min(PIECE, size - offset)
            f.write(rng.standard_normal(n // 2, dtype=np.float32).astype(np.float16).tobytes()[:n])
    partial.rename(path)


def _blob(layout: Path, digest: str) -> Path:
    return layout / "blobs" / digest.replace(":", "/", 1)


def _manifest(layout: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    index = json.loads((layout / "index.json").read_text())
    return index, json.loads(_blob(layout, index["manifests"][0]["digest"]).read_text())


def _uncompressed(source: Path, layout: Path) -> None:
    """`source`'s image with its layers stored as plain tars (the manifest and index rewritten to name them)."""
    shutil.copytree(source, layout)
    index, manifest = _manifest(layout)
    for layer in manifest["layers"]:
        blob = _blob(layout, layer["digest"])
        partial = blob.with_suffix(".partial")
        sha, size = hashlib.sha256(), 0
        with gzip.open(blob) as unzipped, open(partial, "wb") as out:
            while piece := unzipped.read(PIECE):
                sha.update(piece)
                out.write(piece)
                size += len(piece)
        blob.unlink()
        digest = "sha256:" + sha.hexdigest()
        partial.rename(_blob(layout, digest))
        layer.update(mediaType="application/vnd.oci.image.layer.v1.tar", digest=digest, size=size)
    data = json.dumps(manifest).encode()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    _blob(layout, index["manifests"][0]["digest"]).unlink()
    _blob(layout, digest).write_bytes(data)
    index["manifests"][0].update(digest=digest, size=len(data))
    (layout / "index.json").write_text(json.dumps(index))


@pytest.fixture(scope="module")
def images(settings: Settings) -> Images:
    for tool in ("umoci", "skopeo"):
        require(tool)
    pytest.importorskip("numpy")
    shard = settings.shard_size
    root = settings.data_dir / f"image-{shard}"
    model = root / "model"
    done = root / ".complete"
    if not done.exists():
        shutil.rmtree(root, ignore_errors=True)
        model.mkdir(parents=True)
        for i in range(3):
            _weights(model / f"model-{i + 1:05d}-of-00003.safetensors", shard, i)
        (model / "config.json").write_text(json.dumps({"architectures": ["Bench"], "hidden_size": 4096}))
        run([*merkle_cli(), "keygen", "-o", str(root / "k")])
        run([*merkle_cli(), "build", str(model), "--sign", str(root / "k"), "-o", str(root / "bundle.json"),
             "--no-store", "-q"])  # fmt: skip
        layout = root / "oci-gzip"
        run(["umoci", "init", "--layout", str(layout)])
        run(["umoci", "new", "--image", f"{layout}:v1"])
        run(["umoci", "insert", "--rootless", "--image", f"{layout}:v1", str(model), MODEL_PATH])
        _uncompressed(layout, root / "oci-tar")
        run(["skopeo", "copy", f"oci:{layout}:v1", f"docker-archive:{root / 'image.tar'}:m:v1"])
        subprocess.run(["sync"], check=True)
        done.touch()
    _, gz = _manifest(root / "oci-gzip")
    _, tar = _manifest(root / "oci-tar")
    found = Images(model, root / "bundle.json", root / "k.pub", root / "oci-gzip", root / "oci-tar",
                   root / "image.tar", _blob(root / "oci-gzip", gz["layers"][-1]["digest"]),
                   _blob(root / "oci-tar", tar["layers"][-1]["digest"]),
                   sum(p.stat().st_size for p in model.iterdir()))  # fmt: skip
    datasets.warm([*model.iterdir(), found.gzip_blob, found.tar_blob, found.archive])
    return found


def _verify(im: Images, target: str, *model: str) -> Callable[[], None]:
    argv = [*merkle_cli(), "verify", target, str(im.bundle), "--key", str(im.key), "--no-store", "-q", *model]
    return lambda: run(argv)


def _shell(command: str) -> Callable[[], None]:
    return lambda: run(["sh", "-c", command])


def test_verify_the_model_on_disk(measure: Callable[..., None], images: Images) -> None:
    measure(CASE, DISK, _verify(images, str(images.model)), images.size)


@pytest.mark.parametrize(
    ("tool", "target"),
    [
        ("merkle verify oci: (gzip layer)", "oci-gzip"),
        ("merkle verify oci: (uncompressed layer)", "oci-tar"),
        ("merkle verify docker-archive:", "archive"),
    ],
)
def test_verify_the_model_in_the_image(measure: Callable[..., None], images: Images, tool: str, target: str) -> None:
    where = {
        "oci-gzip": f"oci:{images.gzip_layout}:v1",
        "oci-tar": f"oci:{images.tar_layout}:v1",
        "archive": f"docker-archive:{images.archive}",
    }[target]
    measure(CASE, tool, _verify(images, where, "--model", MODEL_PATH), images.size)


@pytest.mark.parametrize(
    ("tool", "command"),
    [
        ("floor: gunzip -c layer", "gunzip -c < {gzip} > /dev/null"),
        ("floor: sha256sum layer", "sha256sum {tar} > /dev/null"),
        ("floor: openssl dgst -sha256 layer", "openssl dgst -sha256 {tar} > /dev/null"),
    ],
)
def test_floors(measure: Callable[..., None], images: Images, tool: str, command: str) -> None:
    require(command.split()[0])
    measure(CASE, tool, _shell(command.format(gzip=images.gzip_blob, tar=images.tar_blob)), images.size)


@pytest.fixture
def unpacked(images: Images, tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "bundle"
    shutil.rmtree(tmp_path / "bundle", ignore_errors=True)


def test_umoci_unpack_then_verify(measure: Callable[..., None], images: Images, unpacked: Path) -> None:
    unpack = ["umoci", "unpack", "--rootless", "--image", f"{images.gzip_layout}:v1", str(unpacked)]
    verify = _verify(images, str(unpacked / "rootfs" / MODEL_PATH.lstrip("/")))

    def both() -> None:
        run(unpack)
        verify()

    measure(CASE, "umoci unpack + merkle verify DIR", both, images.size,
            setup=lambda: shutil.rmtree(unpacked, ignore_errors=True))  # fmt: skip


def test_ratios_over_the_disk_verify(pytestconfig: pytest.Config, capsys: pytest.CaptureFixture[str]) -> None:
    """Not a measurement: each tool's median over `merkle verify DIR`'s, printed (the shared table's "x ref"
    column divides by b3sum, which this case does not run)."""
    timings = [t for t in pytestconfig.stash.get(TIMINGS, []) if t.case == CASE]
    disk = next((t for t in timings if t.tool == DISK), None)
    if disk is None:
        pytest.skip("the disk verify did not run")
    with capsys.disabled():
        print(f"\n{CASE}: {disk.bytes / 1e9:.2f} GB of model, medians, time over `{DISK}`")
        for t in timings:
            print(f"  {t.tool:<42} {t.median:8.2f} s {t.median / disk.median:7.2f}x")
