"""One array of a signed store, on its own (rule Z2): a manifest of just
that array's keys, whose dataset root is the array's signed subtree root."""

from __future__ import annotations

import dataclasses

from merkle.errors import IntegrityError, UsageError
from merkle.format.leaves import LeafLayers
from merkle.format.manifest import Manifest
from merkle.format.zarr import ZarrLayout


def array_manifest(manifest: Manifest, path: str) -> Manifest:
    """The manifest of array `path` alone, with its leaf layers.  Its root is
    the array's `root` in the signed layout, so whoever trusts the full
    manifest (or just that root) can check it with `check_array_manifest`
    and hand it to VerifiedStore in place of the whole store's manifest."""
    if manifest.zarr is None:
        raise UsageError("the manifest was not built from a zarr store")
    try:
        array = manifest.zarr.array(path)
    except KeyError:
        raise UsageError(f"no array {path!r} in the manifest's zarr layout") from None
    files = manifest.files[array.first : array.first + array.count]
    layers = None
    if manifest.layers is not None:
        mine = {f.path for f in files}
        layers = LeafLayers({p: v for p, v in manifest.layers.leaves.items() if p in mine})
    alone = dataclasses.replace(array, first=0)
    sub = Manifest.create(
        files,
        manifest.algorithm,
        manifest.chunk_size,
        manifest.exclude,
        layers,
        zarr=ZarrLayout(manifest.zarr.zarr_format, (), (alone,)),
    )
    assert sub.root == array.root, "an array's range and root are checked when its manifest is loaded"
    return sub


def check_array_manifest(sub: Manifest, signed: Manifest, path: str) -> None:
    """Raise IntegrityError unless `sub` is exactly array `path` of `signed`."""
    if signed.zarr is None:
        raise UsageError("the signed manifest was not built from a zarr store")
    try:
        root = signed.zarr.array(path).root
    except KeyError:
        raise UsageError(f"no array {path!r} in the signed manifest's zarr layout") from None
    if sub.root != root or sub.algorithm != signed.algorithm or sub.chunk_size != signed.chunk_size:
        raise IntegrityError(f"not the signed contents of array {path!r}: its root differs")
