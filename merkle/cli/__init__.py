"""The `merkle` command line.  Exit codes: 0 verified, 1 integrity failure,
2 usage error or unreadable input (docs/cli.md)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import warnings
from collections.abc import Callable, Sequence

from merkle import __version__
from merkle.cli import commands, hf, options
from merkle.cli.options import KEY_TYPES, parse_size, positive_int
from merkle.display import shown
from merkle.errors import MerkleError, spelled
from merkle.format.manifest import DEFAULT_CHUNK_SIZE
from merkle.tree.hasher import ALGORITHMS, DEFAULT_ALGORITHM


def _common(
    p: argparse.ArgumentParser,
    hashing: bool = True,
    chunk_size: int | None = DEFAULT_CHUNK_SIZE,
    chunk_help: str = "1M",
) -> None:
    if hashing:
        p.add_argument(
            "--algorithm", choices=ALGORITHMS, default=DEFAULT_ALGORITHM, help="hash function (default: %(default)s)"
        )
        p.add_argument(
            "--chunk-size",
            type=parse_size,
            default=chunk_size,
            metavar="SIZE",
            help=f"chunk size, a power of two from 1K to 1G (default: {chunk_help})",
        )
    p.add_argument(
        "--jobs", "-j", type=positive_int, default=None, metavar="N", help="worker threads (default: one per CPU)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar; print only problems")


def _storage_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--storage-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="fsspec storage option for URL paths (JSON values allowed, e.g. "
        'client_kwargs=\'{"endpoint_url": "http://127.0.0.1:9000"}\'); repeatable',
    )


def _dask_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dask",
        metavar="ADDRESS",
        help="hash on a dask.distributed cluster (scheduler address, "
        "or 'local' for a cluster on this machine); the result is identical to a local run",
    )


def _walk_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="GLOB",
        help="skip names (or, with a '/', relative paths) matching GLOB; repeatable",
    )
    p.add_argument(
        "--follow-symlinks",
        action="store_true",
        help="follow symbolic links that resolve inside the root (refused by default)",
    )


def _range(text: str) -> tuple[int, int]:
    from merkle.cli.partial import parse_range

    return parse_range(text)


def _signing(name: str) -> Callable[[argparse.Namespace], int]:
    """A subcommand of cli/signing.py, imported when it runs (it pulls in
    `cryptography`, which the hashing commands do not need)."""

    def run(args: argparse.Namespace) -> int:
        from merkle.cli import signing

        result: int = getattr(signing, name)(args)
        return result

    return run


def _doctor(args: argparse.Namespace) -> int:
    from merkle.cli.doctor import doctor

    return doctor(args)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="merkle",
        description="Chunked Merkle manifests for models and datasets: build, verify, hash.",
        epilog="Exit status: 0 verified, 1 integrity failure, 2 usage error or unreadable input.",
    )
    parser.add_argument("--version", action="version", version=f"merkle {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("build", help="hash a directory into a manifest")
    p.add_argument("path", metavar="PATH", help="directory to hash")
    p.add_argument(
        "-o",
        "--output",
        metavar="MANIFEST",
        help="manifest file to write (default: stdout); the leaf sidecar goes to MANIFEST.leaves",
    )
    p.add_argument("--no-default-excludes", action="store_true", help="do not skip .git")
    p.add_argument("--sign", metavar="KEY", help="sign with this private key; -o then names the bundle")
    p.add_argument(
        "--format",
        choices=("merkle", "oms"),
        default="merkle",
        help="with --sign: merkle statement (default) or an OpenSSF model-signing bundle",
    )
    p.add_argument(
        "--compact",
        action="store_true",
        help="with --sign: sign only the root and parameters; the manifest goes to BUNDLE.manifest",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="reuse the files an interrupted or failed run of the same build finished (kept in a private "
        "per-user checkpoint directory); the summary says how many",
    )
    options.add_sign_options(p)
    options.add_store_option(p, no_store=True)
    hf.add_options(p)
    hf.add_layout_option(p, build=True)
    p.add_argument(
        "--repo-id",
        metavar="ORG/NAME",
        help="Hugging Face local_dir checkout: the repository to record (a cache folder names its own)",
    )
    p.add_argument(
        "--repo-type",
        choices=("model", "dataset", "space"),
        help="Hugging Face local_dir checkout: the kind of repository (default: model)",
    )
    _storage_option(p)
    _dask_option(p)
    _walk_options(p)
    _common(p, chunk_size=None, chunk_help="1M, 64K for a zarr store")  # the builder picks by source
    p.set_defaults(run=commands.build)

    p = sub.add_parser("verify", help="check a directory against a manifest or signed bundles")
    p.add_argument("path", metavar="PATH", help="directory to check")
    p.add_argument(
        "sources",
        nargs="+",
        metavar="MANIFEST|BUNDLE",
        help="a manifest written by 'merkle build', or one or more signed bundles",
    )
    p.add_argument("--allow-extra", action="store_true", help="files the manifest does not list are not a failure")
    p.add_argument(
        "--sparse", action="store_true", help="listed files absent on disk are reported absent (~), not a failure"
    )
    p.add_argument("--files", nargs="+", metavar="NAME", help="check only these listed paths")
    p.add_argument("--file", metavar="NAME", help="check one listed file (PATH is the tree or the file itself)")
    p.add_argument(
        "--range",
        type=_range,
        metavar="START:END",
        help="with --file: check only these bytes (half-open; 1M suffixes), reading only their chunks",
    )
    p.add_argument("--tensor", metavar="TENSOR", help="with --file: a safetensors file's header and this tensor")
    p.add_argument(
        "--repair",
        action="store_true",
        help="with --file: good, bad and missing chunks, and the byte ranges to fetch again",
    )
    p.add_argument(
        "--proof",
        metavar="PROOF",
        help="check the single file PATH with a file proof ('merkle prove') against the bundle's root",
    )
    hf.add_license_option(p)
    hf.add_options(p)
    hf.add_layout_option(p, build=False)
    options.add_trust_options(p)
    _storage_option(p)
    _walk_options(p)
    _common(p, hashing=False)
    p.set_defaults(run=commands.verify)

    p = sub.add_parser("audit", help="what was added, removed or changed in a dataset since it was signed")
    p.add_argument("path", metavar="URL", help="dataset root: an fsspec URL (s3://bucket/prefix) or a directory")
    p.add_argument("sources", nargs="+", metavar="MANIFEST|BUNDLE")
    depth = p.add_mutually_exclusive_group()
    depth.add_argument(
        "--sample",
        type=float,
        metavar="FRACTION",
        help="check a random FRACTION of all chunks against their proofs, not every byte",
    )
    depth.add_argument(
        "--fast",
        action="store_true",
        help="compare only size, ETag and VersionId recorded at build time (not cryptographic)",
    )
    p.add_argument("--seed", type=int, default=None, help="random seed for --sample (default: random)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="full audit: reuse the objects an interrupted run of the same audit finished (kept in a "
        "private per-user checkpoint directory); the summary says how many",
    )
    p.add_argument("--checkpoint", metavar="FILE", help=argparse.SUPPRESS)  # gone: an error that says what instead
    options.add_trust_options(p)
    _storage_option(p)
    _dask_option(p)
    _common(p, hashing=False)
    p.set_defaults(run=commands.audit)

    p = sub.add_parser("prove", help="write the proof that one file belongs to a manifest's dataset root")
    p.add_argument(
        "manifest",
        metavar="MANIFEST|BUNDLE",
        help="a manifest, or a bundle (with --key or --ca; a compact one needs BUNDLE.manifest)",
    )
    p.add_argument("name", metavar="NAME", help="the file's path in the manifest")
    p.add_argument("-o", "--output", metavar="PROOF", help="proof file to write (default: stdout)")
    options.add_trust_options(p)
    p.set_defaults(run=commands.prove)

    p = sub.add_parser("keygen", help="write a new signing key pair: KEY and KEY.pub")
    p.add_argument("-o", "--output", required=True, metavar="KEY", help="private key file (public key: KEY.pub)")
    p.add_argument("--type", choices=KEY_TYPES, default="ecdsa-p256", help="key type (default: %(default)s)")
    p.add_argument(
        "--encrypt",
        action="store_true",
        help="encrypt the private key (passphrase from $MERKLE_KEY_PASSPHRASE or a prompt)",
    )
    p.set_defaults(run=_signing("keygen"))

    p = sub.add_parser("sign", help="sign a manifest, or co-sign a bundle's statement")
    p.add_argument("document", metavar="MANIFEST|BUNDLE")
    p.add_argument("--key", required=True, metavar="KEY", help="private key")
    p.add_argument("-o", "--output", required=True, metavar="BUNDLE", help="bundle to write")
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    options.add_sign_options(p)
    options.add_trust_options(p, prefix="verify-")  # co-signing: who signed the bundle being co-signed
    options.add_store_option(p, no_store=True)
    p.set_defaults(run=_signing("sign"))

    p = sub.add_parser("store", help="list or show attestations kept in the store")
    store_sub = p.add_subparsers(dest="store_command", metavar="ACTION", required=True)
    q = store_sub.add_parser("list", help="every bundle kept")
    options.add_store_option(q)
    q.add_argument("--json", action="store_true")
    q.set_defaults(run=_signing("store_list"))
    q = store_sub.add_parser("show", help="bundles by id prefix, dataset root or subject name")
    q.add_argument("ref", metavar="REF")
    options.add_store_option(q)
    q.add_argument("--json", action="store_true")
    q.set_defaults(run=_signing("store_show"))

    p = sub.add_parser("hf", help="Hugging Face checkouts: verify a cache folder, snapshot or local_dir offline")
    hf_sub = p.add_subparsers(dest="hf_command", metavar="ACTION", required=True)
    q = hf_sub.add_parser(
        "verify",
        help="check every downloaded file against the Hub's own identity (sha256 for "
        "LFS files, git blob id otherwise), offline; name missing, partial and corrupt files",
    )
    q.add_argument(
        "path",
        metavar="PATH|ORG/NAME",
        help="models--ORG--NAME cache folder, one of its snapshots, a "
        "local_dir, or a repository id to find in the cache ($HF_HUB_CACHE, else ~/.cache/huggingface/hub)",
    )
    q.add_argument("--repo-type", choices=("model", "dataset", "space"), help="with ORG/NAME: the kind of repository")
    q.add_argument("--cache-dir", metavar="DIR", help="with ORG/NAME: the cache to look in")
    hf.add_options(q)
    q.add_argument(
        "--require-all",
        action="store_true",
        help="files of the revision that are not downloaded fail (default: a sparse checkout is fine)",
    )
    q.add_argument(
        "--xet", action="store_true", help="also recompute Xet hashes where the tree listing has them (needs hf_xet)"
    )
    hf.add_license_option(q)
    _common(q, hashing=False)
    q.set_defaults(run=hf.hf_verify)

    p = sub.add_parser("hash", help="print the Merkle root of files, like b3sum")
    p.add_argument("files", nargs="+", metavar="FILE", help="files to hash ('-' for stdin); with --check, sums files")
    p.add_argument("--check", "-c", action="store_true", help="read 'ROOT  PATH' lines from FILEs and check them")
    _common(p)
    p.set_defaults(run=commands.hash_)

    p = sub.add_parser(
        "doctor",
        help="which implementation runs the hot paths (C extension or pure Python), "
        "the blake3 build and the CPU features seen",
    )
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    p.set_defaults(run=_doctor)

    p = sub.add_parser("demo", help="build, verify, tamper and re-verify a small generated model")
    p.add_argument("directory", nargs="?", help="where to put the example (default: a temporary directory)")
    p.set_defaults(run=commands.demo, json=False, quiet=False)
    return parser


def _warn(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: object = None,
    line: str | None = None,
) -> None:
    print(f"merkle: warning: {shown(str(message))}", file=sys.stderr)


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through finally: temporary files go


def main(argv: Sequence[str] | None = None) -> int:
    warnings.showwarning = _warn
    signal.signal(signal.SIGTERM, _terminate)
    parser = make_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        with spelled(options.FLAGS):
            return int(args.run(args))
    except MerkleError as e:
        print(f"merkle: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("merkle: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 2
    except OSError as e:
        where = f"{e.filename}: " if e.filename else ""
        print(f"merkle: error: {shown(where + str(e.strerror or e))}", file=sys.stderr)
        return 2
    except Exception as e:  # a bug: one line, not a traceback, unless asked
        if os.environ.get("MERKLE_DEBUG"):
            raise
        print(
            f"merkle: internal error: {type(e).__name__}: {shown(str(e))} (set MERKLE_DEBUG=1 for a traceback)",
            file=sys.stderr,
        )
        return 2
