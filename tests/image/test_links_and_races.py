"""What a runtime writes through a symbolic link, and a blob written while it is read (the third attacker review
of issue 21, each confirmed with umoci): an entry whose folder is a link of an earlier entry lands where the link
leads (umoci's securejoin, containerd, docker), so one that lands in the model path, or a whiteout that does, fails
its layer, while links that lead elsewhere change nothing; a blob read in place (headers, digest and files are
three reads) that is written in between fails its layer."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
from support import oci as o

from merkle.format.manifest import FileEntry, Manifest
from merkle.hashing.files import hash_stream
from merkle.image import open_image
from merkle.image.layers import verify_model
from merkle.report import Report, Status

GOOD = b"GOOD weights\n" * 100
EVIL = b"EVIL weights\n" * 100


def signed() -> Manifest:
    return Manifest.create([FileEntry("w.bin", len(GOOD), hash_stream(io.BytesIO(GOOD)))], "blake3", 1 << 20, ())


def link(name: str, target: str) -> tuple[str, None, dict]:
    return (name, None, {"type": tarfile.SYMTYPE, "linkname": target})


BASE = [("models", None, {}), ("models/m", None, {}), ("models/m/w.bin", GOOD, {})]


def check(tmp_path: Path, layers: list[list[tuple[str, bytes | None, dict]]], compress: bool) -> Report:
    o.write_layout(tmp_path / "img", [o.tar_of(x) for x in layers], compress=compress)
    with open_image(f"oci:{tmp_path / 'img'}:v1") as img:
        return verify_model(img, "/models/m", signed())


@pytest.fixture(params=["gzip", "tar"])
def compress(request) -> bool:
    return request.param == "gzip"


THROUGH = {
    "later-layer": [BASE + [link("x", "models")], [("x/m/w.bin", EVIL, {})]],
    "same-layer": [BASE + [link("x", "models"), ("x/m/w.bin", EVIL, {})]],
    "absolute-target": [BASE + [link("x", "/models/m")], [("x/w.bin", EVIL, {})]],
    "dotdot-target": [BASE + [("a", None, {}), link("a/b", "../models")], [("a/b/m/w.bin", EVIL, {})]],
    "chain": [BASE + [link("y", "models"), link("x", "y")], [("x/m/w.bin", EVIL, {})]],
    "whiteout": [BASE + [link("x", "models")], [("x/m/.wh.w.bin", b"", {})]],
    "hard-link-target": [BASE + [link("x", "models")],
                         [("models/m/h", None, {"type": tarfile.LNKTYPE, "linkname": "x/m/w.bin"})]],
}  # fmt: skip


@pytest.mark.parametrize("layers", THROUGH.values(), ids=THROUGH.keys())
def test_an_entry_that_lands_in_the_model_path_through_a_link_fails_its_layer(tmp_path, compress, layers):
    report = check(tmp_path, layers, compress)
    assert not report.ok
    bad = [x for x in report.outcomes if x.path.startswith("layer ") and "symbolic link" in (x.detail or "")]
    assert len(bad) == 1, report.outcomes
    assert report.exit_code != 0


ELSEWHERE = {
    "merged-usr": [BASE + [("usr", None, {}), ("usr/lib", None, {}), link("lib", "usr/lib")],
                   [("lib/libc.so", b"elf", {})]],
    "link-replaced-by-a-folder": [BASE + [link("x", "models")], [("x", None, {}), ("x/m/w.bin", EVIL, {})]],
    "link-whited-out": [BASE + [link("x", "models")], [(".wh.x", b"", {})], [("x/m/w.bin", EVIL, {})]],
}  # fmt: skip


@pytest.mark.parametrize("layers", ELSEWHERE.values(), ids=ELSEWHERE.keys())
def test_links_that_lead_elsewhere_change_nothing(tmp_path, compress, layers):
    """No false failure: a base image's `lib -> usr/lib`, a link replaced by a folder or removed by a whiteout
    before the entries below its name come."""
    report = check(tmp_path, layers, compress)
    assert report.ok, report.outcomes
    assert [(x.path, x.status) for x in report.outcomes] == [("w.bin", Status.OK)]


def test_a_blob_written_while_it_is_read_fails_its_layer(tmp_path, monkeypatch):
    """An uncompressed blob in place is read three times (headers, its digest, the files' byte ranges): written
    between the reads (same size, the signed bytes replaced), it fails, whichever bytes each read saw. The write
    is put exactly between the reads by wrapping the range hasher: the attacker's timing, made certain."""
    from merkle.hashing import spans

    o.write_layout(tmp_path / "img", [o.tar_of(BASE)], compress=False)
    with open_image(f"oci:{tmp_path / 'img'}:v1") as img:
        (blob,) = [p for p in (tmp_path / "img/blobs/sha256").iterdir() if p.name == img.layers[0].digest[7:]]
        real = spans.hash_spans

        def written_first(*args, **kwargs):
            data = blob.read_bytes()
            at = data.index(GOOD)
            with open(blob, "r+b") as f:
                f.seek(at)
                f.write(EVIL)
                f.seek(at)
                f.write(GOOD)  # the same bytes back: only the write itself is left to see
            return real(*args, **kwargs)

        monkeypatch.setattr(spans, "hash_spans", written_first)
        report = verify_model(img, "/models/m", signed())
    assert not report.ok
    (bad,) = [x for x in report.outcomes if x.path.startswith("layer 0")]
    assert "written while it was read" in (bad.detail or "")
    assert not any(x.status is Status.OK for x in report.outcomes)
