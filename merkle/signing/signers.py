"""Opening whatever signs: a PEM key file (merkle.signing.keys), a key on a
PKCS#11 token (merkle.signing.pkcs11) or an AWS KMS key (merkle.signing.kms),
named as the command line names them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from merkle.errors import UsageError
from merkle.signing.keys import SigningKey, load_private_key


def open_signing_key(spec: str, options: Mapping[str, Any] | None = None) -> SigningKey:
    """The key `spec` names: `pkcs11:...` (an RFC 7512 URI: a key on a
    token), `awskms://[HOST]/KEY` (an AWS KMS key, as cosign names them), or
    a PEM private key file.  `options` apply to a KMS key (endpoint_url,
    region_name, timeouts)."""
    if spec.startswith("pkcs11:"):
        if options:
            raise UsageError("signer options apply to KMS keys, not to a PKCS#11 token", spec)
        from merkle.signing.pkcs11 import open_pkcs11_key

        return open_pkcs11_key(spec)
    if spec.startswith("awskms:"):
        from merkle.signing.kms import open_aws_kms_key

        return open_aws_kms_key(spec, options or {})
    if options:
        raise UsageError("signer options apply to KMS keys, not to a key file", spec)
    return load_private_key(spec)
