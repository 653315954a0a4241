"""Bad images (issue 21, "Bad input"): a blob whose digest or size does not match its descriptor, a manifest naming
a missing blob, a blob reached through a link, JSON that does not parse, a tar header claiming a huge size, an
index naming two images: one line, exit 1 or 2, nothing read beyond the bytes there are."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from support import oci as o
from support.cli import assert_one_line_error, run_cli

MODEL = "/models/m"
CONTENT = b"the model's only file\n" * 50


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("model")
    (d / "m").mkdir()
    (d / "m" / "a.bin").write_bytes(CONTENT)
    assert run_cli("build", str(d / "m"), "-o", str(d / "m.json"), "-q").returncode == 0
    return d / "m.json"


def layout(root: Path, layer: bytes | None = None) -> Path:
    o.write_layout(root, [layer if layer is not None else o.tar_of([(MODEL[1:] + "/a.bin", CONTENT, {})])])
    return root


def blob_path(root: Path, digest: str) -> Path:
    return root / "blobs" / "sha256" / digest.split(":")[1]


def manifest_of(root: Path) -> tuple[Path, dict]:
    path = blob_path(root, json.loads((root / "index.json").read_text())["manifests"][0]["digest"])
    return path, json.loads(path.read_text())


def check(root: Path, manifest: Path):
    return run_cli("verify", f"oci:{root}:v1", str(manifest), "--model", MODEL)


def test_the_untouched_layout_verifies(manifest, tmp_path):
    r = check(layout(tmp_path / "img"), manifest)
    assert r.returncode == 0, r.stdout + r.stderr


def _manifest_bytes_changed(root: Path) -> str:
    path, _ = manifest_of(root)
    path.write_bytes(path.read_bytes().replace(b'"schemaVersion": 2', b'"schemaVersion":2 '))
    return "image manifest"


def _config_size_changed(root: Path) -> str:
    path, doc = manifest_of(root)
    doc["config"]["size"] += 1
    data = json.dumps(doc).encode()
    new = o.blob(root, data)
    index = json.loads((root / "index.json").read_text())
    index["manifests"][0].update(new)
    (root / "index.json").write_text(json.dumps(index))
    return "image config"


def _layer_missing(root: Path) -> str:
    _, doc = manifest_of(root)
    blob_path(root, doc["layers"][0]["digest"]).unlink()
    return "is missing"


def _layer_through_a_link(root: Path) -> str:
    _, doc = manifest_of(root)
    blob = blob_path(root, doc["layers"][0]["digest"])
    shutil.move(blob, root.parent / "elsewhere")
    os.symlink(root.parent / "elsewhere", blob)
    return "link"


def _index_not_json(root: Path) -> str:
    (root / "index.json").write_text('{"schemaVersion": 2, "manifests": [')
    return "index.json"


def _two_untagged_images(root: Path) -> str:
    index = json.loads((root / "index.json").read_text())
    entry = dict(index["manifests"][0])
    entry.pop("annotations")
    index["manifests"] = [entry, entry]
    (root / "index.json").write_text(json.dumps(index))
    return "2 images"


@pytest.mark.parametrize(
    "damage",
    [_manifest_bytes_changed, _config_size_changed, _layer_missing, _layer_through_a_link, _index_not_json,
     _two_untagged_images],
    ids=lambda f: f.__name__.strip("_"),
)  # fmt: skip
def test_a_damaged_layout_is_one_line(manifest, tmp_path, damage):
    root = layout(tmp_path / "img")
    needle = damage(root)
    target = f"oci:{root}" if damage is _two_untagged_images else f"oci:{root}:v1"
    r = run_cli("verify", target, str(manifest), "--model", MODEL)
    assert r.returncode in (1, 2), r.stdout + r.stderr
    assert_one_line_error(r, needle)
    assert r.stdout == ""


def _huge_header(size: int) -> bytes:
    """A layer whose one entry says it holds `size` bytes and holds 512."""
    tar = bytearray(o.tar_of([(MODEL[1:] + "/a.bin", b"x" * 512, {})]))
    header = next(i for i in range(0, len(tar), 512) if tar[i : i + 512].startswith(b"models/m/a.bin"))
    if size < 8**11:
        tar[header + 124 : header + 136] = b"%011o\0" % size
    else:  # base-256, as GNU tar and Go write sizes of 8 GiB and more
        tar[header + 124 : header + 136] = b"\x80" + size.to_bytes(11, "big")
    tar[header + 148 : header + 156] = b" " * 8
    tar[header + 148 : header + 156] = b"%06o\0 " % sum(tar[header : header + 512])
    return bytes(tar)


@pytest.mark.parametrize("size", [8**11 - 1, 1 << 50], ids=["8GiB", "1PiB"])
def test_a_tar_header_claiming_a_huge_size_is_a_layer_error(manifest, tmp_path, size):
    layer = _huge_header(size)
    root = layout(tmp_path / "img", layer)
    r = check(root, manifest)
    assert r.returncode == 1, r.stdout + r.stderr
    (bad,) = [ln for ln in r.stdout.splitlines() if ln.startswith("! layer 0")]
    assert "not a readable tar layer" in bad
    assert not any(ln.startswith("= ") for ln in r.stdout.splitlines())
    assert "Traceback" not in r.stderr


def _archive_of(root: Path, archive: Path, extra: dict[str, Path] | None = None) -> Path:
    """A tar of the layout at `root` (every entry, as `docker save` names them), and `extra` files by name."""
    import tarfile

    with tarfile.open(archive, "w") as tar:
        for p in sorted(root.rglob("*")):
            tar.add(p, p.relative_to(root).as_posix(), recursive=False)
        for name, path in (extra or {}).items():
            tar.add(path, name)
    return archive


def test_an_archive_with_a_layout_and_a_legacy_repositories_file_only(manifest, tmp_path):
    """docker load reads the legacy image when manifest.json is missing (found by the review): refused."""
    legacy = tmp_path / "repositories"
    legacy.write_text('{"evil": {"latest": "' + "ab" * 32 + '"}}')
    archive = _archive_of(layout(tmp_path / "img"), tmp_path / "img.tar", {"repositories": legacy})
    r = run_cli("verify", f"docker-archive:{archive}", str(manifest), "--model", MODEL)
    assert r.returncode == 1
    assert_one_line_error(r, "repositories")


def test_a_truncated_docker_archive_is_one_line(manifest, tmp_path):
    """Found by the read-through: tarfile's error escaped as an internal error."""
    archive = _archive_of(layout(tmp_path / "img"), tmp_path / "img.tar")
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2 + 100])
    r = run_cli("verify", f"docker-archive:{archive}", str(manifest), "--model", MODEL)
    assert r.returncode == 2
    assert_one_line_error(r, "not a readable tar archive")
