"""One function per subcommand: parse-free, print-and-return-exit-code."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from ..builder import build as build_manifest
from ..errors import FormatError
from ..hashfile import format_sum, hash_paths, hash_stream, parse_sums
from ..manifest import MAX_MANIFEST_BYTES, Manifest, check_chunk_size
from ..sources.local import read_capped
from ..verify import verify as verify_tree
from .progress import close, make_progress


def _emit_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


def build(args: argparse.Namespace) -> int:
    check_chunk_size(args.chunk_size)
    progress = make_progress("hashing", args.quiet or args.json)
    started = time.perf_counter()
    try:
        manifest = build_manifest(
            args.path,
            algorithm=args.algorithm,
            chunk_size=args.chunk_size,
            exclude=args.exclude,
            default_excludes=not args.no_default_excludes,
            follow_symlinks=args.follow_symlinks,
            jobs=args.jobs,
            progress=progress,
        )
    finally:
        close(progress)
    seconds = time.perf_counter() - started
    if args.output and args.output != "-":
        manifest.save(args.output)
    else:
        sys.stdout.buffer.write(manifest.to_json())
        sys.stdout.flush()
    total = manifest.total_size
    if args.json and args.output not in (None, "-"):
        _emit_json({
            "manifest": args.output,
            "root": manifest.root.hex(),
            "algorithm": manifest.algorithm,
            "chunk_size": manifest.chunk_size,
            "files": len(manifest.files),
            "bytes": total,
            "seconds": round(seconds, 6),
        })
    elif not args.quiet:
        rate = f" ({total / seconds / 1e9:.2f} GB/s)" if seconds > 0 else ""
        where = f" -> {args.output}" if args.output not in (None, "-") else ""
        print(f"{manifest.root.hex()}  {args.path}", file=sys.stderr if where == "" else sys.stdout)
        print(f"merkle: {len(manifest.files)} files, {total} bytes in {seconds:.2f} s{rate}{where}", file=sys.stderr)
    return 0


def verify(args: argparse.Namespace) -> int:
    manifest = Manifest.load(args.manifest)
    progress = make_progress("verifying", args.quiet or args.json)
    try:
        report = verify_tree(
            args.path,
            manifest,
            allow_extra=args.allow_extra,
            exclude=args.exclude,
            follow_symlinks=args.follow_symlinks,
            jobs=args.jobs,
            progress=progress,
        )
    finally:
        close(progress)
    if args.json:
        _emit_json(report.to_dict())
    else:
        for outcome in report.outcomes:
            if not args.quiet or outcome in report.failures:
                print(outcome.line())
        print(f"merkle: {report.summary()}", file=sys.stderr)
    return report.exit_code


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
        _emit_json({"algorithm": args.algorithm, "chunk_size": args.chunk_size, "files": results})
    return status


def _check_sums(args: argparse.Namespace) -> int:
    expected: list[tuple[bytes, str]] = []
    for sums in args.files:
        text = (sys.stdin.buffer.read(MAX_MANIFEST_BYTES + 1) if sums == "-" else read_capped(sums, MAX_MANIFEST_BYTES))
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
        if d.error is not None:
            unreadable += 1
            rows.append({"path": path, "ok": False, "error": d.error.message})
            line = f"{path}: FAILED ({d.error.message})"
        elif d.root != want:
            failed += 1
            rows.append({"path": path, "ok": False, "error": "root differs"})
            line = f"{path}: FAILED"
        else:
            rows.append({"path": path, "ok": True})
            line = f"{path}: OK"
        if not args.json and (not args.quiet or "FAILED" in line):
            print(line)
    if args.json:
        _emit_json({"ok": not (failed or unreadable), "files": rows})
    if failed or unreadable:
        print(f"merkle: WARNING: {failed} computed roots did NOT match, {unreadable} files could not be read",
              file=sys.stderr)
    return 1 if failed else (2 if unreadable else 0)


def demo(args: argparse.Namespace) -> int:
    from .demo import run

    return run(args.directory)

