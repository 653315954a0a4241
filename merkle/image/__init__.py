"""Container images, offline, without a container engine (docs/images.md):
an OCI image layout directory (`oci:DIR[:TAG]`) or a `docker save` archive
(`docker-archive:FILE`).  merkle.image.oci opens one and checks every blob
against the digest and size that name it; merkle.image.layers reads the
files under one path of the image's final file system straight from the
layer tars (layer order and whiteouts applied, nothing extracted) and
checks them against a model's manifest.

An integration: the core never imports it.  Everything in an image is
untrusted until its digest matched; the trust starts at the manifest digest
a signed statement names, or at a model's own signed manifest.
"""

from merkle.image.oci import Image, open_image, parse_target

__all__ = ["Image", "open_image", "parse_target"]
