"""The argument parser of `merkle`: every subcommand's flags and help.

Only the subcommand a command line runs is added, with its arguments
(`make_parser(command_of(argv))`): building them all costs more than the
run of a small `merkle hash`.  Each subcommand's code is imported when it runs, so that a
command loads only what it uses (`cryptography` for the signing commands,
the engine for those that hash; tests/project/test_startup.py pins it).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, Final

from merkle import __version__
from merkle.cli import options

ALL = "*"
"""`make_parser(ALL)`: every subcommand's arguments."""


def _run(module: str, name: str) -> Callable[[argparse.Namespace], int]:
    """The function `name` of `merkle.cli.<module>`, imported when the
    subcommand runs."""

    def run(args: argparse.Namespace) -> int:
        import importlib

        result: int = getattr(importlib.import_module(f"merkle.cli.{module}"), name)(args)
        return result

    return run


def _common(p: argparse.ArgumentParser, hashing: bool = True, build: bool = False) -> None:
    """--algorithm and --chunk-size (with `hashing`), --jobs, --json, --quiet."""
    if hashing:
        from merkle.format.parameters import DEFAULT_CHUNK_SIZE
        from merkle.tree.hasher import ALGORITHMS, DEFAULT_ALGORITHM

        p.add_argument(
            "--algorithm", choices=ALGORITHMS, default=DEFAULT_ALGORITHM, help="hash function (default: %(default)s)"
        )
        default = "1M, 64K for a zarr store" if build else "1M"  # a build's chunk size is chosen by its source
        p.add_argument(
            "--chunk-size",
            type=options.parse_size,
            default=None if build else DEFAULT_CHUNK_SIZE,
            metavar="SIZE",
            help=f"chunk size, a power of two from 1K to 1G (default: {default})",
        )
    p.add_argument(
        "--jobs",
        "-j",
        type=options.positive_int,
        default=None,
        metavar="N",
        help="worker threads (default: one per CPU)",
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


def _build(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "path", metavar="PATH", help="directory to hash, or an image to sign: oci:DIR[:TAG], docker-archive:FILE"
    )
    p.add_argument(
        "-o",
        "--output",
        metavar="MANIFEST",
        help="manifest file to write (default: stdout); the leaf sidecar goes to MANIFEST.leaves",
    )
    p.add_argument("--no-default-excludes", action="store_true", help="do not skip .git")
    p.add_argument(
        "--sign",
        metavar="KEY",
        help="sign with this key: a PEM key file, pkcs11:URI (a token) or awskms:///KEY (AWS KMS); -o names the bundle",
    )
    options.add_signer_option(p)
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
    p.add_argument(
        "--update",
        metavar="OLD",
        help="reuse the digests of files unchanged (device, inode, size, mtime, ctime) since a build of this tree "
        "on this machine, where OLD (a manifest or bundle of it) lists them; trusts this machine's file "
        "metadata (docs/threat-model.md); the summary says how many",
    )
    options.add_sign_options(p)
    options.add_store_option(p, no_store=True)
    p.add_argument(
        "--model",
        nargs=2,
        action="append",
        default=[],
        dest="models",
        metavar=("PATH", "BUNDLE"),
        help="with an image and --sign: first verify the model at PATH inside it against its signed BUNDLE "
        "(trusted through --model-key or --model-ca), and name it in the image's statement; repeatable",
    )
    options.add_trust_options(p, prefix="model-")
    p.add_argument(
        "--platform",
        metavar="OS/ARCH",
        help="with an image of several platforms: the one to sign (default: this machine's, e.g. linux/amd64)",
    )
    options.add_revision_option(p)
    options.add_layout_option(p, build=True)
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
    _common(p, build=True)
    p.set_defaults(run=_run("commands", "build"))


def _check_options(p: argparse.ArgumentParser) -> None:
    """What verify and run share after their own options: how PATH is read, whom to trust, what the bundle
    must be."""
    options.add_revision_option(p)
    options.add_layout_option(p, build=False)
    options.add_trust_options(p)
    options.add_expect_options(p)
    _storage_option(p)
    _walk_options(p)
    _common(p, hashing=False)


def _verify(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", metavar="PATH", help="directory to check, or an image: oci:DIR[:TAG], docker-archive:FILE")
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
    p.add_argument("--model", metavar="PATH", help="with an image: the folder in it holding the signed model")
    p.add_argument(
        "--platform",
        metavar="OS/ARCH",
        help="with an image of several platforms: the one to check (default: this machine's, e.g. linux/amd64)",
    )
    p.add_argument("--files", nargs="+", metavar="NAME", help="check only these listed paths")
    p.add_argument("--file", metavar="NAME", help="check one listed file (PATH is the tree or the file itself)")
    p.add_argument(
        "--range",
        type=options.parse_range,
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
    options.add_license_option(p)
    p.add_argument(
        "--policy",
        metavar="FILE",
        help="after the tree verified, evaluate this policy (YAML, JSON or .rego) on its evidence (docs/policy.md)",
    )
    p.add_argument("--sarif", metavar="FILE", help="with --policy: write the results as SARIF 2.1.0 to FILE")
    _check_options(p)
    p.set_defaults(run=_run("commands", "verify"))


def _policy(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="policy_command", metavar="ACTION", required=True)
    q = sub.add_parser(
        "check",
        help="verify PATH against signed bundles, then evaluate a policy on the evidence "
        "(the trust comes from --key/--ca or, without them, from the policy's signers)",
    )
    _verify(q)
    q.add_argument("--sign", metavar="KEY", help="sign the result (a SARIF in-toto statement) with KEY; needs -o")
    options.add_signer_option(q)
    q.add_argument("-o", "--output", metavar="RESULT", help="where --sign writes the signed result")
    q.set_defaults(file=None, proof=None, files=None, sparse=False, range=None, tensor=None, repair=False)
    for action in q._actions:
        if action.dest == "policy":
            action.required = True
    q = sub.add_parser("show", help="verify a signed policy result and show its verdict")
    q.add_argument("result", metavar="RESULT", help="a result signed by 'merkle policy check --sign'")
    options.add_trust_options(q)
    q.add_argument("--policy", metavar="FILE", help="the result must be of this policy (its file, modules and keys)")
    q.add_argument(
        "--root", metavar="HEX", help="the result must be about this signed root (a bundle's subject digest)"
    )
    q.add_argument(
        "--max-age", metavar="DURATION", help="the result must have been made within this long (90d, 12h, 30m)"
    )
    q.add_argument("--json", action="store_true", help="print the verified SARIF log on stdout")
    q.set_defaults(run=_run("policy", "show"))


def _bom(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="PATH|BUNDLE",
        help="PATH: a directory, hashed by this run (or, followed by BUNDLEs, checked against them first); "
        "BUNDLE alone: what it signs, no tree read (docs/bom.md)",
    )
    p.add_argument("-o", "--output", metavar="BOM", help="where to write the BOM (default: stdout)")
    p.add_argument(
        "--sha256",
        action="store_true",
        help="give every file its whole-file SHA-256 (and BLAKE3), computed in the same read as the tree; costs "
        "a full read of the files when the BOM is of a bundle alone (refused: give PATH), and SHA-256 runs at "
        "1-2 GB/s per core: files whose SHA-256 is signed (Hub LFS identities, OpenSSF bundles) have it without",
    )
    p.add_argument(
        "--spec-version",
        choices=("1.6", "1.7"),
        default="1.6",
        help="CycloneDX version to write (default: %(default)s)",
    )
    p.add_argument(
        "--type",
        choices=("machine-learning-model", "data"),
        help="the component's type (default: data for a Hugging Face dataset or a zarr store, else "
        "machine-learning-model)",
    )
    p.add_argument("--name", help="PATH alone: the subject name (default: the directory's name)")
    p.add_argument(
        "--sign", metavar="KEY", help="sign the BOM as an in-toto statement (CycloneDX predicate); -o names the bundle"
    )
    options.add_signer_option(p)
    p.add_argument(
        "--check",
        metavar="SIGNED_BOM",
        help="verify a signed BOM (with --key/--ca), then check PATH against it: every file's Merkle root, "
        "size, SHA-256 and BLAKE3, and the merkle root",
    )
    p.add_argument("--no-default-excludes", action="store_true", help="PATH alone: do not skip .git")
    p.add_argument("--repo-id", metavar="ORG/NAME", help="PATH alone, a Hugging Face local_dir: its repository")
    p.add_argument(
        "--repo-type", choices=("model", "dataset", "space"), help="PATH alone, a Hugging Face local_dir: its kind"
    )
    options.add_revision_option(p)
    options.add_layout_option(p, build=True)
    options.add_trust_options(p)
    _walk_options(p)
    _common(p, build=True)
    p.set_defaults(run=_run("bom", "bom"), storage_option=[])


def _audit(p: argparse.ArgumentParser) -> None:
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
    p.set_defaults(run=_run("commands", "audit"))


def _prove(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "manifest",
        metavar="MANIFEST|BUNDLE",
        help="a manifest, or a bundle (with --key or --ca; a compact one needs BUNDLE.manifest)",
    )
    p.add_argument("name", metavar="NAME", nargs="*", help="a file's path in the manifest; repeatable")
    p.add_argument(
        "--names",
        metavar="FILE",
        help="read more paths from FILE, one per line ('-': standard input)",
    )
    p.add_argument(
        "-o",
        "--output",
        metavar="PROOF",
        help="proof file to write (default: stdout); with several paths, one proof per line, in their order",
    )
    options.add_trust_options(p)
    p.set_defaults(run=_run("commands", "prove"))


def _sync(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="SOURCE", help="where the signed version is: a folder or a URL (s3://...)")
    p.add_argument("dest", metavar="DEST", help="the local folder to bring to the signed version (made if absent)")
    p.add_argument("bundle", metavar="BUNDLE", help="the signed bundle (its leaf sidecar BUNDLE.leaves beside it)")
    p.add_argument(
        "--allow-extra", action="store_true", help="files DEST holds that the bundle does not list are no failure"
    )
    p.add_argument("--delete", action="store_true", help="remove the files DEST holds that the bundle does not list")
    options.add_trust_options(p)
    options.add_expect_options(p)
    _storage_option(p)
    _common(p, hashing=False)
    p.set_defaults(run=_run("sync", "sync"))


def _diff(p: argparse.ArgumentParser) -> None:
    p.add_argument("old", metavar="A", help="the old side: a manifest, or a bundle (with --key or --ca)")
    p.add_argument("new", metavar="B", help="the new side: a manifest, or a bundle (with --key or --ca)")
    options.add_trust_options(p)
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p.set_defaults(run=_run("diff", "diff"))


def _keygen(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", required=True, metavar="KEY", help="private key file (public key: KEY.pub)")
    p.add_argument("--type", choices=options.KEY_TYPES, default="ecdsa-p256", help="key type (default: %(default)s)")
    p.add_argument(
        "--encrypt",
        action="store_true",
        help="encrypt the private key (passphrase from $MERKLE_KEY_PASSPHRASE or a prompt)",
    )
    p.set_defaults(run=_run("signing", "keygen"))


def _key(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="key_command", metavar="ACTION", required=True)
    q = sub.add_parser("export", help="write the public key of a key file, a PKCS#11 token's key or a KMS key")
    q.add_argument("key_spec", metavar="KEY", help="a PEM private key file, pkcs11:URI or awskms:///KEY")
    q.add_argument(
        "-o", "--output", required=True, metavar="PUB", help="where to write the PEM public key ('-': stdout)"
    )
    options.add_signer_option(q)
    q.set_defaults(run=_run("signing", "key_export"))


def _sign(p: argparse.ArgumentParser) -> None:
    p.add_argument("document", metavar="MANIFEST|BUNDLE")
    p.add_argument("--key", required=True, metavar="KEY", help="private key: a PEM file, pkcs11:URI or awskms:///KEY")
    options.add_signer_option(p)
    p.add_argument("-o", "--output", required=True, metavar="BUNDLE", help="bundle to write")
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    options.add_sign_options(p)
    options.add_trust_options(p, prefix="verify-")  # co-signing: who signed the bundle being co-signed
    options.add_store_option(p, no_store=True)
    p.set_defaults(run=_run("signing", "sign"))


def _store(p: argparse.ArgumentParser) -> None:
    store_sub = p.add_subparsers(dest="store_command", metavar="ACTION", required=True)
    q = store_sub.add_parser("list", help="every bundle kept")
    options.add_store_option(q)
    q.add_argument("--json", action="store_true")
    q.set_defaults(run=_run("signing", "store_list"))
    q = store_sub.add_parser("show", help="bundles by id prefix, dataset root or subject name")
    q.add_argument("ref", metavar="REF")
    options.add_store_option(q)
    q.add_argument("--json", action="store_true")
    q.set_defaults(run=_run("signing", "store_show"))


def _hf(p: argparse.ArgumentParser) -> None:
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
    options.add_revision_option(q)
    q.add_argument(
        "--require-all",
        action="store_true",
        help="files of the revision that are not downloaded fail (default: a sparse checkout is fine)",
    )
    q.add_argument(
        "--xet", action="store_true", help="also recompute Xet hashes where the tree listing has them (needs hf_xet)"
    )
    options.add_license_option(q)
    _common(q, hashing=False)
    q.set_defaults(run=_run("hf", "hf_verify"))


def _hash(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", metavar="FILE", help="files to hash ('-' for stdin); with --check, sums files")
    p.add_argument("--check", "-c", action="store_true", help="read 'ROOT  PATH' lines from FILEs and check them")
    _common(p)
    p.set_defaults(run=_run("sums", "hash_"))


def _runcmd(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle", metavar="BUNDLE", help="the signed bundle PATH must verify against")
    p.add_argument("path", metavar="PATH", help="the tree to check (options go before it)")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD [ARGS...]",
                   help="the command to start, in place of merkle, once PATH verified")  # fmt: skip
    options.add_license_option(p)
    p.add_argument("--policy", metavar="FILE", help="after the tree verified, this policy must pass (docs/policy.md)")
    _check_options(p)
    p.set_defaults(
        run=_run("run", "run"), allow_extra=False, sparse=False, files=None, file=None, range=None, tensor=None,
        repair=False, proof=None, sarif=None,
    )  # fmt: skip


def _doctor(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    p.set_defaults(run=_run("doctor", "doctor"))


def _demo(p: argparse.ArgumentParser) -> None:
    p.add_argument("directory", nargs="?", help="where to put the example (default: a temporary directory)")
    p.set_defaults(run=_run("commands", "demo"), json=False, quiet=False)


COMMANDS: tuple[tuple[str, str, Callable[[argparse.ArgumentParser], None]], ...] = (
    ("build", "hash a directory into a manifest", _build),
    ("verify", "check a directory against a manifest or signed bundles", _verify),
    ("audit", "what was added, removed or changed in a dataset since it was signed", _audit),
    ("prove", "write the proof that a file belongs to a manifest's dataset root", _prove),
    ("diff", "what changed between two manifests or bundles: files, and the chunk ranges of changed files", _diff),
    ("sync", "bring a local copy to a signed version, fetching only the chunks it lacks", _sync),
    ("policy", "evaluate a policy on the verified evidence of a signed tree", _policy),
    ("bom", "write a CycloneDX ML-BOM of a tree that verified, or check a signed one", _bom),
    ("run", "verify a tree against a signed bundle, then start a command (nothing starts if it fails)", _runcmd),
    ("keygen", "write a new signing key pair: KEY and KEY.pub", _keygen),
    ("key", "export the public key of a key file, a PKCS#11 token's key or an AWS KMS key", _key),
    ("sign", "sign a manifest, or co-sign a bundle's statement", _sign),
    ("store", "list or show attestations kept in the store", _store),
    ("hf", "Hugging Face checkouts: verify a cache folder, snapshot or local_dir offline", _hf),
    ("hash", "print the Merkle root of files, like b3sum", _hash),
    (
        "doctor",
        (
            "which implementation runs the hot paths (C extension or pure Python), "
            "the blake3 build and the CPU features seen"
        ),
        _doctor,
    ),
    ("demo", "build, verify, tamper and re-verify a small generated model", _demo),
)
"""Every subcommand, in the order `merkle --help` lists them: name, help, and
the function that adds its arguments."""


def command_of(argv: Sequence[str]) -> str | None:
    """The subcommand `argv` runs, as argparse reads it: its first word, when
    that is not an option.  None when -h, --help or --version comes first
    (they act before any subcommand is read, and only need the list of
    subcommands) or there is no word at all; ALL after any other option,
    so that the complete parser says what is wrong with it."""
    for word in argv:
        if word in ("-h", "--help", "--version"):
            return None
        return ALL if word.startswith("-") else word
    return None


class _Formatter(argparse.HelpFormatter):
    """argparse's own, finding the terminal's width as
    shutil.get_terminal_size does ($COLUMNS, else stdout's terminal, else
    80) but without importing shutil, which argparse does for the first
    parser it builds: shutil loads the compression modules, about 2 ms, more
    than a small `merkle hash` spends hashing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # argparse's own arguments, whatever its version
        if len(args) < 4 and kwargs.get("width") is None:
            kwargs["width"] = _columns() - 2
        super().__init__(*args, **kwargs)


def _columns() -> int:
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):  # no stdout (None), or not a terminal
            columns = 0
    return columns or 80


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose help is laid out by _Formatter, as are its
    subcommands' (argparse makes them of the parser's own class)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)


NAMES: Final = frozenset(name for name, _, _ in COMMANDS)


def make_parser(command: str | None = ALL) -> argparse.ArgumentParser:
    """The parser for a command line that runs `command` (command_of): the
    subcommand itself with its arguments, ALL of them with theirs, or, for
    None or a name that is no subcommand, the name and help of each (what
    `merkle --help` lists and "invalid choice" names)."""
    parser = _Parser(
        prog="merkle",
        description="Chunked Merkle manifests for models and datasets: build, verify, hash.",
        epilog="Exit status: 0 verified, 1 integrity failure, 2 usage error or unreadable input.",
    )
    parser.add_argument("--version", action="version", version=f"merkle {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help, add_arguments in COMMANDS:
        if command in (name, ALL):
            add_arguments(sub.add_parser(name, help=help))
        elif command not in NAMES:
            sub.add_parser(name, help=help)
    return parser
