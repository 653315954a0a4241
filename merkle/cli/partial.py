"""`merkle verify ... --file NAME [--range S:E | --tensor T | --repair]`:
one file of a (signed) manifest, in whole or in part."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from merkle.cli.output import emit_json
from merkle.display import shown
from merkle.errors import IntegrityError, SourceError, UsageError
from merkle.format.fileproof import prove
from merkle.format.manifest import Manifest, Summary
from merkle.source.layouts import choose_layout
from merkle.source.readers import Counting, Reader, open_file
from merkle.verifying.ranges import FileAuth, repair_plan, verify_range


def file_source(args: argparse.Namespace, manifest: Manifest) -> Reader:
    """PATH is the file itself (opened as named), or the tree root that holds
    NAME, read as the tree check reads it (docs/hf.md HF10: the manifest's
    origin, --layout, --revision): opened below it under the link policy
    (docs/cli.md, Links), or for a Hugging Face cache folder or snapshot, its
    blob (merkle.hf.open_snapshot_file)."""
    path: str = os.fspath(args.path)
    revision = getattr(args, "revision", None)
    follow = getattr(args, "follow_symlinks", False)
    if os.path.isdir(path):
        if choose_layout(path, manifest.origin, getattr(args, "layout", None), revision) == "hf-cache":
            from merkle.hf import open_snapshot_file

            return open_snapshot_file(path, args.file, revision, follow)
        if revision:
            raise UsageError("--revision applies to Hugging Face cache folders", path)
    return open_file(path, args.file, follow)


def verify_file(args: argparse.Namespace, manifest: Manifest, signature: dict[str, Any] | None) -> int:
    if sum(bool(x) for x in (args.range, args.tensor, args.repair)) > 1:
        raise UsageError("choose one of --range, --tensor, --repair")
    auth = FileAuth.of(manifest, args.file)
    # The entry itself is proved a member of the signed dataset tree (RFC 9162).
    membership = prove(manifest, args.file)
    membership.verify(manifest.summary)
    source = Counting(file_source(args, manifest))
    try:
        if args.repair:
            return _repair(args, source, auth, signature)
        if args.tensor:
            return _tensor(args, source, auth, signature)
        start, end = args.range if args.range else (0, auth.entry.size)
        check = verify_range(source, auth, start, end - start)
    finally:
        source.close()
    doc = {**check.to_dict(), "dataset_index": membership.index, "dataset_proof_hashes": len(membership.hashes)}
    if args.json:
        emit_json({**doc, "signature": signature})
    else:
        chunks = (
            f"chunks {check.first_chunk}-{check.last_chunk - 1} of {auth.chunks} verified"
            if check.last_chunk > check.first_chunk
            else "no chunks: an empty file, its size verified"
        )
        print(f"= {shown(args.file)} [{start}, {end})  ({chunks}; {check.bytes_read} bytes read)")
    return 0


def _tensor(args: argparse.Namespace, source: Counting, auth: FileAuth, signature: dict[str, Any] | None) -> int:
    from merkle.verifying.single_file import verify_tensor  # with the safetensors header's parser

    info = verify_tensor(source, auth, args.tensor)
    first, last = info.start // auth.chunk_size, -(-info.end // auth.chunk_size)
    if args.json:
        emit_json(
            {
                "path": auth.name,
                "ok": True,
                "tensor": info.name,
                "dtype": info.dtype,
                "shape": list(info.shape),
                "offset": info.start,
                "length": info.end - info.start,
                "chunks": [first, last],
                "bytes_read_total": source.bytes_read,
                "signature": signature,
            }
        )
    else:
        print(
            f"= {shown(args.file)} tensor {shown(info.name)} {shown(info.dtype)}{list(info.shape)} "
            f"bytes [{info.start}, {info.end})  "
            f"(header and tensor verified; {source.bytes_read} bytes read of {auth.entry.size})"
        )
    return 0


def _repair(args: argparse.Namespace, source: Counting, auth: FileAuth, signature: dict[str, Any] | None) -> int:
    plan = repair_plan(source, auth)  # a local file's holes are found through its open descriptor
    if args.json:
        emit_json({**plan.to_dict(), "signature": signature})
    else:
        c = plan.counts()
        symbol = "=" if plan.ok else "*"
        print(
            f"{symbol} {shown(args.file)}  ({c['good']} good, {c['bad']} bad, {c['missing']} missing of "
            f"{auth.chunks} chunks; local {plan.local_size} of {plan.size} bytes)"
        )
        for a, b in plan.fetch:
            print(f"fetch {a}-{b}")
    return 0 if plan.ok else 1


def run(args: argparse.Namespace, manifest: Manifest | None, signature: dict[str, Any] | None) -> int:
    if manifest is None:
        raise UsageError("--file needs a merkle manifest or bundle (OpenSSF bundles carry no chunk tree)")
    try:
        return verify_file(args, manifest, signature)
    except (SourceError, IntegrityError) as e:
        # Unreadable, or refused by the link policy: `!` and exit 2, as in a tree.  Not the signed bytes: `*`
        # and exit 1.  Anything else cannot be decided and is raised (exit 2).
        failed = isinstance(e, IntegrityError)
        if args.json:
            emit_json({"path": args.file, "ok": False, "error": str(e), "signature": signature})
        else:
            print(f"{'*' if failed else '!'} {shown(args.file)}  ({shown(e.message)})")
        print(f"merkle: {'FAILED' if failed else 'error'}: {e}", file=sys.stderr)
        return e.exit_code


def verify_with_proof(args: argparse.Namespace, summary: Summary, signature: dict[str, Any] | None) -> int:
    """`merkle verify PATH BUNDLE --proof PROOF`: one file against a signed
    dataset root, without the manifest (merkle.verifying.single_file)."""
    from merkle.verifying import single_file

    proof = single_file.read_file_proof(args.proof)
    try:
        single_file.verify_with_proof(args.path, proof, summary)
    except IntegrityError as e:
        if args.json:
            emit_json({"path": proof.entry.path, "ok": False, "error": str(e), "signature": signature})
        else:
            print(f"* {shown(proof.entry.path)}  ({shown(e.message)})")
        print(f"merkle: FAILED: {e}", file=sys.stderr)
        return 1
    if args.json:
        emit_json(
            {
                "path": proof.entry.path,
                "ok": True,
                "index": proof.index,
                "tree_size": proof.tree_size,
                "proof_hashes": len(proof.hashes),
                "signature": signature,
            }
        )
    else:
        print(
            f"= {shown(proof.entry.path)}  (file {proof.index + 1} of {proof.tree_size} in the signed dataset; "
            f"{len(proof.hashes)}-hash proof)"
        )
    return 0
