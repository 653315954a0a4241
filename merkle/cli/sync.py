"""`merkle sync SOURCE DEST BUNDLE --key PUB`: verify DEST against the
bundle and fetch from SOURCE only the chunks it lacks (docs/sync.md).
Exit 0 when DEST ends verified, 1 when SOURCE or DEST holds bytes nobody
signed that could not be replaced, 2 on bad input or a source that cannot
be read."""

from __future__ import annotations

import argparse

from merkle.cli.options import parse_storage_options
from merkle.cli.output import print_report
from merkle.cli.trust import describe, open_bundles, verified_dict
from merkle.display import shown
from merkle.errors import UsageError
from merkle.format.manifest import MANIFEST_SUFFIX
from merkle.signing.envelope import BundleFile


def sync(args: argparse.Namespace) -> int:
    from merkle.syncing.sources import open_source
    from merkle.syncing.sync import sync as run_sync

    storage_options = parse_storage_options(args.storage_option)
    bundle = BundleFile.read(args.bundle)
    verified = open_bundles(args, [bundle])  # the one trust path, before anything is read or written
    if verified.manifest is None:
        if verified.summary is not None:
            raise UsageError(f"a compact bundle needs its manifest beside it ({args.bundle}{MANIFEST_SUFFIX})")
        raise UsageError("sync needs a merkle bundle: an OpenSSF bundle carries no chunk tree", args.bundle)
    manifest = verified.manifest
    source = open_source(args.source, storage_options)
    try:
        result = run_sync(source, args.dest, manifest, jobs=args.jobs, allow_extra=args.allow_extra, delete=args.delete)
    finally:
        source.close()
    stats = result.stats
    notes = []
    if stats.whole_files:
        notes.append(
            f"no leaf sidecar beside {shown(args.bundle)}: {stats.whole_files} changed multi-chunk file(s) "
            "fetched whole, each checked whole before it took its name"
        )
    notes.append(
        f"synced {shown(args.dest)} from {shown(args.source)}: {stats.in_place} files in place, "
        f"{stats.written} written; {stats.fetched_bytes} bytes fetched in {stats.requests} requests "
        f"({stats.fetched_chunks} chunks), {stats.copied_bytes} bytes copied from the old copy, "
        f"{stats.resumed_bytes} resumed from an interrupted sync"
        + (f"; {len(stats.deleted)} extra files removed" if stats.deleted else "")
    )
    print_report(
        args,
        result.report,
        {"sync": {**stats.to_dict(), "notes": notes}, "signature": verified_dict(verified)},
        head=describe(verified),
        notes=notes,
    )
    return result.report.exit_code
