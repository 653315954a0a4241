"""Walking a local directory: deterministic, filtered, and never blocking.

Rules (docs/format.md, W1-W4): files are listed in code-point order of their
canonical relative path; excluded names are pruned; symbolic links are refused
unless asked for, and then only followed when they resolve inside the root;
FIFOs, sockets and devices are reported, never opened.  Problems are collected
(not raised) so that `verify` can report each one against its path.
"""

from __future__ import annotations

import fnmatch
import os
import re
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from .errors import SourceError
from .manifest import DEFAULT_EXCLUDES
from .paths import MAX_PATH_BYTES, name_problem, path_problem
from .sources.local import kind_of


@dataclass(frozen=True)
class WalkedFile:
    path: str
    """Canonical relative path ('/'-separated)."""
    abspath: str
    """What to open (the link target when a symlink was followed)."""
    size: int
    identity: tuple[int, int, int, int, int]
    """(device, inode, size, mtime_ns, ctime_ns) when listed: a change means
    the file changed between listing and hashing."""


@dataclass(frozen=True)
class WalkProblem:
    path: str
    reason: str
    unreadable_dir: bool = False
    """A directory that could not be listed: what it holds is unknown."""
    unmapped: bool = False
    """A file name or object key that names no canonical path (or would be
    read as another key): no manifest entry can stand for it, so it is an
    error wherever it is met, never an extra that --allow-extra lets pass."""

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class Walk:
    root: str
    files: list[WalkedFile] = field(default_factory=list)
    problems: list[WalkProblem] = field(default_factory=list)


def identity(st: os.stat_result) -> tuple[int, int, int, int, int]:
    # ctime too: a writer that restores mtime (touch -d) still moves ctime.
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class Excluder:
    """A pattern without '/' matches a file or directory name at any depth;
    a pattern with '/' matches the whole relative path ('*' crosses '/')."""

    def __init__(self, patterns: Sequence[str]) -> None:
        def compiled(ps: list[str]) -> re.Pattern[str] | None:
            return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in ps)) if ps else None

        self._names = compiled([p for p in patterns if "/" not in p])
        self._paths = compiled([p.strip("/") for p in patterns if "/" in p])

    def __call__(self, relpath: str, name: str) -> bool:
        return bool(
            (self._names is not None and self._names.match(name))
            or (self._paths is not None and self._paths.match(relpath))
        )

    def covers(self, relpath: str) -> bool:
        """Whether the walk would skip `relpath`: it or a parent directory matches."""
        parts = relpath.split("/")
        return any(self("/".join(parts[: i + 1]), parts[i]) for i in range(len(parts)))


def walk(
    root: str | os.PathLike[str],
    exclude: Sequence[str] = DEFAULT_EXCLUDES,
    follow_symlinks: bool = False,
) -> Walk:
    """List the regular files under directory `root`."""
    result, directories = walk_stream(root, exclude, follow_symlinks)
    for _ in directories:
        pass
    return result


def walk_stream(
    root: str | os.PathLike[str],
    exclude: Sequence[str] = DEFAULT_EXCLUDES,
    follow_symlinks: bool = False,
) -> tuple[Walk, Iterator[list[WalkedFile]]]:
    """`walk`, one directory at a time: the root is checked now (SourceError),
    and the iterator yields each directory's files as it is listed, so that
    hashing can start before the walk ends.  The Walk fills as it runs; once
    the iterator is exhausted it is complete and sorted, as `walk` returns it."""
    top = os.fspath(root)
    try:
        st = os.stat(top)
    except OSError as e:
        raise SourceError(e.strerror or str(e), top) from e
    if not stat.S_ISDIR(st.st_mode):
        raise SourceError(f"{kind_of(st.st_mode)}, expected a directory", top)
    result = Walk(top)
    return result, _directories(result, Excluder(exclude), follow_symlinks, (st.st_dev, st.st_ino))


def _directories(result: Walk, excluded: Excluder, follow_symlinks: bool,
                 top_id: tuple[int, int]) -> Iterator[list[WalkedFile]]:
    top = result.root
    real_root = os.path.realpath(top)
    seen_dirs = {top_id}
    stack: list[tuple[str, str]] = [("", top)]
    while stack:
        prefix, directory = stack.pop()
        try:
            with os.scandir(directory) as it:
                entries = list(it)
        except OSError as e:
            if not prefix:  # the root itself: nothing can be decided
                raise SourceError(f"cannot list: {e.strerror or e}", top) from e
            reason = f"cannot list: {e.strerror or e}"
            result.problems.append(WalkProblem(prefix.rstrip("/"), reason, unreadable_dir=True))
            continue
        first = len(result.files)
        for entry in entries:
            rel = prefix + entry.name
            if excluded(rel, entry.name):
                continue
            problem = name_problem(entry.name)
            if problem is None and len(rel) * 4 > MAX_PATH_BYTES:
                problem = path_problem(rel)
            if problem:
                result.problems.append(WalkProblem(ascii(rel)[1:-1], f"unsupported file name: {problem}",
                                                   unmapped=True))
                continue
            try:
                _visit(entry, rel, real_root, follow_symlinks, seen_dirs, stack, result)
            except OSError as e:
                result.problems.append(WalkProblem(rel, e.strerror or str(e)))
        if len(result.files) > first:
            yield result.files[first:]
    result.files.sort(key=lambda f: f.path)
    result.problems.sort(key=lambda p: p.path)


def _visit(
    entry: os.DirEntry[str],
    rel: str,
    real_root: str,
    follow_symlinks: bool,
    seen_dirs: set[tuple[int, int]],
    stack: list[tuple[str, str]],
    result: Walk,
) -> None:
    path = entry.path
    st = entry.stat(follow_symlinks=False)
    if stat.S_ISLNK(st.st_mode):
        if not follow_symlinks:
            result.problems.append(WalkProblem(rel, "symbolic link refused (use --follow-symlinks)"))
            return
        target = os.path.realpath(path)
        if os.path.commonpath([real_root, target]) != real_root:
            result.problems.append(WalkProblem(rel, "symbolic link points outside the root"))
            return
        try:
            st = os.stat(target)
        except OSError:
            result.problems.append(WalkProblem(rel, "broken symbolic link"))
            return
        path = target
    if stat.S_ISDIR(st.st_mode):
        key = (st.st_dev, st.st_ino)
        if key in seen_dirs:
            result.problems.append(WalkProblem(rel, "directory reached twice through a symbolic link"))
            return
        seen_dirs.add(key)
        stack.append((rel + "/", path))
    elif stat.S_ISREG(st.st_mode):
        result.files.append(WalkedFile(rel, path, st.st_size, identity(st)))
    else:
        result.problems.append(WalkProblem(rel, f"{kind_of(st.st_mode)}, not a regular file"))
