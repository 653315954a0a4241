"""Image attestations (docs/images.md, I11-I13): a signed statement whose
subject is an image's manifest digest, naming the models the signer
verified inside it; and its check: every blob of the image against its
digest, and the manifest digest against the signed one.

The trust in a model inside comes from the model's own signed bundle, which
the signer checks before signing the image (`find_models`); the image
statement then restates it, and a verifier of the image statement trusts
the layers by their digests, which the manifest (the signed subject) names:
a file inside a layer cannot change without changing its digest.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

from merkle.errors import UsageError, option
from merkle.image.layers import model_path, verify_model
from merkle.image.oci import Image, check_blobs, parse_target
from merkle.report import Outcome, Report, Status
from merkle.signing.statements import ImageModel, ImageSigned, Verified, digest_key


@dataclass(frozen=True)
class ModelCheck:
    """A model checked inside an image: its path, its verified bundle, and
    the report of its files read from the layers."""

    path: str
    verified: Verified
    report: Report

    @property
    def claim(self) -> ImageModel:
        """What the image statement says of it (only once the report passed)."""
        summary = self.verified.summary
        manifest = self.verified.manifest
        assert summary is not None and manifest is not None and self.report.ok
        return ImageModel(
            "/" + model_path(self.path),
            self.verified.name,
            digest_key(summary.algorithm),
            summary.root.hex(),
            len(manifest.files),
            manifest.total_size,
            self.verified.version,
        )


def find_models(image: Image, models: Sequence[tuple[str, Verified]], allow_extra: bool = False) -> list[ModelCheck]:
    """Each (path, verified model bundle) checked inside `image` (I6-I9)."""
    seen: set[str] = set()
    out = []
    for path, verified in models:
        key = model_path(path)
        if key in seen:
            raise UsageError(f"the model path {path} is named twice")
        seen.add(key)
        if verified.manifest is None:
            raise UsageError(
                "an image's model is checked against a merkle manifest: an OpenSSF bundle lists SHA-256 digests, "
                "which a layer's files are not checked with"
            )
        out.append(ModelCheck(path, verified, verify_model(image, path, verified.manifest, allow_extra)))
    return out


def check_image(image: Image, signed: ImageSigned | None = None) -> Report:
    """Every layer of `image` against its digest and size (its index,
    manifest and config were checked when it was opened), and its manifest
    digest against `signed`'s subject: one outcome each, the manifest's
    first."""
    started = time.perf_counter()
    outcomes = []
    what = "image id (config)" if image.digest == image.config_digest else "manifest"
    head = f"{what} ({image.digest})"
    if signed is None or signed.digest == image.digest:
        outcomes.append(Outcome(head, Status.OK))
    else:
        why = f"signed digest {signed.digest}: another image"
        if image.platform is not None:
            why += f" (this is the {image.platform} manifest of its index; another platform's: {option('platform')})"
        outcomes.append(Outcome(head, Status.MISMATCH, why))
    outcomes += check_blobs(image)
    size = sum(layer.size or 0 for layer in image.layers)
    return Report(bytes.fromhex(image.digest.split(":", 1)[1]), "sha256", tuple(outcomes), bytes_hashed=size,
                  seconds=time.perf_counter() - started)  # fmt: skip


def image_name(target: str, image: Image) -> str:
    """The subject name an image is signed as, unless one is given: the
    file or folder name of the target, with its tag and, when picked from
    an index of platforms, the platform (`img:v1 (linux/arm64)`): each
    platform's manifest is signed on its own, under its own name."""
    parsed = parse_target(target)
    path = parsed[1] if parsed is not None else target
    base = os.path.basename(os.path.normpath(path)) or "image"
    name = f"{base}:{image.tag}" if image.tag else base
    return f"{name} ({image.platform})" if image.platform else name
