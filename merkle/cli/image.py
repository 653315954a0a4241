"""`merkle verify oci:DIR[:TAG] MODEL_BUNDLE --key PUB --model /models/NAME`
and `docker-archive:FILE` (docs/images.md, I10): the model's own signed
manifest, trusted as `merkle verify` trusts it (the same trust path), and the
files under the path in the image read straight from its layers against it."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from merkle.errors import UsageError

if TYPE_CHECKING:
    from merkle.format.manifest import Manifest
    from merkle.signing.envelope import BundleFile


def verify(args: argparse.Namespace, manifests: list[Manifest], bundles: list[BundleFile]) -> int:
    """`args.path` an image; `manifests` and `bundles` the sources verify read."""
    from merkle.cli.output import print_report
    from merkle.cli.trust import describe, open_bundles, verified_dict
    from merkle.image import open_image
    from merkle.image.layers import verify_model

    if not getattr(args, "model", None):
        raise UsageError("an image is checked through the model inside it: add --model PATH (the model's folder)")
    for flag in ("file", "files", "proof", "range", "tensor", "repair", "policy", "allow_license", "sparse"):
        if getattr(args, flag, None):
            raise UsageError(f"--{flag.replace('_', '-')} does not apply to an image")
    extra: dict[str, Any] = {}
    head = None
    if bundles:
        verified = open_bundles(args, bundles)
        if verified.manifest is None:
            raise UsageError("an OpenSSF bundle lists SHA-256 digests, which an image's layers are not checked with")
        manifest = verified.manifest
        extra["signature"] = verified_dict(verified)
        head = describe(verified)
    else:
        manifest = manifests[0]
    with open_image(args.path) as image:
        report = verify_model(image, args.model, manifest, args.allow_extra)
        extra["image"] = {"digest": image.digest, "model": args.model, "layers": [x.digest for x in image.layers]}
        head = (head + "; " if head else "") + f"image {image.digest}, model at {args.model}"
    print_report(args, report, extra, head)
    return report.exit_code
