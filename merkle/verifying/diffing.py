"""What changed between two validated manifests (`merkle diff`, docs/diff.md,
rules DF1-DF8).

Pure: two Manifest objects in (already parsed, and for bundles already
through the one trust path), a Diff out; no I/O.  Chunk detail comes from
each manifest's leaf layers (the sidecar, which authenticated against the
manifest's roots when it was loaded, format rule S3): a file with two or
more chunks and no layers on either side has ranges unknown, never
guessed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from merkle.errors import UsageError
from merkle.format.manifest import FileEntry, Manifest
from merkle.format.zarr import ZarrArray
from merkle.tree.rfc6962 import chunk_count

RangeKind = Literal["changed", "appended", "truncated"]
UNKNOWN_LAYERS: Final = "no leaf layers (sidecar absent or ignored)"
UNKNOWN_CHUNK_SIZE: Final = "chunk sizes differ"


@dataclass(frozen=True, slots=True)
class ChunkRange:
    """Chunks first..last (inclusive) and their bytes [start, end): in the
    new file for `changed` and `appended`, in the old file for `truncated`
    (rule DF4)."""

    kind: RangeKind
    first: int
    last: int
    start: int
    end: int

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "chunks": [self.first, self.last], "bytes": [self.start, self.end]}


@dataclass(frozen=True, slots=True)
class Change:
    """A path on both sides whose size or content differs, or whose content
    cannot be compared (`same` None)."""

    path: str
    old: FileEntry
    new: FileEntry
    ranges: tuple[ChunkRange, ...] | None
    """The differing chunks; None when unknown (`why`)."""
    why: str | None = None
    known: bool = True
    """False when the content could not be compared at all (DF6)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "old": {"size": self.old.size, "root": self.old.root.hex()},
            "new": {"size": self.new.size, "root": self.new.root.hex()},
            "status": "changed" if self.known else "unknown",
            "ranges": None if self.ranges is None else [r.to_dict() for r in self.ranges],
            "ranges_unknown": self.why,
        }


@dataclass(frozen=True, slots=True)
class Move:
    """The one file of a content identity that left `old` and appeared at
    `new` (rule DF3)."""

    old: str
    new: str
    entry: FileEntry

    def to_dict(self) -> dict[str, Any]:
        return {"from": self.old, "to": self.new, "size": self.entry.size, "root": self.entry.root.hex()}


@dataclass(frozen=True)
class ArrayDiff:
    """The keys of one zarr array that changed (rule DF7): chunk keys as the
    array names them, and any other key (metadata) apart."""

    path: str
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "added": list(self.added),
            "removed": list(self.removed),
            "changed": list(self.changed),
        }


@dataclass(frozen=True)
class Diff:
    """What `b` has that `a` does not.  Truthy when the two differ."""

    added: tuple[FileEntry, ...]
    removed: tuple[FileEntry, ...]
    changed: tuple[Change, ...]
    moved: tuple[Move, ...]
    unchanged: int
    chunk_size: tuple[int, int]
    arrays: tuple[ArrayDiff, ...] = field(default=())

    @property
    def unknown(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changed if not c.known)

    @property
    def differs(self) -> bool:
        """True when a difference is certain (an unknown alone is not one)."""
        return bool(self.added or self.removed or self.moved or any(c.known for c in self.changed))

    def __bool__(self) -> bool:
        return self.differs

    def summary(self) -> str:
        unknown = len(self.unknown)
        parts = [
            f"{len(self.added)} added",
            f"{len(self.removed)} removed",
            f"{len(self.changed) - unknown} changed",
            f"{len(self.moved)} moved",
            f"{self.unchanged} unchanged",
        ]
        if unknown:
            parts.append(f"{unknown} not comparable ({UNKNOWN_CHUNK_SIZE})")
        verdict = "differ" if self.differs else "cannot tell" if unknown else "same"
        return f"{verdict}: " + ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "same": not self.differs and not self.unknown,
            "chunk_size": list(self.chunk_size),
            "added": [f.to_dict() for f in self.added],
            "removed": [f.to_dict() for f in self.removed],
            "changed": [c.to_dict() for c in self.changed],
            "moved": [m.to_dict() for m in self.moved],
            "unchanged": self.unchanged,
            "zarr": [a.to_dict() for a in self.arrays],
        }


def diff(a: Manifest, b: Manifest) -> Diff:
    """Compare manifest `a` (old) with `b` (new).  UsageError when their
    algorithms differ: roots of two hash functions say nothing about
    content (rule DF1)."""
    if a.algorithm != b.algorithm:
        raise UsageError(
            f"cannot compare a {a.algorithm} manifest with a {b.algorithm} one: their roots say nothing about "
            "each other's content (build both with one --algorithm)"
        )
    sizes = (a.chunk_size, b.chunk_size)
    arrays_of = _ArrayIndex(a, b)
    if a.root == b.root and a.chunk_size == b.chunk_size:  # the dataset root commits to every entry (D1)
        return Diff((), (), (), (), len(a.files), sizes)
    added: list[FileEntry] = []
    removed: list[FileEntry] = []
    changed: list[Change] = []
    unchanged = 0
    olds, news = a.files, b.files
    i = j = 0
    same_chunking = a.chunk_size == b.chunk_size
    while i < len(olds) and j < len(news):  # both sorted by path (P5): one merge, no dict of either
        f, g = olds[i], news[j]
        if f.path == g.path:
            if same_chunking and f.root == g.root and f.size == g.size:
                unchanged += 1
            elif (change := _compare(f, g, a, b)) is None:
                unchanged += 1
            else:
                changed.append(change)
            i += 1
            j += 1
        elif f.path < g.path:
            removed.append(f)
            i += 1
        else:
            added.append(g)
            j += 1
    removed += olds[i:]
    added += news[j:]
    moves = _moves(removed, added, a.chunk_size, b.chunk_size)
    if moves:
        gone = {m.old for m in moves}
        came = {m.new for m in moves}
        removed = [f for f in removed if f.path not in gone]
        added = [f for f in added if f.path not in came]
    result = Diff(tuple(added), tuple(removed), tuple(changed), tuple(moves), unchanged, sizes)
    arrays = arrays_of.diffs(result)
    return Diff(result.added, result.removed, result.changed, result.moved, unchanged, sizes, arrays)


def _comparable(f: FileEntry, cs_a: int, cs_b: int) -> bool:
    """Whether a root means the same content under both chunk sizes: always
    when they are equal, else only for a file of at most one chunk on both
    sides, whose root is its only leaf (F2)."""
    return cs_a == cs_b or f.size <= min(cs_a, cs_b)


def _compare(f: FileEntry, g: FileEntry, a: Manifest, b: Manifest) -> Change | None:
    if f.size == g.size and _comparable(f, a.chunk_size, b.chunk_size):
        return None if f.root == g.root else _changed(f, g, a, b)
    if f.size == g.size:  # equal sizes, roots over different chunkings: no verdict (DF6)
        return Change(f.path, f, g, None, UNKNOWN_CHUNK_SIZE, known=False)
    return _changed(f, g, a, b)


def _changed(f: FileEntry, g: FileEntry, a: Manifest, b: Manifest) -> Change:
    cs = a.chunk_size
    if cs != b.chunk_size:
        return Change(f.path, f, g, None, f"{UNKNOWN_CHUNK_SIZE}: no chunk ranges")
    old, new = _leaves(f, a), _leaves(g, b)
    if old is None or new is None:
        return Change(f.path, f, g, None, UNKNOWN_LAYERS)
    return Change(f.path, f, g, tuple(chunk_ranges(old, new, f.size, g.size, cs)))


def _leaves(f: FileEntry, m: Manifest) -> list[bytes] | None:
    """The file's leaf hashes: none for an empty file, its root for one
    chunk (S2), from the authenticated layers otherwise; None without them."""
    n = chunk_count(f.size, m.chunk_size)
    if n <= 1:
        return [f.root] if n else []
    if m.layers is None or f.path not in m.layers.leaves:
        return None
    return m.layers.leaf_hashes(f, m.chunk_size)


def chunk_ranges(
    old: Sequence[bytes], new: Sequence[bytes], old_size: int, new_size: int, chunk_size: int
) -> Iterator[ChunkRange]:
    """Runs of differing leaf indexes (DF4): `changed` where both files have
    the chunk and its leaf differs, then `appended` (chunks only the new
    file has) or `truncated` (chunks only the old file had)."""
    common = min(len(old), len(new))
    run: int | None = None
    for i in range(common + 1):
        differs = i < common and old[i] != new[i]
        if differs and run is None:
            run = i
        elif not differs and run is not None:
            yield ChunkRange("changed", run, i - 1, run * chunk_size, min(i * chunk_size, new_size))
            run = None
    if len(new) > common:
        yield ChunkRange("appended", common, len(new) - 1, common * chunk_size, new_size)
    elif len(old) > common:
        yield ChunkRange("truncated", common, len(old) - 1, common * chunk_size, old_size)


def _moves(removed: list[FileEntry], added: list[FileEntry], cs_a: int, cs_b: int) -> list[Move]:
    """Rule DF3: a removed and an added file of one (size, root), when that
    identity is the only one removed and the only one added, non-empty, and
    comparable under both chunk sizes."""
    if not removed or not added:
        return []

    def unique(files: list[FileEntry]) -> dict[tuple[int, bytes], FileEntry]:
        seen: dict[tuple[int, bytes], FileEntry | None] = {}
        for f in files:
            if f.size and _comparable(f, cs_a, cs_b):
                key = (f.size, f.root)
                seen[key] = None if key in seen else f
        return {k: f for k, f in seen.items() if f is not None}

    gone, came = unique(removed), unique(added)
    moves = [Move(f.path, came[k].path, f) for k, f in gone.items() if k in came]
    return sorted(moves, key=lambda m: m.new)


class _ArrayIndex:
    """The zarr arrays of either side, by path (rule DF7)."""

    def __init__(self, a: Manifest, b: Manifest) -> None:
        self.layouts = [m.zarr for m in (a, b) if m.zarr is not None]

    def array_of(self, key: str) -> ZarrArray | None:
        for layout in reversed(self.layouts):  # the new side's description first
            found = layout.array_of(key)
            if found is not None:
                return found
        return None

    def diffs(self, d: Diff) -> tuple[ArrayDiff, ...]:
        if not self.layouts:
            return ()
        keys: dict[str, dict[str, list[str]]] = {}

        def note(kind: str, key: str) -> None:
            array = self.array_of(key)
            if array is not None:
                keys.setdefault(array.path, {"added": [], "removed": [], "changed": []})[kind].append(key)

        for f in d.added:
            note("added", f.path)
        for f in d.removed:
            note("removed", f.path)
        for c in d.changed:
            note("changed", c.path)
        for m in d.moved:
            note("removed", m.old)
            note("added", m.new)
        return tuple(
            ArrayDiff(path, tuple(sorted(k["added"])), tuple(sorted(k["removed"])), tuple(sorted(k["changed"])))
            for path, k in sorted(keys.items())
        )
