"""Audits of a dataset against its manifest: added, removed, modified and
unchanged objects, in three depths.

- full: every byte rehashed (the same check as `verify`);
- sample: randomly chosen chunks, each checked against its authenticated
  leaf, with the probability of having caught a given share of corruption;
- fast: size, ETag and VersionId as recorded at build time: a metadata
  check, not a cryptographic one, and reported as such.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from typing import Any

from merkle.errors import SourceError, UsageError, option
from merkle.format.manifest import FileEntry, Manifest
from merkle.hashing.engine import feed_hasher
from merkle.hashing.options import HashOptions
from merkle.report import Outcome, Report, Status
from merkle.source.layouts import LayoutOptions, choose_layout
from merkle.source.listing import Listing, WalkOptions, list_source
from merkle.source.readers import Listed, Opener
from merkle.source.walk import blocked_by
from merkle.tree import rfc6962
from merkle.verifying.tree import verify_with

MAX_SAMPLE_SHOWN = 3


def catch_probability(total: int, sampled: int, corrupt_share: float) -> float:
    """P(at least one corrupt chunk among `sampled` drawn without replacement
    from `total`, when `corrupt_share` of them are corrupt)."""
    bad = math.ceil(total * corrupt_share)
    if bad == 0 or sampled == 0:
        return 0.0
    if sampled > total - bad:
        return 1.0
    # 1 - C(total - bad, sampled) / C(total, sampled), as a running product
    miss = 1.0
    for i in range(sampled):
        miss *= (total - bad - i) / (total - i)
    return 1.0 - miss


def samples_needed(total: int, corrupt_share: float, confidence: float = 0.99) -> int:
    lo, hi = 0, total
    while lo < hi:
        mid = (lo + hi) // 2
        if catch_probability(total, mid, corrupt_share) >= confidence:
            hi = mid
        else:
            lo = mid + 1
    return lo


@dataclass(frozen=True)
class SampleStats:
    total_chunks: int
    sampled: int
    seed: int

    def statement(self) -> str:
        p1 = catch_probability(self.total_chunks, self.sampled, 0.01)
        need = samples_needed(self.total_chunks, 0.01)
        return (
            f"sampled {self.sampled} of {self.total_chunks} chunks (seed {self.seed}): if 1% of chunks were "
            f"corrupt, this sample would have caught it with probability {p1:.1%}; {need} samples give 99%"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "total_chunks": self.total_chunks,
            "sampled": self.sampled,
            "seed": self.seed,
            "catch_probability_at_1_percent": round(catch_probability(self.total_chunks, self.sampled, 0.01), 6),
        }


def _reading(url: str, manifest: Manifest) -> LayoutOptions:
    """A local directory is read as verify reads it (HF10): from the
    manifest's origin, never from what it holds."""
    return LayoutOptions(choose_layout(url, manifest.origin), bookkeeping=False)


def _diff(manifest: Manifest, listing: Listing) -> tuple[list[Outcome], list[tuple[FileEntry, Listed]]]:
    """Removed and added objects, and the pairs present on both sides.  What
    the listing refused (a link, a special file) is an error where a listed
    path is, or lies behind it, and is extra elsewhere: never dropped (as
    `verify` reports it); a name or key that names no canonical path is an
    error."""
    present = {o.path: o for o in listing.files}
    every = {p.path: p for p in listing.problems}
    refused = dict(every)
    outcomes: list[Outcome] = []
    both: list[tuple[FileEntry, Listed]] = []
    for entry in manifest.files:
        obj = present.pop(entry.path, None)
        problem = refused.pop(entry.path, None) if obj is None else None
        parent = blocked_by(entry.path, every) if obj is None and problem is None else None
        if problem is not None:
            outcomes.append(Outcome(entry.path, Status.ERROR, problem.reason))
        elif parent is not None:
            outcomes.append(Outcome(entry.path, Status.ERROR, f"{parent.path}: {parent.reason}"))
        elif obj is None:
            outcomes.append(Outcome(entry.path, Status.MISSING, "removed"))
        elif obj.size != entry.size:
            outcomes.append(Outcome(entry.path, Status.MISMATCH, f"size {obj.size}, expected {entry.size}"))
        else:
            both.append((entry, obj))
    outcomes += [Outcome(p, Status.EXTRA, "added") for p in present]
    outcomes += [
        Outcome(p.path, Status.ERROR if p.unreadable_dir or p.unmapped else Status.EXTRA, p.reason)
        for p in refused.values()
    ]
    return outcomes, both


def audit_fast(url: str, manifest: Manifest, storage_options: dict[str, Any] | None = None) -> Report:
    if not manifest.metadata:
        raise UsageError(
            "no object metadata was recorded with this manifest (MANIFEST.objects.json): "
            f"{option('audit_fast')} needs a manifest built from an object store"
        )
    started = time.perf_counter()
    listing = list_source(url, manifest.exclude, WalkOptions(storage_options=storage_options), _reading(url, manifest))
    outcomes, both = _diff(manifest, listing)
    for entry, _ in both:
        then = manifest.metadata.get(entry.path, {})
        now = listing.metadata.get(entry.path, {})
        changed = [k for k in ("etag", "version_id") if then.get(k) != now.get(k)]
        outcomes.append(
            Outcome(entry.path, Status.MISMATCH, f"{' and '.join(changed)} changed")
            if changed
            else Outcome(entry.path, Status.OK, "metadata unchanged")
        )
    outcomes.sort(key=lambda o: o.path)
    return Report(manifest.root, manifest.algorithm, tuple(outcomes), False, 0, time.perf_counter() - started)


def audit_sample(
    url: str,
    manifest: Manifest,
    fraction: float,
    seed: int,
    storage_options: dict[str, Any] | None = None,
    jobs: int | None = None,
) -> tuple[Report, SampleStats]:
    if not 0 < fraction <= 1:
        raise UsageError(f"{option('audit_sample')} takes a fraction in (0, 1]")
    started = time.perf_counter()
    listing = list_source(url, manifest.exclude, WalkOptions(storage_options=storage_options), _reading(url, manifest))
    outcomes, both = _diff(manifest, listing)
    spans = [(entry, obj, rfc6962.chunk_count(entry.size, manifest.chunk_size)) for entry, obj in both]
    total = sum(n for _, _, n in spans)
    rng = random.Random(seed)
    picked = sorted(rng.sample(range(total), min(total, math.ceil(total * fraction)))) if total else []
    by_object: dict[int, list[int]] = {}
    base = 0
    cursor = 0
    for k, (_, _, n) in enumerate(spans):
        while cursor < len(picked) and picked[cursor] < base + n:
            by_object.setdefault(k, []).append(picked[cursor] - base)
            cursor += 1
        base += n
    hashed = 0
    opener = listing.access.opener()
    for k, (entry, obj, n) in enumerate(spans):
        chosen = by_object.get(k, [])
        if n and manifest.layers is None and n > 1:
            raise UsageError(
                f"{option('audit_sample')} needs the leaf sidecar (MANIFEST.leaves) beside the manifest or bundle"
            )
        leaves = manifest.layers.leaf_hashes(entry, manifest.chunk_size) if manifest.layers else [entry.root] * n
        bad = []
        try:
            for index in chosen:
                leaf = _chunk_leaf(opener, obj, manifest, index)
                hashed += min(manifest.chunk_size, entry.size - index * manifest.chunk_size)
                if leaf != leaves[index]:
                    bad.append(index)
        except SourceError as e:
            outcomes.append(Outcome(entry.path, Status.ERROR, e.message))
            continue
        if bad:
            shown = ", ".join(map(str, bad[:MAX_SAMPLE_SHOWN]))
            outcomes.append(Outcome(entry.path, Status.MISMATCH, f"sampled chunk(s) {shown} differ"))
        else:
            note = f"{len(chosen)} of {n} chunks sampled" if chosen else f"not sampled ({n} chunks)"
            outcomes.append(Outcome(entry.path, Status.OK, note))
    outcomes.sort(key=lambda o: o.path)
    report = Report(manifest.root, manifest.algorithm, tuple(outcomes), False, hashed, time.perf_counter() - started)
    return report, SampleStats(total, len(picked), seed)


def _chunk_leaf(opener: Opener, obj: Listed, manifest: Manifest, index: int) -> bytes:
    """Leaf hash of one chunk, read through the object's reader; a short or
    failed read raises SourceError (an error, never a verdict on content)."""
    start = index * manifest.chunk_size
    length = min(manifest.chunk_size, obj.size - start)
    view = memoryview(bytearray(min(max(length, 1), 4 << 20)))
    h = manifest.hasher.leaf_hasher()
    with opener(obj) as reader:
        feed_hasher(reader, obj, start, length, h, view)
    return h.digest()


def audit_full(
    url: str, manifest: Manifest, walk: WalkOptions = WalkOptions(), hashing: HashOptions = HashOptions()
) -> Report:
    """Every byte rehashed, as `verify` does; with `hashing.checkpoint`,
    objects are recorded as they are hashed, and a rerun with `resume` after
    an interruption skips those still in the same state (same ETag, version,
    size), counted in `progress.resumed_files` and `resumed_bytes`
    (merkle.hashing.checkpoint)."""
    return verify_with(url, manifest, walk=walk, hashing=hashing)
