"""Options shared by subcommands, and the parsers of their values.  This
module must stay light: the parser (cli/parser.py) imports it for every
command, `merkle hash` included, so what only some options need (datetime,
json, the layouts) is imported where they are read, and `cryptography` only
by the commands that sign or check signatures."""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence

TYPE_CHECKING = False
if TYPE_CHECKING:
    import datetime
    from typing import Any

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
# merkle.signing.keys.KeyType; a test keeps them equal
KEY_TYPES = ("ecdsa-p256", "ecdsa-p384", "ecdsa-p521", "ed25519")

FLAGS = {
    "follow_symlinks=True": "--follow-symlinks",
    "attestations=DIR": "--store",
    "attestations=False": "--no-store",
    'layout="hf-cache"': "--layout hf-cache",
    'layout="plain"': "--layout plain",
    'layout="hf-local-dir"': "--layout hf-local-dir",
    "layout": "--layout",
    "revision": "--revision",
    "repo_id": "--repo-id",
    "repo_type": "--repo-type",
    "xet": "--xet",
    "dask": "--dask",
    "allowed": "--allow-license",
    "audit_fast": "--fast",
    "audit_sample": "--sample",
    "exclude": "--exclude",
    "update": "--update",
    "algorithm": "--algorithm",
    "chunk_size": "--chunk-size",
    "results=True": "merkle policy show",
    "boms=True": "merkle bom --check",
    "platform": "--platform",
    "images=True": "merkle verify oci:DIR[:TAG] BUNDLE or docker-archive:FILE BUNDLE",
}
"""How the library's messages name options (merkle.errors.option), as the command line spells them."""


def parse_size(text: str) -> int:
    """'1048576', '1M', '1MiB', '64k' -> bytes (binary units)."""
    m = re.fullmatch(r"\s*(\d+)\s*([kmg]?)(i?b)?\s*", text, re.IGNORECASE)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (examples: 1048576, 1M, 4MiB)")
    return int(m.group(1)) * _UNITS[m.group(2).lower()]


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"not a positive integer: {text!r}")
    return value


def parse_range(text: str) -> tuple[int, int]:
    """'START:END' (half-open, bytes; binary suffixes allowed) -> (start, end)."""
    start, sep, end = text.partition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"not a range: {text!r} (START:END, e.g. 0:1M)")
    a, b = parse_size(start or "0"), parse_size(end)
    if b < a:
        raise argparse.ArgumentTypeError(f"range end {b} is before its start {a}")
    if b == a:
        raise argparse.ArgumentTypeError(f"empty range {text!r}: it would check nothing (END must be after START)")
    return a, b


def parse_expiry(text: str) -> datetime.datetime:
    """'2027-01-31T00:00:00Z', or a duration from now: '90d', '12h', '30m'."""
    import datetime

    from merkle.errors import BundleError, FormatError
    from merkle.format.timestamps import parse_duration, parse_time

    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    try:
        return now + datetime.timedelta(seconds=parse_duration(text))
    except FormatError:
        pass
    try:
        return parse_time(text, "--expires")
    except BundleError as e:
        raise argparse.ArgumentTypeError(f"not a time or duration: {text!r} (2027-01-31T00:00:00Z or 90d)") from e


def add_signer_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--signer-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="for a KMS key: endpoint_url, region_name, connect_timeout, read_timeout, max_attempts; repeatable",
    )


def add_sign_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", help="subject name (default: the directory or manifest name)")
    p.add_argument(
        "--version",
        dest="statement_version",
        type=int,
        default=None,
        metavar="N",
        help="statement version: verifiers then refuse older versions of this name from this signer "
        "(default: none, and no rollback record)",
    )
    p.add_argument(
        "--expires",
        type=parse_expiry,
        metavar="WHEN",
        help="expiry: a UTC time (2027-01-31T00:00:00Z) or a duration (90d)",
    )
    p.add_argument("--cert", metavar="PEM", help="signing certificate for KEY (the bundle then carries X.509)")
    p.add_argument(
        "--cert-chain",
        action="append",
        default=[],
        metavar="PEM",
        help="intermediate certificates, leaf's issuer first; repeatable",
    )


def add_trust_options(p: argparse.ArgumentParser, prefix: str = "") -> None:
    """--key, --ca, --cert-identity, --cert-issuer, --threshold; with a
    prefix (`merkle sign`'s co-signing: `--verify-key`...) the same options
    name the signers of the bundle being co-signed."""
    p.add_argument(
        f"--{prefix}key",
        action="append",
        default=[],
        metavar="PUB",
        dest=f"{prefix}key".replace("-", "_"),
        help="trusted public key; repeatable",
    )
    p.add_argument(
        f"--{prefix}ca",
        action="append",
        default=[],
        metavar="PEM",
        dest=f"{prefix}ca".replace("-", "_"),
        help="trusted CA certificates; repeatable",
    )
    p.add_argument(
        "--cert-identity",
        action="append",
        default=[],
        metavar="ID",
        help=f"with --{prefix}ca: the signing certificate's subject (RFC 4514) or a subject alternative name "
        "(email, URI, DNS) must be one of these; repeatable",
    )
    p.add_argument(
        "--cert-issuer",
        action="append",
        default=[],
        metavar="ISSUER",
        help=f"with --{prefix}ca: the signing certificate's issuer (RFC 4514) or its Fulcio OIDC issuer must be "
        "one of these; repeatable",
    )
    p.add_argument(
        "--threshold",
        type=int,
        default=1,
        metavar="K",
        help=f"require K distinct signers trusted by --{prefix}key/--{prefix}ca across the bundles (default: 1)",
    )
    if not prefix:
        add_store_option(p, no_store=True)


def add_expect_options(p: argparse.ArgumentParser) -> None:
    """--name and --min-version: what the signed statement must be (TrustPolicy.subjects, .min_version)."""
    p.add_argument(
        "--name",
        dest="expect_name",
        metavar="NAME",
        help="the bundle must be for this subject (the --name it was signed with): another model's valid bundle "
        "from the same signer is refused",
    )
    p.add_argument(
        "--min-version",
        type=int,
        metavar="N",
        help="the bundle must carry version N or later (where no rollback record can say so: a fresh container)",
    )


def add_revision_option(p: argparse.ArgumentParser) -> None:
    """--revision, which build and verify share for Hugging Face cache folders."""
    p.add_argument(
        "--revision",
        metavar="REV",
        help="Hugging Face cache folder: the snapshot to use (commit or ref; default: refs/main)",
    )


def add_layout_option(p: argparse.ArgumentParser, build: bool) -> None:
    from merkle.source.layouts import LAYOUTS

    default = (
        "recognise a Hugging Face cache folder, snapshot or local_dir, or a git work tree, and record "
        "it in the manifest"
        if build
        else "from the manifest: with a recorded Hugging Face origin, its cache folder or a snapshot (by "
        "name) as the cache and any other folder as a local_dir; without one, plain. Never from what "
        "the tree holds"
    )
    p.add_argument(
        "--layout",
        choices=LAYOUTS,
        default=None,
        metavar="LAYOUT",
        help=f"how to read PATH: plain (every file under it), hf-cache (a cache folder's snapshot), "
        f"hf-local-dir (without .cache/huggingface), git (a work tree without .git, its commit recorded) "
        f"(default: {default})",
    )


def add_license_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--allow-license",
        action="append",
        metavar="IDS",
        help="require README.md's license (model card front matter) to be one of these comma-separated "
        "ids, read only after README.md verified; fails closed",
    )


def add_store_option(p: argparse.ArgumentParser, no_store: bool = False) -> None:
    p.add_argument("--store", metavar="DIR", help="attestation store (default: $MERKLE_STORE or ~/.cache/merkle)")
    if no_store:
        p.add_argument("--no-store", action="store_true", help="neither read nor update the attestation store")


def parse_storage_options(pairs: Sequence[str], flag: str = "--storage-option") -> dict[str, Any]:
    """`key=value` pairs; a value that parses as JSON (numbers, true, objects
    like {"endpoint_url": ...}) is taken as JSON, anything else as text."""
    import json

    from merkle.errors import UsageError

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"{flag} wants KEY=VALUE, got {pair!r}")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out
