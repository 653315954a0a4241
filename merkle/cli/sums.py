"""`merkle hash FILE...` and `merkle hash --check SUMS...`: Merkle roots of
single files, printed and checked as b3sum prints and checks its sums."""

from __future__ import annotations

import sys

from merkle.cli.output import emit_json
from merkle.cli.progress import close, make_progress
from merkle.display import shown
from merkle.errors import FormatError
from merkle.format.parameters import check_chunk_size
from merkle.hashing.files import escape_path, format_sum, hash_paths, hash_stream, parse_sums
from merkle.source.local import read_capped

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any


def hash_(args: argparse.Namespace) -> int:
    check_chunk_size(args.chunk_size)
    if args.check:
        return _check_sums(args)
    results: list[dict[str, Any]] = []
    status = 0
    names = [f for f in args.files if f != "-"]
    progress = make_progress("hashing", args.quiet or args.json)
    try:
        digests = {d.path: d for d in hash_paths(names, args.algorithm, args.chunk_size, args.jobs, progress)}
    finally:
        close(progress)
    for name in args.files:
        if name == "-":
            root = hash_stream(sys.stdin.buffer, args.algorithm, args.chunk_size)
        else:
            d = digests[name]
            if d.error is not None:
                print(f"merkle: error: {d.error}", file=sys.stderr)
                results.append({"path": name, "error": d.error.message})
                status = 2
                continue
            root = d.root
        results.append({"path": name, "root": root.hex()})
        if not args.json:
            print(format_sum(root, name))
    if args.json:
        emit_json({"algorithm": args.algorithm, "chunk_size": args.chunk_size, "files": results})
    return status


def _check_sums(args: argparse.Namespace) -> int:
    from merkle.format.manifest import MAX_MANIFEST_BYTES  # the cap of a sums file too

    expected: list[tuple[bytes, str]] = []
    for sums in args.files:
        text = sys.stdin.buffer.read(MAX_MANIFEST_BYTES + 1) if sums == "-" else read_capped(sums, MAX_MANIFEST_BYTES)
        if len(text) > MAX_MANIFEST_BYTES:
            raise FormatError(f"larger than the {MAX_MANIFEST_BYTES}-byte limit", sums)
        try:
            expected += parse_sums(text.decode("utf-8"), sums)
        except UnicodeDecodeError as e:
            raise FormatError("not UTF-8", sums) from e
    progress = make_progress("checking", args.quiet or args.json)
    try:
        digests = hash_paths([p for _, p in expected], args.algorithm, args.chunk_size, args.jobs, progress)
    finally:
        close(progress)
    failed = unreadable = 0
    rows = []
    for (want, path), d in zip(expected, digests, strict=True):
        # The names come from the sums file: escaped as `hash` writes them
        # (b3sum's rule), so that no name can start a line of its own, and
        # any other control or invisible character as everywhere else
        # (display.shown), so that none can move the cursor over a line.
        escaped, flag = escape_path(path)
        name = shown(("\\" if flag else "") + escaped)
        if d.error is not None:
            unreadable += 1
            rows.append({"path": path, "ok": False, "error": d.error.message})
            line = f"{name}: FAILED ({shown(d.error.message)})"
        elif d.root != want:
            failed += 1
            rows.append({"path": path, "ok": False, "error": "root differs"})
            line = f"{name}: FAILED"
        else:
            rows.append({"path": path, "ok": True})
            line = f"{name}: OK"
        if not args.json and (not args.quiet or "FAILED" in line):
            print(line)
    if args.json:
        emit_json({"ok": not (failed or unreadable), "files": rows})
    if failed or unreadable:
        print(
            f"merkle: WARNING: {failed} computed roots did NOT match, {unreadable} files could not be read",
            file=sys.stderr,
        )
    return 1 if failed else (2 if unreadable else 0)
