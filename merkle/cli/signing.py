"""Subcommands for keys, signatures and the attestation store (keygen, sign,
store, build --sign).  Imported only by them: what verify needs of the
trust options is cli/trust.py."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from merkle.cli.output import emit_json
from merkle.cli.trust import describe, store_for, trust_policy
from merkle.display import shown
from merkle.errors import MerkleError, UsageError
from merkle.format.manifest import Manifest
from merkle.signing import oms, statements
from merkle.signing.attestations import Store
from merkle.signing.documents import load_document
from merkle.signing.envelope import Bundle, BundleFile
from merkle.signing.keys import (
    SigningKey,
    generate,
    key_id,
    load_certificates,
    passphrase_from_environment,
    write_keypair,
)
from merkle.signing.signers import open_signing_key
from merkle.signing.statements import Verified
from merkle.signing.writing import cosign, write_signed
from merkle.verifying.signed import open_signed


def signing_key(args: argparse.Namespace, spec: str | None = None) -> SigningKey:
    """The key of --sign (`spec` for `merkle sign --key`): a PEM key file, a
    key on a PKCS#11 token or in AWS KMS (signers.open_signing_key), opened once
    per command, before any content is read where the command can."""
    opened: SigningKey | None = getattr(args, "opened_signing_key", None)
    if opened is None:
        from merkle.cli.options import parse_storage_options

        options = parse_storage_options(getattr(args, "signer_option", []), "--signer-option")
        opened = open_signing_key(spec or args.sign, options)
        args.opened_signing_key = opened
    return opened


def certificates_for(args: argparse.Namespace, key: SigningKey) -> list[bytes]:
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


def _output(args: argparse.Namespace) -> str:
    output: str | None = args.output
    if not output or output == "-":
        raise UsageError("a signed bundle needs -o BUNDLE")
    return output


def _write(
    args: argparse.Namespace, bundle: Bundle, key: SigningKey, manifest: Manifest | None, compact: bool = False
) -> Verified:
    return write_signed(_output(args), bundle, key, manifest, store_for(args), compact=compact)


def sign_built(args: argparse.Namespace, manifest: Manifest | None) -> Verified:
    """`merkle build --sign`: the manifest (or, with --format oms, the model
    directory) signed in one step."""
    key = signing_key(args)
    certs = certificates_for(args, key)
    if args.format == "oms":
        if not isinstance(key.public_key(), ec.EllipticCurvePublicKey):
            raise UsageError("OpenSSF model-signing verifies ECDSA keys only: a P-256, P-384 or P-521 key", args.sign)
        if os.path.realpath(args.output) == os.path.realpath(args.path):
            raise UsageError("the bundle would replace the model it signs: write it elsewhere with -o", args.output)
        ignore = []
        # Resolved as build's own exclusions are (commands._output_inside): a
        # PATH named through a link still holds the bundle written below it.
        inside = os.path.relpath(os.path.realpath(args.output), os.path.realpath(args.path))
        if not inside.startswith(".." + os.sep) and inside != "..":
            ignore.append(inside.replace(os.sep, "/"))
        if args.follow_symlinks:
            raise UsageError("--follow-symlinks applies to merkle manifests: an OpenSSF statement signs no links")
        stmt = oms.build(
            args.path,
            name=args.name,
            ignore_paths=ignore,
            exclude=args.exclude,
            default_ignores=not args.no_default_excludes,
            jobs=args.jobs,
            layout=args.layout,
            revision=args.revision,
        )
        bundle = statements.sign_statement(stmt.to_statement(), key, certs)
        return _write(args, bundle, key, None)
    assert manifest is not None
    name = args.name or os.path.basename(os.path.abspath(args.path))
    bundle = statements.sign(
        manifest,
        key,
        name=name,
        version=args.statement_version,
        expires=args.expires,
        certificates=certs,
        compact=args.compact,
    )
    return _write(args, bundle, key, manifest, compact=args.compact)


def sign(args: argparse.Namespace) -> int:
    """`merkle sign DOC`: sign a manifest, or co-sign the statement of a bundle."""
    key = signing_key(args, args.key)
    certs = certificates_for(args, key)
    doc = load_document(args.document)
    if isinstance(doc, Manifest):
        name = args.name or _stem(args.document)
        bundle = statements.sign(
            doc, key, name=name, version=args.statement_version, expires=args.expires, certificates=certs
        )
        verified = _write(args, bundle, key, doc)
    else:
        verified = _cosign(args, doc, key, certs)
    _report_signed(args, verified)
    return 0


def _cosign(args: argparse.Namespace, doc: BundleFile, key: SigningKey, certs: list[bytes]) -> Verified:
    """Co-sign what the bundle's own signers signed, and only that: the
    bundle is opened through the one trust path first (with --verify-key or
    --verify-ca naming its signers, and the store's rollback records), so a
    forged or expired statement is never given a second signature."""
    if args.name or args.expires or args.statement_version is not None:
        raise UsageError("co-signing keeps the statement as signed: drop --name, --version, --expires")
    if not (args.verify_key or args.verify_ca):
        raise UsageError(
            "co-signing checks the bundle first: name its signers with --verify-key PUB or --verify-ca CERT"
        )
    existing = open_signed([doc], trust_policy(args, "verify_"), store_for(args), with_manifest=False)
    if not args.json:
        print(f"merkle: {describe(existing)}; co-signing it", file=sys.stderr)
    return cosign(doc, key, _output(args), store_for(args), certs)


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
        version = f"version {verified.version}" if verified.version is not None else "without a version"
        print(
            f"merkle: signed '{shown(verified.name)}' {version} ({verified.root_hex[:16]}...) "
            f"with {verified.signers[0].algorithm} key {verified.signers[0].key_id[:16]} -> {args.output}",
            file=sys.stderr,
        )


def keygen(args: argparse.Namespace) -> int:
    passphrase = None
    if args.encrypt:
        passphrase = passphrase_from_environment(f"Passphrase for {args.output}: ", confirm=True)
        if not passphrase:
            raise UsageError("--encrypt needs a passphrase: set MERKLE_KEY_PASSPHRASE or run in a terminal")
    key = generate(args.type)
    write_keypair(args.output, key, passphrase)
    print(
        f"merkle: wrote {args.output} (private{', encrypted' if passphrase else ''}) and {args.output}.pub; "
        f"{args.type} key {key_id(key.public_key())[:16]}",
        file=sys.stderr,
    )
    return 0


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
        version = "-" if e.version is None else e.version
        print("  ".join(shown(str(x)) for x in (e.id[:16], e.name, f"v{version}", e.kind, f"root {e.root}", e.path)))
    return 0


def key_export(args: argparse.Namespace) -> int:
    """`merkle key export KEY -o PUB`: the public key of any key merkle signs
    with, as PEM (what verifiers give as --key)."""
    from merkle.signing.keys import RemoteKey, algorithm_name, public_pem, sign_bytes
    from merkle.source.local import write_atomic

    if args.output != "-":
        _check_export_target(args.output, args.key_spec)
    key = signing_key(args, args.key_spec)
    public = key.public_key()
    if isinstance(key, RemoteKey):
        # The step that publishes the key proves the pair first: a stale public key object beside a
        # token's key, or a service's wrong answer, would hand verifiers a key no signature matches.
        sign_bytes(key, os.urandom(32))
    pem = public_pem(public)
    if args.output == "-":
        sys.stdout.write(pem.decode())
    else:
        write_atomic(args.output, pem)
    print(f"merkle: {algorithm_name(public)} key {key_id(public)[:16]} -> {shown(args.output)}", file=sys.stderr)
    return 0


def _check_export_target(output: str, spec: str) -> None:
    """`key export -o` replaces only a PEM public key: never the key file
    it reads, a private key, or anything else (keygen never overwrites
    either)."""
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    from merkle.signing.keys import MAX_KEY_BYTES
    from merkle.source.local import read_capped

    if not os.path.lexists(output):
        return
    if os.path.exists(spec) and os.path.realpath(output) == os.path.realpath(spec):
        raise UsageError("is the key being exported: write the public key elsewhere", output)
    try:
        load_pem_public_key(read_capped(output, MAX_KEY_BYTES, follow_symlinks=False))
    except (ValueError, UsageError, MerkleError):
        raise UsageError("exists and is not a PEM public key: not overwriting it", output) from None
