"""Telling a manifest from a signed bundle, without trusting either yet."""

from __future__ import annotations

from typing import TYPE_CHECKING

from merkle.errors import FormatError
from merkle.format import strictjson
from merkle.format.manifest import MANIFEST_FIELDS, MAX_MANIFEST_BYTES, SIDECAR_SUFFIX, Manifest
from merkle.source.local import read_capped

if TYPE_CHECKING:
    from merkle.signing.envelope import BundleFile


def load_document(path: str, bundle: bool = False) -> Manifest | BundleFile:
    """Read a manifest or a bundle, telling them apart by shape: a bundle
    has a `mediaType`.  With `bundle=True` (a key or CA was given) the file
    can only be a bundle: it is capped at the bundle limit before decoding
    and anything else is a BundleError.  Bundles come back unverified (and
    their module is imported only for them: `merkle verify` with a manifest
    needs none of it)."""
    if bundle:
        from merkle.signing.envelope import BundleFile

        return BundleFile.read(path)
    data = read_capped(path, MAX_MANIFEST_BYTES)
    doc = strictjson.loads(data, path, MAX_MANIFEST_BYTES, MANIFEST_FIELDS)
    if isinstance(doc, dict) and ("mediaType" in doc or "dsseEnvelope" in doc):
        from merkle.signing.envelope import Bundle, BundleFile

        return BundleFile(Bundle.from_json(data, path), data, path)
    try:
        manifest = Manifest.from_doc(doc)
    except FormatError as e:
        raise type(e)(e.message, path) from e
    return manifest.with_sidecar(path + SIDECAR_SUFFIX).with_metadata_from(path)
