"""OCI image layouts written here from layer tars (for the cases real tools will not make: a `..` entry, a link
at the model path, two manifests for one platform), and the real tools' images: `umoci` builds, `skopeo` copies
and inspects.  The layouts follow the OCI image spec: blobs named by their sha256, a config whose diff_ids are the
uncompressed layers' digests, a manifest, an index naming it by tag."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import tarfile
from pathlib import Path


def blob(root: Path, data: bytes) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (root / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def tar_of(entries: list[tuple[str, bytes | None, dict]]) -> bytes:
    """A tar of (name, content or None for a folder, TarInfo fields such as type/linkname)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content, extra in entries:
            info = tarfile.TarInfo(name)
            for k, v in extra.items():
                setattr(info, k, v)
            if content is None and "type" not in extra:
                info.type = tarfile.DIRTYPE
            if content is not None:
                info.size = len(content)
            tar.addfile(info, io.BytesIO(content) if content is not None else None)
    return out.getvalue()


def write_layout(
    root: Path,
    layers: list[bytes],
    tag: str = "v1",
    compress: bool = True,
    manifests: int = 1,
    platform: dict | None = None,
) -> str:
    """An OCI layout at `root` of `layers` (uncompressed tars); the manifest digest."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    descs, diff_ids = [], []
    for layer in layers:
        diff_ids.append("sha256:" + hashlib.sha256(layer).hexdigest())
        data = gzip.compress(layer, mtime=0) if compress else layer
        kind = "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if compress else "")
        descs.append({"mediaType": kind, **blob(root, data)})
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()  # fmt: skip
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **blob(root, config)},
                           "layers": descs}).encode()  # fmt: skip
    m = {"mediaType": "application/vnd.oci.image.manifest.v1+json", **blob(root, manifest)}
    if platform is not None:
        index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                 "manifests": [{**m, "platform": platform} for _ in range(manifests)]}  # fmt: skip
        top = {"mediaType": "application/vnd.oci.image.index.v1+json", **blob(root, json.dumps(index).encode())}
    else:
        top = m
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {**top, "annotations": {"org.opencontainers.image.ref.name": tag}}]}))  # fmt: skip
    return m["digest"]


def run(*cmd: str, cwd: Path | None = None) -> str:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {done.stderr.decode(errors='replace')}")
    return done.stdout.decode()


def umoci_image(work: Path, model: Path, model_path: str, tag: str = "v1") -> Path:
    """A real image made by umoci: an empty image, then `umoci insert` of `model` at `model_path` (one gzip layer)."""
    layout = work / "img"
    run("umoci", "init", "--layout", str(layout))
    run("umoci", "new", "--image", f"{layout}:{tag}")
    run("umoci", "insert", "--rootless", "--image", f"{layout}:{tag}", str(model), model_path)
    return layout
