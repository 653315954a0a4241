"""Keys in AWS KMS, named as cosign names them: `awskms:///KEY` or
`awskms://HOST[:PORT]/KEY`, KEY a key id, `alias/NAME` or a key ARN.

The key must be an asymmetric signing key of a curve merkle allows
(ECC_NIST_P256, _P384, _P521: ECDSA with the curve's SHA-2), enabled, with
usage SIGN_VERIFY; its public key comes from GetPublicKey.  Messages of up
to 4096 bytes (KMS's limit for RAW) are sent as they are, and KMS hashes
them; longer ones are sent as their digest (MessageType DIGEST).  Every
signature is checked against the public key before it is used
(keys.sign_bytes), so a service that signs something else never yields a
bundle.

Credentials and region are boto3's usual ones (environment, profile,
instance role); the endpoint is the URI's host (https), or `endpoint_url`
among the signer options (`--signer-option endpoint_url=http://...`), or
boto3's own AWS_ENDPOINT_URL_KMS.  Options: endpoint_url, region_name,
connect_timeout, read_timeout (seconds), max_attempts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key

from merkle.errors import SignatureError, UsageError, install_hint
from merkle.signing.keys import PublicKey, RemoteKey, check_public, curve_hash

RAW_LIMIT: Final = 4096
"""The longest message KMS signs as it is (MessageType RAW)."""
ALGORITHMS: Final = {
    "ECC_NIST_P256": "ECDSA_SHA_256",
    "ECC_NIST_P384": "ECDSA_SHA_384",
    "ECC_NIST_P521": "ECDSA_SHA_512",
}
OPTIONS: Final = frozenset({"endpoint_url", "region_name", "connect_timeout", "read_timeout", "max_attempts"})


def parse_uri(uri: str) -> tuple[str | None, str]:
    """(endpoint host or None, key) of `awskms://[HOST]/KEY`."""
    if not uri.startswith("awskms://"):
        raise UsageError("not an AWS KMS key URI (awskms:///KEY or awskms://HOST/KEY)", uri)
    host, slash, key = uri[len("awskms://") :].partition("/")
    if not slash or not key:
        raise UsageError("no key in the URI (awskms:///KEY-ID, alias/NAME or a key ARN)", uri)
    if host and host != "localhost" and "." not in host and ":" not in host:
        # awskms://alias/NAME (two slashes) reads "alias" as a host: say so rather than call https://alias.
        raise UsageError(f"{host!r} is not an endpoint host: did you mean awskms:///{host}/{key}?", uri)
    return (host or None), key


def _seconds(options: Mapping[str, Any], name: str, default: float, uri: str) -> float:
    value = options.get(name, default)
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = float("nan")
    if not 0 < seconds < 3600:  # also NaN and infinity
        raise UsageError(f"{name} wants a number of seconds above 0 and below 3600, got {value!r}", uri)
    return seconds


def _attempts(options: Mapping[str, Any], uri: str) -> int:
    value = options.get("max_attempts", 3)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 20:
        raise UsageError(f"max_attempts wants a whole number from 1 to 20, got {value!r}", uri)
    return value


def open_aws_kms_key(uri: str, options: Mapping[str, Any]) -> AwsKmsKey:
    """The KMS key `uri` names, checked (type, usage, state) and its public
    key fetched; UsageError (one line, exit 2) when it cannot be used."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError as e:
        raise UsageError(f"signing with an AWS KMS key needs boto3: {install_hint('kms')}") from e
    host, key = parse_uri(uri)
    unknown = set(options) - OPTIONS
    if unknown:
        raise UsageError(f"unknown signer option {sorted(unknown)[0]!r} (known: {', '.join(sorted(OPTIONS))})", uri)
    if host and options.get("endpoint_url"):
        raise UsageError("the URI names an endpoint (awskms://HOST/...) and so does endpoint_url: give one", uri)
    region = options.get("region_name")
    if region is None and key.startswith("arn:"):
        parts = key.split(":")
        region = parts[3] if len(parts) > 3 and parts[3] else None
    endpoint = options.get("endpoint_url") or (f"https://{host}" if host else None)
    config = Config(
        connect_timeout=_seconds(options, "connect_timeout", 10, uri),
        read_timeout=_seconds(options, "read_timeout", 30, uri),
        retries={"max_attempts": _attempts(options, uri), "mode": "standard"},
    )
    try:
        client = boto3.client("kms", region_name=region, endpoint_url=endpoint, config=config)
    except Exception as e:  # botocore: NoRegionError, a bad endpoint URL...
        raise UsageError(f"cannot reach AWS KMS: {_reason(e)}", uri) from e
    try:
        meta = _call(client.describe_key, uri, KeyId=key)["KeyMetadata"]
        spec = meta.get("KeySpec") or meta.get("CustomerMasterKeySpec")
        if meta.get("KeyUsage") != "SIGN_VERIFY":
            raise UsageError(f"the key's usage is {meta.get('KeyUsage')}, not SIGN_VERIFY", uri)
        if spec not in ALGORITHMS:
            raise UsageError(f"key spec {spec} is not allowed (ECC_NIST_P256, ECC_NIST_P384 or ECC_NIST_P521)", uri)
        if meta.get("KeyState") != "Enabled" or meta.get("Enabled") is False:
            raise UsageError(f"the key is {str(meta.get('KeyState', 'not enabled')).lower()}, not enabled", uri)
        key = str(meta.get("Arn") or key)  # an alias is resolved once: every later call names this key
        der = _call(client.get_public_key, uri, KeyId=key)["PublicKey"]
        try:
            public = check_public(load_der_public_key(der), uri)
        except ValueError as e:
            raise SignatureError("KMS returned a public key that does not parse", uri) from e
    except BaseException:
        client.close()
        raise
    return AwsKmsKey(uri, client, key, ALGORITHMS[spec], public)


def _reason(e: BaseException) -> str:
    response = getattr(e, "response", None)
    if isinstance(response, dict):
        error = response.get("Error", {})
        code, message = error.get("Code"), error.get("Message")
        if code:
            return f"{code}: {message}" if message else str(code)
    return str(e).strip() or type(e).__name__


_WHAT: Final = {
    "NotFoundException": "no such key",
    "DisabledException": "the key is disabled",
    "KMSInvalidStateException": "the key is not in a state that can sign (disabled, or pending deletion)",
    "AccessDeniedException": "access denied",
    "InvalidKeyUsageException": "the key cannot sign",
    "UnrecognizedClientException": "the credentials are not recognised",
}


def _call(method: Any, uri: str, **params: Any) -> Any:
    """One KMS request (botocore retries throttling, 5xx and timeouts as
    its config says); UsageError naming what failed."""
    try:
        return method(**params)
    except Exception as e:
        response = getattr(e, "response", None)
        code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
        if code in _WHAT:
            raise UsageError(f"{_WHAT[code]} ({_reason(e)})", uri) from e
        name = type(e).__name__
        if name in ("NoCredentialsError", "PartialCredentialsError"):
            raise UsageError("no AWS credentials found (environment, profile or instance role)", uri) from e
        raise UsageError(f"AWS KMS failed: {_reason(e)}", uri) from e


class AwsKmsKey(RemoteKey):
    """A KMS signing key, through a boto3 client kept for the command."""

    def __init__(self, uri: str, client: Any, key: str, algorithm: str, public: PublicKey) -> None:
        super().__init__(uri, public, client.close)
        self._client = client
        self._key = key
        self._algorithm = algorithm

    def sign_data(self, data: bytes) -> bytes:
        public = self._public
        assert isinstance(public, ec.EllipticCurvePublicKey)
        if len(data) <= RAW_LIMIT:
            message, kind = data, "RAW"
        else:
            message, kind = hashlib.new(curve_hash(public).name, data).digest(), "DIGEST"
        answer = _call(
            self._client.sign, self.name, KeyId=self._key, Message=message, MessageType=kind,
            SigningAlgorithm=self._algorithm,
        )  # fmt: skip
        return bytes(answer["Signature"])
