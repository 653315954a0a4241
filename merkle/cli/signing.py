"""Subcommands and options for keys, signatures and the attestation store."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .. import attest, oms
from ..attest import Verified
from ..display import shown
from ..documents import load_document
from ..envelope import Bundle, Statement
from ..errors import UsageError
from ..manifest import MANIFEST_SUFFIX, METADATA_SUFFIX, SIDECAR_SUFFIX, Manifest
from ..signing import (
    PrivateKey,
    TrustPolicy,
    generate,
    key_id,
    load_certificates,
    load_private_key,
    load_public_key,
    passphrase_from_environment,
    write_keypair,
)
from ..sources.local import write_atomic
from ..store import Store
from ..timestamps import format_time
from .output import emit_json


def trust_policy(args: argparse.Namespace) -> TrustPolicy:
    keys = tuple(load_public_key(k) for k in args.key)
    roots = tuple(load_certificates(args.ca))
    return TrustPolicy(keys, roots, args.threshold)


def store_for(args: argparse.Namespace) -> Store | None:
    return None if getattr(args, "no_store", False) else Store(args.store)


def _certificates(args: argparse.Namespace, key: PrivateKey) -> list[bytes]:
    if not args.cert:
        if args.cert_chain:
            raise UsageError("--cert-chain needs --cert")
        return []
    leaf, *rest = load_certificates([args.cert])
    if rest:
        raise UsageError("--cert holds more than one certificate; put the others in --cert-chain", args.cert)
    pem = serialization.Encoding.PEM
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    if leaf.public_key().public_bytes(pem, spki) != key.public_key().public_bytes(pem, spki):
        raise UsageError("the certificate is not for this key", args.cert)
    chain = [leaf, *load_certificates(args.cert_chain)]
    return [c.public_bytes(serialization.Encoding.DER) for c in chain]


def _self_check(bundle: Bundle, key: PrivateKey, output: str) -> Verified:
    """Open what we just signed, as a verifier would (catches a bad key
    before anyone else meets it); the chain is the verifier's business."""
    plain = dataclasses.replace(bundle, certificates=())
    return attest.open_bundles([(plain, output)], TrustPolicy(keys=(key.public_key(),)))


def write_signed(args: argparse.Namespace, bundle: Bundle, key: PrivateKey, manifest: Manifest | None) -> Verified:
    output = args.output
    if not output or output == "-":
        raise UsageError("a signed bundle needs -o BUNDLE")
    verified = _self_check(bundle, key, output)
    data = bundle.to_json()
    if manifest is not None and manifest.layers is not None:
        write_atomic(output + SIDECAR_SUFFIX, manifest.layers.to_bytes(manifest))
    if manifest is not None and manifest.metadata:
        write_atomic(output + METADATA_SUFFIX, (json.dumps(dict(manifest.metadata)) + "\n").encode())
    write_atomic(output, data)
    store = Store(args.store)
    store.add(data, verified)
    return verified


def sign_built(args: argparse.Namespace, manifest: Manifest | None) -> Verified:
    """`merkle build --sign`: the manifest (or, with --format oms, the model
    directory) signed in one step."""
    key = load_private_key(args.sign)
    certs = _certificates(args, key)
    if args.format == "oms":
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise UsageError("OpenSSF model-signing verifies ECDSA keys only: use an ecdsa-p256/p384 key", args.sign)
        ignore = []
        inside = os.path.relpath(os.path.abspath(args.output), os.path.abspath(args.path))
        if not inside.startswith(".." + os.sep) and inside != "..":
            ignore.append(inside.replace(os.sep, "/"))
        stmt = oms.build(args.path, name=args.name, ignore_paths=ignore, jobs=args.jobs)
        bundle = attest.sign_statement(stmt.to_statement(), key, certs)
        return write_signed(args, bundle, key, None)
    assert manifest is not None
    name = args.name or os.path.basename(os.path.abspath(args.path))
    bundle = attest.sign(manifest, key, name=name, version=args.statement_version, expires=args.expires,
                         certificates=certs, compact=args.compact)
    if args.compact:
        write_atomic(args.output + MANIFEST_SUFFIX, manifest.to_json())
    return write_signed(args, bundle, key, manifest)


def sign(args: argparse.Namespace) -> int:
    """`merkle sign DOC`: sign a manifest, or co-sign the statement of a bundle."""
    key = load_private_key(args.key)
    certs = _certificates(args, key)
    doc = load_document(args.document)
    if isinstance(doc, Manifest):
        name = args.name or _stem(args.document)
        bundle = attest.sign(doc, key, name=name, version=args.statement_version, expires=args.expires,
                             certificates=certs)
        verified = write_signed(args, bundle, key, doc)
    else:
        original, _ = doc
        Statement.from_payload(original.payload, args.document)  # co-sign only a well-formed statement
        if args.name or args.expires or args.statement_version != 1:
            raise UsageError("co-signing keeps the statement as signed: drop --name, --version, --expires")
        bundle = attest.sign_payload(original.payload, key, certs)
        manifest = None
        sidecar = args.document + SIDECAR_SUFFIX
        verified = write_signed(args, bundle, key, manifest)
        if os.path.exists(sidecar) and verified.manifest is not None:
            layered = verified.manifest.with_sidecar(sidecar)
            if layered.layers is not None:
                write_atomic(args.output + SIDECAR_SUFFIX, layered.layers.to_bytes(layered))
    _report_signed(args, verified)
    return 0


def _stem(path: str) -> str:
    base = os.path.basename(path)
    for suffix in (".json", ".merkle"):
        base = base.removesuffix(suffix)
    return base or "dataset"


def _report_signed(args: argparse.Namespace, verified: Verified) -> None:
    info = {
        "bundle": args.output,
        "name": verified.name,
        "version": verified.version,
        "root": verified.root_hex,
        "signer": verified.signers[0].key_id,
        "algorithm": verified.signers[0].algorithm,
    }
    if getattr(args, "json", False):
        emit_json(info)
    else:
        print(f"merkle: signed '{shown(verified.name)}' version {verified.version} ({verified.root_hex[:16]}...) "
              f"with {verified.signers[0].algorithm} key {verified.signers[0].key_id[:16]} -> {args.output}",
              file=sys.stderr)


def keygen(args: argparse.Namespace) -> int:
    passphrase = None
    if args.encrypt:
        passphrase = passphrase_from_environment(f"Passphrase for {args.output}: ", confirm=True)
        if not passphrase:
            raise UsageError("--encrypt needs a passphrase: set MERKLE_KEY_PASSPHRASE or run in a terminal")
    key = generate(args.type)
    write_keypair(args.output, key, passphrase)
    print(f"merkle: wrote {args.output} (private{', encrypted' if passphrase else ''}) and {args.output}.pub; "
          f"{args.type} key {key_id(key.public_key())[:16]}", file=sys.stderr)
    return 0


def describe(verified: Verified) -> str:
    signers = ", ".join(f"{shown(s.key_id[:16])} ({s.algorithm}{', ' + shown(s.subject) if s.subject else ''})"
                        for s in verified.signers)
    kind = "OpenSSF model-signing statement" if verified.oms else f"version {verified.version}"
    expires = f", expires {format_time(verified.expires)}" if verified.expires else ""
    return f"signature ok: '{shown(verified.name)}' {kind}{expires}, signed by {signers}"


def verified_dict(verified: Verified) -> dict[str, Any]:
    return {
        "name": verified.name,
        "format": "oms" if verified.oms else "merkle",
        "version": verified.version,
        "expires": format_time(verified.expires) if verified.expires else None,
        "signers": [{"key_id": s.key_id, "algorithm": s.algorithm, "subject": s.subject} for s in verified.signers],
    }


def store_list(args: argparse.Namespace) -> int:
    entries = Store(args.store).entries()
    return _print_entries(args, entries)


def store_show(args: argparse.Namespace) -> int:
    entries = Store(args.store).find(args.ref)
    if not entries:
        raise UsageError(f"nothing in the store matches {args.ref!r}")
    return _print_entries(args, entries)


def _print_entries(args: argparse.Namespace, entries: list[Any]) -> int:
    if args.json:
        emit_json([e.to_dict() for e in entries])
        return 0
    for e in entries:
        # The index is local state anyone with the store's rights can edit.
        print("  ".join(shown(str(x)) for x in (e.id[:16], e.name, f"v{e.version}", e.kind, f"root {e.root}", e.path)))
    return 0

