"""`merkle hf verify`, and the license policy of `merkle verify`."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from merkle.cli.output import print_report
from merkle.cli.progress import close, make_progress
from merkle.display import shown
from merkle.errors import MerkleError, UsageError
from merkle.format.manifest import Manifest
from merkle.format.origin import is_repo_id
from merkle.report import Report

if TYPE_CHECKING:
    from merkle.signing.oms import OmsStatement


def hf_verify(args: argparse.Namespace) -> int:
    from merkle.hf import hub_readme_license, verify_checkout

    allowed = _allowed(args)
    path = args.path
    if not os.path.exists(path) and is_repo_id(path):
        from merkle.hf.layout import cache_folder_of

        path = cache_folder_of(path, args.repo_type, args.cache_dir)
    elif args.repo_type or args.cache_dir:
        raise UsageError("--repo-type and --cache-dir find a repository id (ORG/NAME) in the cache; PATH is a path")
    progress = make_progress("verifying", args.quiet or args.json)
    try:
        report = verify_checkout(
            path, revision=args.revision, require_all=args.require_all, xet=args.xet, jobs=args.jobs, progress=progress
        )
    finally:
        close(progress)
    checkout = report.checkout
    assert checkout is not None
    extra: dict[str, Any] = {}
    code = report.exit_code
    lines = []
    if checkout.tree is None:
        lines.append(
            f"no tree listing for {checkout.revision or 'this checkout'}: files that were never downloaded "
            "cannot be named"
        )
    if len(checkout.revisions) > 1:
        lines.append(
            "files were downloaded at " + ", ".join(f"{c[:12]} ({n})" for c, n in checkout.revisions.most_common())
        )
    if allowed:
        code, extra["license"], note = _apply(lambda: hub_readme_license(checkout, allowed), report, code)
        lines.append(note)
    print_report(args, report, extra, checkout.describe())
    if not args.json:
        for line in lines:
            print(f"merkle: {shown(line)}", file=sys.stderr)
    return code


def _allowed(args: argparse.Namespace) -> tuple[str, ...]:
    if not getattr(args, "allow_license", None):
        return ()
    from merkle.hf.license import parse_allowed

    return parse_allowed(args.allow_license)


def _apply(check: Any, report: Report, code: int) -> tuple[int, dict[str, Any], str]:
    """Run a license check after a verification: only when it passed (the
    card's bytes must be verified first); its failure decides the exit code."""
    if not report.ok:
        return code, {"checked": False}, "license not checked: verification failed"
    try:
        licenses = check()
    except MerkleError as e:
        return e.exit_code, {"checked": True, "ok": False, "error": str(e)}, f"error: {e}"
    return code, {"checked": True, "ok": True, "licenses": list(licenses)}, f"license {', '.join(licenses)} allowed"


def verify_license(
    args: argparse.Namespace, report: Report, manifest: Manifest | OmsStatement | None
) -> tuple[int, dict[str, Any], str | None]:
    """`merkle verify --allow-license`: (exit code, JSON part, line to print)."""
    allowed = _allowed(args)
    if not allowed:
        return report.exit_code, {}, None
    assert manifest is not None
    from merkle.hf import readme_license

    code, doc, note = _apply(
        lambda: readme_license(args.path, manifest, allowed, args.revision, args.layout), report, report.exit_code
    )
    return code, {"license": doc}, note
