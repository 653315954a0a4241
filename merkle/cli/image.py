"""Images on the command line (docs/images.md, I10-I13).

`merkle build oci:DIR[:TAG] --sign KEY -o BUNDLE [--model PATH MODEL_BUNDLE
--model-key PUB]`: every blob of the image checked, each named model checked
inside it against its own signed bundle, then a statement whose subject is
the image's manifest digest signed and written.

`merkle verify oci:DIR[:TAG] BUNDLE --key PUB` (or `docker-archive:FILE`):
with an image's bundle, the image's blobs and manifest digest against it;
with a model's bundle and `--model PATH`, the files under PATH read straight
from the layers against the model's manifest.  Both through verify's trust
path."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING, Any

from merkle.errors import UsageError

if TYPE_CHECKING:
    from merkle.format.manifest import Manifest
    from merkle.image.oci import Image
    from merkle.report import Report
    from merkle.signing.envelope import BundleFile
    from merkle.signing.statements import Verified

NOT_FOR_IMAGES = ("file", "files", "proof", "range", "tensor", "repair", "policy", "allow_license", "sparse")


def verify(args: argparse.Namespace, manifests: list[Manifest], bundles: list[BundleFile]) -> int:
    """`args.path` an image; `manifests` and `bundles` the sources verify read."""
    from merkle.cli.trust import describe, open_bundles

    for flag in NOT_FOR_IMAGES:
        if getattr(args, flag, None):
            raise UsageError(f"--{flag.replace('_', '-')} does not apply to an image")
    verified = open_bundles(args, bundles, images=True) if bundles else None
    if verified is not None and verified.image is not None:
        if args.model or args.allow_extra:
            raise UsageError("an image's bundle vouches for the whole image: --model and --allow-extra do not apply")
        return _verify_image(args, verified)
    if not args.model:
        raise UsageError("an image is checked against its own bundle, or through a model inside it: add --model PATH")
    if verified is not None:
        if verified.manifest is None:
            raise UsageError("an OpenSSF bundle lists SHA-256 digests, which an image's layers are not checked with")
        return _verify_model(args, verified.manifest, verified, describe(verified))
    return _verify_model(args, manifests[0], None, None)


def _verify_model(args: argparse.Namespace, manifest: Manifest, verified: Verified | None, head: str | None) -> int:
    from merkle.cli.output import print_report
    from merkle.cli.trust import verified_dict
    from merkle.image import open_image
    from merkle.image.layers import verify_model

    extra: dict[str, Any] = {}
    if verified is not None:
        extra["signature"] = verified_dict(verified)
    with open_image(args.path, platform=args.platform) as image:
        report = verify_model(image, args.model, manifest, args.allow_extra)
        extra["image"] = _image_dict(image) | {"model": args.model}
        head = (head + "; " if head else "") + f"image {image.digest}, model at {args.model}"
    print_report(args, report, extra, head)
    return report.exit_code


def _verify_image(args: argparse.Namespace, verified: Verified) -> int:
    from merkle.cli.output import print_report
    from merkle.cli.trust import describe, verified_dict
    from merkle.image import open_image
    from merkle.image.attest import check_image

    assert verified.image is not None
    with open_image(args.path, platform=args.platform) as image:
        report = check_image(image, verified.image)
        extra = {"signature": verified_dict(verified), "image": _image_dict(image)}
    models = [m.to_dict() for m in verified.image.models]
    extra["image"]["models"] = models
    head = f"{describe(verified)}; image {verified.image.digest}"
    print_report(args, report, extra, head)
    if report.ok and not args.json and not args.quiet:
        for m in verified.image.models:
            version = f" version {m.version}" if m.version is not None else ""
            print(f"model {m.path}: '{m.name}'{version}, {m.files} files, {m.size} bytes, root {m.root}")
    return report.exit_code


def _image_dict(image: Image) -> dict[str, Any]:
    return {"digest": image.digest, "layers": [x.digest for x in image.layers]}


def build(args: argparse.Namespace) -> int:
    """`merkle build IMAGE --sign KEY -o BUNDLE [--model PATH BUNDLE]...`."""
    from merkle.cli.output import emit_json, print_report
    from merkle.cli.signing import certificates_for, signing_key
    from merkle.cli.trust import open_bundles, store_for
    from merkle.image import open_image
    from merkle.image.attest import check_image, find_models, image_name
    from merkle.signing import statements
    from merkle.signing.envelope import BundleFile
    from merkle.signing.writing import write_signed

    if not args.sign or args.output in (None, "-"):
        raise UsageError("an image is attested by a signed statement: add --sign KEY -o BUNDLE")
    for flag, value in (
        ("--format oms", args.format == "oms"),
        ("--compact", args.compact),
        ("--resume", args.resume),
        ("--dask", args.dask),
        ("--repo-id", args.repo_id),
        ("--revision", args.revision),
        ("--layout", args.layout),
        ("--exclude", args.exclude),
        ("--follow-symlinks", args.follow_symlinks),
        ("--update", getattr(args, "update", None)),
        ("--no-default-excludes", args.no_default_excludes),
        ("--storage-option", args.storage_option),
        ("--repo-type", args.repo_type),
    ):
        if value:
            raise UsageError(f"{flag} does not apply to an image")
    if (args.model_key or args.model_ca) and not args.models:
        raise UsageError("--model-key and --model-ca check the bundles of --model PATH BUNDLE: add one")
    started = time.perf_counter()
    key = signing_key(args)
    certs = certificates_for(args, key)
    pairs = []
    for path, bundle in args.models:
        verified = open_bundles(args, [BundleFile.read(bundle)], prefix="model_")
        pairs.append((path, verified))
    with open_image(args.path, platform=args.platform) as image:
        checks = find_models(image, pairs)
        reports: list[tuple[str, Report]] = [(f"model {c.path}", c.report) for c in checks]
        reports.append((f"image {image.digest}", check_image(image)))
        failed = [(what, r) for what, r in reports if not r.ok]
        if failed:
            for what, report in failed:
                print_report(args, report, {"image": _image_dict(image)}, f"not signed: {what}")
            return 1
        name = args.name or image_name(args.path, image)
        stmt = statements.image_statement(
            name, image.digest, [c.claim for c in checks], args.statement_version, args.expires
        )
        verified = write_signed(args.output, statements.sign_statement(stmt, key, certs), key, None, store_for(args))
    seconds = time.perf_counter() - started
    if args.json:
        emit_json(
            {
                "output": args.output,
                "image": image.digest,
                "name": name,
                "models": [m.to_dict() for m in verified.image.models] if verified.image else [],
                "seconds": round(seconds, 6),
                "signed": True,
            }
        )
    elif not args.quiet:
        print(f"{image.digest}  {args.path}")
        print(
            f"merkle: image '{name}' signed, {len(checks)} model(s) verified inside, in {seconds:.2f} s "
            f"-> {args.output}",
            file=sys.stderr,
        )
    return 0
