"""Signing to disk: a bundle checked as a verifier would check it, then
written with its companions, and kept in the attestation store.

A bundle is written last, each file atomically, so a bundle on disk always
has its companions beside it: the leaf sidecar (BUNDLE.leaves), the object
metadata (BUNDLE.objects.json), and for a compact statement the manifest
itself (BUNDLE.manifest); they are written by the one writer of the files
beside a manifest, merkle.format.manifest.Manifest.save_beside.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from collections.abc import Sequence

from merkle.format.manifest import MANIFEST_SUFFIX, SIDECAR_SUFFIX, Manifest
from merkle.signing import statements, trust
from merkle.signing.attestations import Store, StoreChoice, as_store
from merkle.signing.envelope import Bundle, BundleFile
from merkle.signing.keys import RemoteKey, SigningKey
from merkle.signing.signers import open_signing_key
from merkle.signing.statements import Verified
from merkle.signing.trust import History, TrustPolicy
from merkle.source.local import write_atomic


def self_check(bundle: Bundle, key: SigningKey, output: str, store: Store | None = None) -> Verified:
    """Open what was just signed, as a verifier would (catches a bad key or
    statement before anyone else meets it); the chain is the verifier's
    business, and no history applies, except that a version this key
    signed (or this machine verified) before with another root is refused:
    every verifier that saw that one would refuse this one forever."""
    plain = dataclasses.replace(bundle, certificates=())
    verified = trust.decide([(plain, output)], TrustPolicy(keys=(key.public_key(),)), History())
    if store is not None:
        trust.check_reuse(store.history(), verified, output)
    return verified


def write_signed(
    output: str,
    bundle: Bundle,
    key: SigningKey,
    manifest: Manifest | None,
    store: Store | None,
    *,
    compact: bool = False,
) -> Verified:
    """Check `bundle`, then write it to `output` with the leaf sidecar and
    object metadata of `manifest` beside it, and with `compact` the manifest
    itself (OUTPUT.manifest).  Keep it in `store`."""
    verified = self_check(bundle, key, output, store)
    _save(output, bundle, verified, manifest, store, compact)
    return verified


def cosign(
    original: BundleFile,
    key: SigningKey,
    output: str,
    store: Store | None,
    certificates: Sequence[bytes] = (),
) -> Verified:
    """Sign with `key` exactly the statement `original` carries (co-signers
    sign the same bytes) and write the bundle to `output`, with the leaf
    sidecar beside `original` carried over when it authenticates.

    Co-sign only what verified: open `original` through the one trust path
    (merkle.verifying.signed.open_signed, with its signers' keys) first, so
    that a forged or expired statement is never given a second signature."""
    bundle = statements.sign_payload(original.bundle.payload, key, certificates)
    verified = self_check(bundle, key, output, store)
    sidecar = original.path + SIDECAR_SUFFIX
    carried = None
    if verified.manifest is not None and os.path.exists(sidecar):
        carried = verified.manifest.with_sidecar(sidecar)
    _save(output, bundle, verified, carried, store, compact=False)
    return verified


def _save(
    output: str, bundle: Bundle, verified: Verified, manifest: Manifest | None, store: Store | None, compact: bool
) -> None:
    data = bundle.to_json()
    if manifest is not None:
        if compact:
            write_atomic(output + MANIFEST_SUFFIX, manifest.to_json())
        manifest.save_beside(output)
    write_atomic(output, data)
    if store is not None:
        store.add(data, verified)


def sign(
    manifest: Manifest,
    key: SigningKey | str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    name: str,
    version: int | None = None,
    expires: datetime.datetime | None = None,
    certificates: Sequence[bytes] = (),
    compact: bool = False,
    attestations: StoreChoice = True,
) -> Verified:
    """Sign `manifest` as subject `name` and write the bundle to `output`
    (with OUTPUT.leaves, and OUTPUT.manifest when `compact`).  `version`,
    when given, makes verifiers refuse older versions of `name` from this
    signer; `key` is a private key, a key in a token or KMS (keys.RemoteKey), or
    what signers.open_signing_key opens: a PEM key file, `pkcs11:...`, `awskms://...`."""
    opened = open_signing_key(os.fspath(key)) if isinstance(key, (str, os.PathLike)) else None
    private = opened if opened is not None else key
    assert not isinstance(private, (str, os.PathLike))
    try:
        bundle = statements.sign(
            manifest, private, name=name, version=version, expires=expires, certificates=certificates, compact=compact
        )
        return write_signed(os.fspath(output), bundle, private, manifest, as_store(attestations), compact=compact)
    finally:
        if isinstance(opened, RemoteKey):
            opened.close()  # a session or client this call opened; one the caller passed is the caller's
