"""One function per subcommand of the tree (build, verify, audit, prove):
parse-free, print-and-return-exit-code.  What only `build` uses (the
builder) is imported by it, not by `verify`; `merkle hash` is cli/sums.py.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import TYPE_CHECKING, Any

from merkle.cli.options import parse_storage_options
from merkle.cli.output import emit_json, print_report
from merkle.cli.progress import close, make_progress
from merkle.display import shown
from merkle.errors import MerkleError, SourceError, UsageError
from merkle.format.manifest import (
    MANIFEST_SUFFIX,
    METADATA_SUFFIX,
    SIDECAR_SUFFIX,
    Manifest,
    check_chunk_size,
)
from merkle.report import Progress
from merkle.signing.documents import load_document
from merkle.source.local import check_output
from merkle.source.remote import is_url

if TYPE_CHECKING:
    from merkle.hashing.cluster import Cluster
    from merkle.signing.envelope import BundleFile
    from merkle.source.listing import WalkOptions

LEGACY_CHECKPOINT_SUFFIX = ".checkpoint"
OUTPUT_SUFFIXES = ("", SIDECAR_SUFFIX, METADATA_SUFFIX, MANIFEST_SUFFIX, LEGACY_CHECKPOINT_SUFFIX)
"""Every file `build -o OUTPUT` may write: OUTPUT (manifest or bundle), its
leaf sidecar, object-store metadata, a compact bundle's manifest; and
OUTPUT.checkpoint, which earlier versions kept beside it (checkpoints now
live in a private directory and OUTPUT.checkpoint is never read; a leftover
one is not part of the data)."""


def build(args: argparse.Namespace) -> int:
    from merkle.building import BuildOptions, build_resumable
    from merkle.hashing.options import HashOptions

    if args.path.startswith(("oci:", "docker-archive:")):
        from merkle.cli import image

        return image.build(args)
    if args.models or args.model_key or args.model_ca or args.platform:
        raise UsageError("--model and --platform apply to an image: PATH must be oci:DIR[:TAG] or docker-archive:FILE")
    if args.chunk_size is not None:
        check_chunk_size(args.chunk_size)
    if args.format == "oms" and not args.sign:
        raise UsageError("--format oms writes a signed bundle: add --sign KEY")
    if args.compact and (not args.sign or args.format != "merkle"):
        raise UsageError("--compact signs a merkle summary: it needs --sign and --format merkle")
    if args.sign:
        from merkle.cli.signing import signing_key

        signing_key(args)  # a wrong PIN or a disabled KMS key is said before hours of hashing, not after
    if args.json and args.output in (None, "-"):
        raise UsageError("--json prints a summary on stdout: write the manifest with -o FILE")
    exclude = list(args.exclude)
    if args.output not in (None, "-") and args.format == "merkle" and not is_url(args.path):
        exclude += _output_inside(args.path, args.output)
    if args.output not in (None, "-"):
        _writable(args.output)
    if args.resume and (args.dask or args.format != "merkle"):
        raise UsageError("--resume applies to merkle manifests built on this machine (not --dask, not --format oms)")
    if args.update is not None and (args.dask or args.format != "merkle" or args.resume or is_url(args.path)):
        raise UsageError(
            "--update applies to merkle manifests of a local tree built on this machine (not --dask, --resume, "
            "--format oms or a URL)"
        )
    old = _old_manifest(args.update) if args.update is not None else None
    started = time.perf_counter()
    manifest = state = None
    progress = make_progress("hashing", args.quiet or args.json)
    try:
        if args.format == "merkle":
            try:
                # Every build records a checkpoint (in the user's private directory); only --resume reads one.
                manifest, state = build_resumable(
                    args.path,
                    BuildOptions(
                        args.algorithm,
                        args.chunk_size,
                        tuple(exclude),
                        not args.no_default_excludes,
                        args.repo_id,
                        args.repo_type,
                    ),
                    _walk(args),
                    HashOptions(args.jobs, progress, checkpoint=True, resume=args.resume, cluster=_cluster(args)),
                    update=old,
                )
            finally:
                close(progress)
        if args.sign:
            from merkle.cli.signing import sign_built

            verified = sign_built(args, manifest)
            root = verified.root_hex
            files = verified.summary.files if verified.summary else len(verified.oms.resources if verified.oms else ())
            total = manifest.total_size if manifest is not None else None
        else:
            assert manifest is not None
            if args.output and args.output != "-":
                manifest.save(args.output)
            else:
                sys.stdout.buffer.write(manifest.to_json())
                sys.stdout.flush()
            root, files, total = manifest.root.hex(), len(manifest.files), manifest.total_size
    except BaseException:  # the output is not written: what was hashed stays for --resume
        if state is not None:
            state.keep()
        raise
    if state is not None:
        state.discard()  # the output is written: nothing left to resume
    seconds = time.perf_counter() - started
    to_file = args.output not in (None, "-")
    chunk_size = manifest.chunk_size if manifest is not None else args.chunk_size
    if args.json and to_file:
        emit_json(
            {
                "output": args.output,
                "root": root,
                "format": args.format,
                "algorithm": args.algorithm,
                "chunk_size": chunk_size,
                "files": files,
                "bytes": total,
                "seconds": round(seconds, 6),
                "signed": bool(args.sign),
                "resumed": _resumed(args, progress),
                "reused": _reused(args, progress),
            }
        )
    elif not args.quiet:
        print(f"{root}  {args.path}", file=sys.stdout if to_file else sys.stderr)
        rate = f" ({total / seconds / 1e9:.2f} GB/s)" if total and seconds > 0 else ""
        size = f", {total} bytes" if total is not None else ""
        print(
            f"merkle: {files} files{size} in {seconds:.2f} s{rate}" + (f" -> {args.output}" if to_file else ""),
            file=sys.stderr,
        )
        if args.resume:
            print(f"merkle: {_resumed_line(progress, files)}", file=sys.stderr)
        if args.update is not None:
            print(
                f"merkle: --update: reused {progress.updated_files} files ({progress.updated_bytes / 1e9:.2f} GB) "
                f"of {files}",
                file=sys.stderr,
            )
        named = sum(1 for f in manifest.files if f.hub) if manifest is not None else 0
        if manifest is not None and manifest.origin is not None and manifest.origin.type == "git":
            clean = "" if getattr(manifest.origin, "dirty", False) else ": the files are that commit's"
            print(f"merkle: from git {manifest.origin.describe()}{clean}", file=sys.stderr)
        elif manifest is not None and (manifest.origin is not None or named):
            where = manifest.origin.describe() if manifest.origin else "an unknown revision"
            print(
                f"merkle: Hugging Face {where}: {named} of {len(manifest.files)} files carry their Hub identity",
                file=sys.stderr,
            )
        if manifest is not None and ".cache/huggingface" in manifest.exclude and ".cache/huggingface" not in exclude:
            print(
                "merkle: read as a Hugging Face local_dir: .cache/huggingface left out, and recorded so in the "
                "manifest's exclusions (--layout plain hashes it)",
                file=sys.stderr,
            )
        if manifest is not None and manifest.zarr is not None:
            layout = manifest.zarr
            print(
                f"merkle: zarr v{layout.zarr_format} store: {len(layout.arrays)} arrays, {len(layout.groups)} groups "
                f"({manifest.chunk_size >> 10} KiB chunks)",
                file=sys.stderr,
            )
    return 0


def _resumed(args: argparse.Namespace, progress: Progress) -> dict[str, int] | None:
    """For --json: what came from a checkpoint (null without --resume)."""
    return {"files": progress.resumed_files, "bytes": progress.resumed_bytes} if args.resume else None


def _reused(args: argparse.Namespace, progress: Progress) -> dict[str, int] | None:
    """For --json: what --update took from identity records (null without it)."""
    return {"files": progress.updated_files, "bytes": progress.updated_bytes} if args.update is not None else None


def _old_manifest(path: str) -> Manifest:
    """OLD for --update: a manifest, or the manifest a bundle carries.  Its
    signature is not checked: OLD only narrows which of this user's own
    authenticated identity records are reused (merkle.hashing.identities)."""
    document = load_document(path)
    if isinstance(document, Manifest):
        return document
    from merkle.signing.envelope import Statement
    from merkle.signing.statements import PREDICATE_TYPE

    try:  # parsed, not trusted (no trust decision: merkle.signing.trust makes them all)
        stmt = Statement.from_payload(document.bundle.payload, path)
        body = stmt.predicate.get("manifest") if stmt.predicate_type == PREDICATE_TYPE else None
        manifest = Manifest.from_doc(body) if body is not None else None
    except MerkleError as e:
        raise UsageError(f"--update: {e.message}", path) from e
    if manifest is None:
        raise UsageError("--update: the bundle carries no manifest (a compact one: pass its BUNDLE.manifest)", path)
    return manifest


def _resumed_line(progress: Progress, files: int | None) -> str:
    of = f" of {files}" if files is not None else ""
    return (
        f"--resume: {progress.resumed_files}{of} files ({progress.resumed_bytes} bytes) taken from a "
        f"checkpoint, not read again"
    )


def _walk(args: argparse.Namespace) -> WalkOptions:
    """How PATH is read, from the options build and verify share."""
    from merkle.source.listing import WalkOptions

    return WalkOptions(args.follow_symlinks, parse_storage_options(args.storage_option), args.layout, args.revision)


def _cluster(args: argparse.Namespace) -> Cluster | None:
    if not getattr(args, "dask", None):
        return None
    from merkle.dask import DaskCluster

    return DaskCluster.connect(args.dask)


def _writable(output: str) -> None:
    """Fail before hours of hashing, not after: the output's directory must
    exist, and nothing but a regular file may stand at the output path."""
    directory = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(directory):
        raise SourceError(f"cannot write: no directory {directory}", output)
    check_output(output)


def _output_inside(tree: str, output: str) -> list[str]:
    """Exclusions for a manifest or bundle written inside the tree it
    describes, anchored at the root: every file a build to OUTPUT may write
    (OUTPUT_SUFFIXES) whether or not this run writes it, so that no output
    of this or an earlier build, signed or not, compact or not, is hashed."""
    import glob

    rel = os.path.relpath(os.path.realpath(output), os.path.realpath(tree))
    if rel == os.curdir or rel.split(os.sep)[0] == os.pardir:
        return []
    escaped = glob.escape(rel.replace(os.sep, "/"))
    return ["/" + escaped + suffix for suffix in OUTPUT_SUFFIXES]


def _documents(args: argparse.Namespace) -> tuple[list[Manifest], list[BundleFile]]:
    """The sources of verify, audit and prove: one unsigned manifest, or one
    or more bundles with the keys or CAs that must have signed them."""
    loaded = getattr(args, "loaded_policy", None)
    trusted = bool(args.key or args.ca or (loaded is not None and loaded.signers is not None))
    docs = [load_document(p, bundle=trusted) for p in args.sources]
    bundles = [d for d in docs if not isinstance(d, Manifest)]
    manifests = [d for d in docs if isinstance(d, Manifest)]
    if manifests and (bundles or len(manifests) > 1):
        raise UsageError("give one manifest, or one or more bundles")
    if manifests and trusted:
        raise UsageError(f"{args.sources[0]} is an unsigned manifest: --key/--ca apply to signed bundles")
    if manifests and (getattr(args, "expect_name", None) or getattr(args, "min_version", None)):
        raise UsageError(f"{args.sources[0]} is an unsigned manifest: --name/--min-version apply to signed bundles")
    if bundles and not trusted:
        raise UsageError("a signed bundle is only as good as the key that checks it: add --key PUB or --ca CERT")
    return manifests, bundles


def verify(args: argparse.Namespace) -> int:
    if args.path.startswith(("oci:", "docker-archive:")):
        from merkle.cli import image

        return image.verify(args, *_documents(args))
    if getattr(args, "model", None) or getattr(args, "platform", None):
        raise UsageError("--model and --platform apply to an image: PATH must be oci:DIR[:TAG] or docker-archive:FILE")
    if getattr(args, "sarif", None) and not getattr(args, "policy", None):
        raise UsageError("--sarif writes a policy's results: add --policy FILE")
    policy = None
    if getattr(args, "policy", None):
        from merkle.cli import policy as policy_cli

        policy = policy_cli.load(args)  # a bad policy is a usage error before anything is read
    if policy is not None and policy.files is not None and policy.files.forbid and args.allow_extra:
        raise UsageError("--allow-extra lets unsigned files pass, which a policy's forbidden kinds never see: drop it")
    if policy is not None and (args.file or args.proof or args.files or args.sparse):
        raise UsageError("--policy applies to a whole tree: drop --file, --proof, --files and --sparse")
    manifests, bundles = _documents(args)
    if policy is not None and not bundles:
        raise UsageError("a policy reads verified evidence: give a signed bundle (and --key, --ca or policy signers)")
    if (args.range or args.tensor or args.repair) and not args.file:
        raise UsageError("--range, --tensor and --repair need --file NAME")
    if args.file and (args.sparse or args.files):
        raise UsageError("--file checks one file; --sparse and --files are for trees")
    if args.allow_license and (args.file or args.proof):
        raise UsageError("--allow-license applies to a tree: it reads README.md after verifying it")
    verified = None
    if args.proof:
        if not bundles or args.file or args.sparse or args.files:
            raise UsageError("--proof checks one file (PATH) against a signed bundle: give a bundle and --key")
        from merkle.cli import partial
        from merkle.cli.trust import open_bundles, verified_dict

        verified = open_bundles(args, bundles, with_manifest=False)  # the proof needs only the signed summary
        if verified.summary is None:
            raise UsageError("--proof needs a merkle bundle")
        return partial.verify_with_proof(args, verified.summary, verified_dict(verified))
    if args.file:
        from merkle.cli import partial

        manifest, signature = manifests[0] if manifests else None, None
        if bundles:
            from merkle.cli.trust import open_bundles, verified_dict

            verified = open_bundles(args, bundles)
            manifest, signature = verified.manifest, verified_dict(verified)
        return partial.run(args, manifest, signature)
    from merkle.hashing.options import HashOptions  # a tree's check: what --file and --proof never load
    from merkle.verifying.tree import CheckOptions, verify_with

    progress = make_progress("verifying", args.quiet or args.json)
    only = args.files or None
    try:
        check = CheckOptions(args.allow_extra, tuple(args.exclude), args.sparse, only)
        first_bytes = 0
        if policy is not None and policy_cli.needs_kinds(policy):
            from merkle.policy.kinds import HEAD

            first_bytes = HEAD  # each file's first bytes, kept as they are hashed: what the policy reads of them
        walk, hashing = _walk(args), HashOptions(args.jobs, progress)
        if bundles:
            from merkle.cli.trust import store_for, trust_policy
            from merkle.verifying.signed import verify_opened

            verified, report = verify_opened(  # the one trust path: open_signed
                args.path,
                bundles,
                trust_policy(args),
                store=store_for(args),
                check=check,
                walk=walk,
                hashing=hashing,
                head=first_bytes,
            )
        else:
            report = verify_with(args.path, manifests[0], check, walk, hashing)
    finally:
        close(progress)
    code: int = report.exit_code
    extra: dict[str, Any] = {}
    note: str | None = None
    if args.allow_license:  # only then is README.md read, and the Hugging Face code imported
        from merkle.cli.hf import verify_license

        signed = (verified.manifest or verified.oms) if verified is not None else manifests[0]
        code, extra, note = verify_license(args, report, signed)
    policy_lines: list[str] = []
    if policy is not None:
        policy_code, policy_doc, policy_lines = policy_cli.apply(args, policy, report, verified, bundles)
        code = max(code, policy_code)
        extra.update(policy_doc)
    head = None
    if verified is not None:
        from merkle.cli.trust import describe, verified_dict

        extra["signature"] = verified_dict(verified)
        head = describe(verified)
    print_report(args, report, extra, head)
    if note and not args.json:
        print(f"merkle: {shown(note)}", file=sys.stderr)
    if not args.json:
        for line in policy_lines:
            print(f"merkle: {line}", file=sys.stderr)
    return code


def demo(args: argparse.Namespace) -> int:
    from merkle.cli.demo import run

    return run(args.directory)


def prove(args: argparse.Namespace) -> int:
    """`merkle prove MANIFEST NAME... [--names FILE] -o PROOF`: a file proof
    per entry, one per line (a single proof is a proof file)."""
    from merkle.format.fileproof import prove_many
    from merkle.source.local import write_atomic

    names = list(args.name) + (_read_names(args.names) if args.names else [])
    if not names:
        raise UsageError("name a file: NAME or --names FILE")

    args.sources = [args.manifest]
    manifests, bundles = _documents(args)
    if bundles:
        from merkle.cli.trust import open_bundles

        manifest = open_bundles(args, bundles).manifest
        if manifest is None:
            raise UsageError(
                f"prove needs the manifest: a merkle bundle, or a compact one with {args.manifest}{MANIFEST_SUFFIX}",
                args.manifest,
            )
    else:
        manifest = manifests[0]
    data = b"".join(proof.to_json() for proof in prove_many(manifest, names))
    if args.output in (None, "-"):
        sys.stdout.buffer.write(data)
    else:
        write_atomic(args.output, data)
    return 0


def _read_names(source: str) -> list[str]:
    """Paths one per line from a file or '-' (standard input); blank lines
    skipped, nothing else trimmed (a path may begin or end with a space)."""
    try:
        if source == "-":
            text = sys.stdin.buffer.read()
        else:
            with open(source, "rb") as f:
                text = f.read()
        lines = text.decode("utf-8").split("\n")
    except OSError as e:
        raise UsageError(f"cannot read: {e.strerror or e}", source) from e
    except UnicodeDecodeError as e:
        raise UsageError(f"not UTF-8 at byte {e.start}", source) from e
    return [line.removesuffix("\r") for line in lines if line not in ("", "\r")]


def audit(args: argparse.Namespace) -> int:
    """`merkle audit URL SOURCE`: added (+), removed (-), modified (*) and
    unchanged (=) objects, at the depth asked for."""
    import random

    from merkle.hashing.options import HashOptions
    from merkle.source.listing import WalkOptions
    from merkle.verifying import audit as audits

    manifests, bundles = _documents(args)
    signature = None
    if bundles:
        from merkle.cli.trust import describe, open_bundles, verified_dict

        verified = open_bundles(args, bundles)
        if verified.manifest is None:
            raise UsageError("audit needs the manifest: a merkle bundle, or a compact one with BUNDLE.manifest")
        manifest, signature = verified.manifest, verified_dict(verified)
        if not args.json:
            print(f"merkle: {describe(verified)}", file=sys.stderr)
    else:
        manifest = manifests[0]
    options = parse_storage_options(args.storage_option)
    if args.checkpoint is not None:
        raise UsageError(
            "--checkpoint FILE is gone: a full audit keeps its checkpoint in a private per-user "
            "directory by itself; rerun with --resume to reuse it"
        )
    if args.resume and (args.fast or args.sample is not None or args.dask):
        raise UsageError("--resume applies to a full audit on this machine (not --fast, --sample or --dask)")
    sample = None
    progress = Progress()
    if args.fast:
        report = audits.audit_fast(args.path, manifest, options)
        mode = "fast: metadata only (size, ETag, VersionId), NOT a cryptographic check"
    elif args.sample is not None:
        seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
        report, sample = audits.audit_sample(args.path, manifest, args.sample, seed, options, args.jobs)
        mode = f"sample: {sample.statement()}"
    else:
        progress = make_progress("auditing", args.quiet or args.json)
        try:
            # Every full audit records a checkpoint (in the user's private directory); only --resume reads one.
            cluster = _cluster(args)
            report = audits.audit_full(
                args.path,
                manifest,
                WalkOptions(storage_options=options),
                HashOptions(args.jobs, progress, checkpoint=cluster is None, resume=args.resume, cluster=cluster),
            )
        finally:
            close(progress)
        mode = "full: every byte rehashed"
    extra: dict[str, Any] = {
        "mode": mode.split(":", 1)[0],
        "signature": signature,
        "sample": sample.to_dict() if sample else None,
        "resumed": _resumed(args, progress),
    }
    notes = [f"audit {mode}"]
    if args.resume:
        notes.append(_resumed_line(progress, None))
    if manifest.zarr is not None:  # a zarr store: what changed, array by array
        from merkle.zarr.audit import array_line, by_array

        extra["arrays"] = by_array(manifest.zarr, ((o.path, o.status.value) for o in report.outcomes))
        notes += [shown(array_line(name, counts)) for name, counts in extra["arrays"].items()]
    print_report(args, report, extra, notes=notes)
    return report.exit_code
