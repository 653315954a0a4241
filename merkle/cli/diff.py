"""`merkle diff A B`: what changed between two manifests or bundles
(docs/diff.md).  Exit 0 the same, 1 they differ, 2 bad input or a
difference that cannot be decided (as `diff` does)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from merkle.cli.output import emit_json
from merkle.display import shown
from merkle.errors import UsageError
from merkle.format.manifest import MANIFEST_SUFFIX, Manifest
from merkle.signing.documents import load_document

if TYPE_CHECKING:
    from merkle.verifying.diffing import Change, ChunkRange, Diff


def diff(args: argparse.Namespace) -> int:
    from merkle.verifying.diffing import diff as compare

    docs = [load_document(p) for p in (args.old, args.new)]
    trusted = bool(args.key or args.ca)
    if trusted and all(isinstance(d, Manifest) for d in docs):
        raise UsageError("both sides are unsigned manifests: --key/--ca apply to signed bundles")
    sides = [_side(args, path, doc) for path, doc in zip((args.old, args.new), docs, strict=True)]
    result = compare(sides[0][0], sides[1][0])
    code = 1 if result.differs else 2 if result.unknown else 0
    if args.json:
        emit_json({**result.to_dict(), "old": _source(args.old, sides[0][1]), "new": _source(args.new, sides[1][1])})
        return code
    for path, (_, signature) in zip((args.old, args.new), sides, strict=True):
        if signature is not None:
            print(f"merkle: {shown(path)}: {signature['described']}", file=sys.stderr)
        elif trusted:  # the other side is signed: say that this one is not
            print(f"merkle: {shown(path)}: unsigned manifest, compared as given", file=sys.stderr)
    for line in lines(result):
        print(line)
    for array in result.arrays:
        parts = [f"{len(array.changed)} keys changed", f"{len(array.added)} added", f"{len(array.removed)} removed"]
        print(f"merkle: zarr array '{shown(array.path)}': " + ", ".join(parts), file=sys.stderr)
    print(f"merkle: {result.summary()}", file=sys.stderr)
    return code


def _side(args: argparse.Namespace, path: str, doc: Any) -> tuple[Manifest, dict[str, Any] | None]:
    """The manifest of one side and, for a bundle, who signed it: a bundle
    goes through the one trust path (open_signed) before anything in it is
    read."""
    if isinstance(doc, Manifest):
        return doc, None
    if not (args.key or args.ca):
        raise UsageError("a signed bundle is only as good as the key that checks it: add --key PUB or --ca CERT", path)
    from merkle.cli.trust import describe, trust_policy, verified_dict
    from merkle.signing.attestations import Store
    from merkle.verifying.signed import open_signed

    # No attestation store unless --store names one (then its records are
    # read, nothing is kept): comparing an older release with a newer one is
    # this command's job, and the default store's rollback record would
    # refuse the older.  Signatures, statement, policy and expiry are checked
    # as verify checks them (docs/diff.md, DF2).
    store = Store(args.store) if args.store and not args.no_store else None
    verified = open_signed([doc], trust_policy(args), store, keep=False)
    if verified.manifest is None:
        if verified.summary is not None:
            raise UsageError(f"a compact bundle needs its manifest beside it ({path}{MANIFEST_SUFFIX})", path)
        raise UsageError("an OpenSSF bundle lists whole-file digests, not a merkle manifest: nothing to diff", path)
    return verified.manifest, {**verified_dict(verified), "described": describe(verified)}


def _source(path: str, signature: dict[str, Any] | None) -> dict[str, Any]:
    if signature is not None:
        signature = {k: v for k, v in signature.items() if k != "described"}
    return {"path": path, "signature": signature}


def lines(result: Diff) -> list[str]:
    """One line per difference, in path order, escaped (merkle.display):
    `+ path`, `- path`, `* path  (detail)`, `> old -> new`, `? path  (why)`."""
    out: list[tuple[str, str]] = []
    out += [(f.path, f"+ {shown(f.path)}") for f in result.added]
    out += [(f.path, f"- {shown(f.path)}") for f in result.removed]
    out += [(m.new, f"> {shown(m.old)} -> {shown(m.new)}") for m in result.moved]
    out += [(c.path, _changed_line(c)) for c in result.changed]
    return [line for _, line in sorted(out, key=lambda p: p[0])]


def _changed_line(c: Change) -> str:
    if not c.known:
        return f"? {shown(c.path)}  (not comparable: {c.why})"
    size = f"{c.old.size} -> {c.new.size} bytes" if c.old.size != c.new.size else f"{c.new.size} bytes"
    if c.ranges is None:
        detail = f"{size}; ranges unknown: {c.why}"
    else:
        detail = f"{size}; " + ", ".join(_range(r) for r in c.ranges)
    return f"* {shown(c.path)}  ({detail})"


def _range(r: ChunkRange) -> str:
    chunks = f"chunk {r.first}" if r.first == r.last else f"chunks {r.first}-{r.last}"
    kind = "" if r.kind == "changed" else f"{r.kind} "
    return f"{kind}{chunks}: bytes {r.start}-{r.end - 1}"  # inclusive, as HTTP Range; JSON: half-open
