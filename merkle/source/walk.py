"""Walking a local directory: deterministic, filtered, confined and never
blocking.

Rules (docs/format.md, W1-W5): files are listed in code-point order of their
canonical relative path; excluded names are pruned; symbolic links are refused
unless asked for, and then only followed when they resolve inside the root;
FIFOs, sockets and devices are reported, never opened; every directory is
opened relative to its open parent, never through a link, and must be the
one that was listed (W5).  Problems are collected (not raised) so that
`verify` can report each one against its path.
"""

from __future__ import annotations

import fnmatch
import os
import re
import stat
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Final

from merkle.errors import SourceError
from merkle.format.parameters import DEFAULT_EXCLUDES
from merkle.format.paths import _PLAIN_PART, MAX_PATH_BYTES, name_problem, path_problem
from merkle.source.local import (
    NotFound,
    Root,
    component_reason,
    descend,
    kind_of,
    link_refused,
    open_dir_at,
    open_regular,
    resolve,
)


@dataclass(slots=True)  # not frozen: its __init__ costs a fifth as much, for a million files; nothing assigns to one
class WalkedFile:
    path: str
    """Canonical relative path ('/'-separated)."""
    abspath: str
    """Where the file is, for messages and for files named by the user (no
    `base`), which are opened as named."""
    size: int
    identity: tuple[int, int, int, int, int]
    """(device, inode, size, mtime_ns, ctime_ns) when listed: a change means
    the file changed between listing and hashing."""
    base: Root | None = None
    """The directory the file is opened from, one component at a time and
    never through a link ..."""
    target: str = ""
    """... along this path below it (the link's target, resolved inside the
    root, when a link was followed)."""

    def open(self, follow_symlinks: bool = False) -> tuple[int, os.stat_result]:
        """(fd, fstat) of the file for reading.  `follow_symlinks` applies to
        a file named by the user only: below a base nothing is followed (the
        walk resolved allowed links already)."""
        if self.base is None:
            return open_regular(self.abspath, follow_symlinks)
        directory, _, name = self.target.rpartition("/")
        try:
            fd = self.base.open_dir(directory)
        except SourceError as e:
            raise SourceError(e.message, self.abspath) from e
        try:
            return open_regular(name, False, fd, self.abspath)
        finally:
            os.close(fd)

    def head(self, limit: int) -> bytes | None:
        """Up to `limit` bytes from the start, opened as `open()` opens it;
        None when it cannot be opened or read."""
        try:
            fd, _ = self.open()
        except SourceError:
            return None
        try:
            return os.read(fd, limit)
        except OSError:
            return None
        finally:
            os.close(fd)


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
    pruned: list[str] = field(default_factory=list)
    """What the exclusions left out: each file or directory a pattern
    matched (nothing below a pruned directory is listed)."""


def blocked_by(path: str, problems: Mapping[str, WalkProblem]) -> WalkProblem | None:
    """The problem met at a parent directory of `path` (a refused link, a
    special file, a directory that could not be listed), if any: what is
    listed under it is unknown, never absent."""
    end = path.find("/")
    while end > 0:
        problem = problems.get(path[:end])
        if problem is not None:
            return problem
        end = path.find("/", end + 1)
    return None


def identity(st: os.stat_result) -> tuple[int, int, int, int, int]:
    # ctime too: a writer that restores mtime (touch -d) still moves ctime.
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


_GLOB_CHARS: Final = frozenset("*?[")  # what fnmatch treats specially
_PLAIN_NAME: Final = re.compile(_PLAIN_PART)
"""A name `name_problem` has nothing against, told by one regular expression."""


class Excluder:
    """A pattern without '/' matches a file or directory name at any depth;
    a pattern with '/' matches the whole relative path ('*' crosses '/')."""

    def __init__(self, patterns: Sequence[str]) -> None:
        def compiled(ps: list[str]) -> re.Pattern[str] | None:
            return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in ps)) if ps else None

        self._names = compiled([p for p in patterns if "/" not in p])
        self._paths = compiled([p.strip("/") for p in patterns if "/" in p])
        plain = all("/" not in p and not _GLOB_CHARS & set(p) for p in patterns)
        self.literal_names: frozenset[str] | None = frozenset(patterns) if plain else None
        """When every pattern is a plain name (.git, the default): the names
        it matches, so the walk tests a name with one set lookup."""

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


def walk_named(
    root: str | os.PathLike[str],
    names: Sequence[str],
    exclude: Sequence[str] = DEFAULT_EXCLUDES,
    follow_symlinks: bool = False,
) -> Walk:
    """The Walk of `root` restricted to `names` (canonical relative paths),
    found by looking each one up instead of listing the tree: a check of a
    few files of a million reads only what it names.  Each is resolved down
    from the root under the same rules as the walk (merkle.source.local
    resolve: no link unless `follow_symlinks`, and then only inside the
    root) and listed as the walk would list it: a regular file; a name that
    is absent, or stands where a directory or something else is, is left
    out (the caller reports it missing); a name pruned by `exclude` is left
    out as the walk prunes it; a refused link, a special file or a directory
    that cannot be read on the way is a problem at that name, and so is a
    directory that changes between its lstat and its open.  Unlike the
    walk, it does not notice one directory reached under two names through
    followed links (each name is read where it resolves, inside the root),
    and on a case-insensitive file system it finds a file whose name differs
    in case from the one asked for (its bytes are still checked)."""
    top = os.fspath(root)
    base = _root(top)
    result = Walk(top)
    excluded = Excluder(exclude)
    fd = base.reopen()
    try:
        for rel in sorted(set(names)):
            if path_problem(rel) or excluded.covers(rel):
                continue
            try:
                target, st = resolve(base, fd, rel, follow_symlinks)
            except NotFound:  # the walk would have listed nothing there
                continue
            except SourceError as e:  # a refusal, or a race the walk would also report
                result.problems.append(WalkProblem(rel, e.message))
                continue
            if stat.S_ISREG(st.st_mode):
                where = os.path.join(top, *target.split("/"))
                result.files.append(WalkedFile(rel, where, st.st_size, identity(st), base, target))
            elif not stat.S_ISDIR(st.st_mode):
                result.problems.append(WalkProblem(rel, f"{kind_of(st.st_mode)}, not a regular file"))
    finally:
        os.close(fd)
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
    result = Walk(top)
    return result, _directories(result, Excluder(exclude), follow_symlinks, _root(top))


def _root(top: str) -> Root:
    """The directory `top` pinned as a Root; SourceError if it is none."""
    try:
        st = os.stat(top)
    except OSError as e:
        raise SourceError(e.strerror or str(e), top) from e
    if not stat.S_ISDIR(st.st_mode):
        raise SourceError(f"{kind_of(st.st_mode)}, expected a directory", top)
    return Root(top, st.st_dev, st.st_ino)


class _Dir:
    """An open directory, and how many users still need it (its own listing,
    subdirectories waiting to be opened from it)."""

    __slots__ = ("fd", "users")

    def __init__(self, fd: int, users: int = 1) -> None:
        self.fd = fd
        self.users = users

    def use(self) -> _Dir:
        self.users += 1
        return self

    def release(self) -> None:
        self.users -= 1
        if self.users == 0:
            os.close(self.fd)


_Pending = tuple[str, str, _Dir, str, tuple[int, int] | None]
"""A directory to list: (its path + '/', where it really is below the root +
'/' (not the same when reached through a followed link), an open directory,
its path below that one, its (device, inode) when listed; None for the
root)."""


def _directories(result: Walk, excluded: Excluder, follow_symlinks: bool, base: Root) -> Iterator[list[WalkedFile]]:
    top = result.root
    # The root stays open for the whole walk (followed links resolve from it);
    # every other directory only until its subdirectories are opened.
    root = _Dir(base.reopen(), users=2)
    literal, plain_name, S_ISREG = excluded.literal_names, _PLAIN_NAME.fullmatch, stat.S_ISREG
    seen_dirs = {(base.dev, base.ino)}
    stack: list[_Pending] = [("", "", root, "", None)]
    try:
        while stack:
            prefix, real, parent, below, listed = stack.pop()
            directory = parent if listed is None else _descend(result, prefix, parent, below, listed)
            if directory is None:
                continue
            try:
                with os.scandir(directory.fd) as it:
                    entries = list(it)
            except OSError as e:
                directory.release()
                if not prefix:  # the root itself: nothing can be decided
                    raise SourceError(f"cannot list: {e.strerror or e}", top) from e
                reason = f"cannot list: {e.strerror or e}"
                result.problems.append(WalkProblem(prefix.rstrip("/"), reason, unreadable_dir=True))
                continue
            first = len(result.files)
            visit = _Visit(result, base, root, directory, real, follow_symlinks, seen_dirs, stack)
            at, append = visit.at, result.files.append
            try:
                for entry in entries:  # per file: every call here costs a second at a million files
                    name = entry.name
                    rel = prefix + name
                    if (name in literal) if literal is not None else excluded(rel, name):
                        result.pruned.append(rel)
                        continue
                    problem = None if plain_name(name) else name_problem(name)
                    if problem is None and len(rel) * 4 > MAX_PATH_BYTES:
                        problem = path_problem(rel)
                    if problem:
                        result.problems.append(
                            WalkProblem(ascii(rel)[1:-1], f"unsupported file name: {problem}", unmapped=True)
                        )
                        continue
                    try:
                        st = entry.stat(follow_symlinks=False)  # fstatat in the open directory
                        if S_ISREG(st.st_mode):  # the common case, inline
                            ident = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)  # identity()
                            append(WalkedFile(rel, at + name, st.st_size, ident, base, real + name))
                        else:
                            visit(entry, rel, st)
                    except OSError as e:
                        result.problems.append(WalkProblem(rel, e.strerror or str(e)))
            finally:
                directory.release()
            if len(result.files) > first:
                yield result.files[first:]
    finally:
        for _, _, parent, _, _ in stack:
            parent.release()
        root.release()
    result.files.sort(key=attrgetter("path"))
    result.problems.sort(key=attrgetter("path"))


def _descend(result: Walk, prefix: str, parent: _Dir, below: str, listed: tuple[int, int]) -> _Dir | None:
    """Open a listed directory from its open parent, never through a link,
    and check it is the directory that was listed (W5); else record why its
    contents are unknown."""
    rel = prefix.rstrip("/")
    try:
        if "/" in below:  # a followed link's target, resolved from the root
            fd = descend(parent.fd, below.split("/"))
        else:
            fd = open_dir_at(parent.fd, below)
    except OSError as e:
        reason = component_reason(e, parent.fd, below)
        if reason == "symbolic link refused":
            reason = "replaced by a symbolic link while the tree was walked"
        result.problems.append(WalkProblem(rel, f"cannot list: {reason}", unreadable_dir=True))
        return None
    except SourceError as e:
        result.problems.append(WalkProblem(rel, f"cannot list: {e.message}", unreadable_dir=True))
        return None
    finally:
        parent.release()
    try:
        st = os.fstat(fd)
    except OSError as e:
        os.close(fd)
        result.problems.append(WalkProblem(rel, f"cannot list: {e.strerror or e}", unreadable_dir=True))
        return None
    if (st.st_dev, st.st_ino) != listed:
        os.close(fd)
        result.problems.append(WalkProblem(rel, "cannot list: changed while the tree was walked", unreadable_dir=True))
        return None
    return _Dir(fd)


class _Visit:
    """Sorts the entries of one open directory into files, directories to
    list later, and problems."""

    def __init__(
        self,
        result: Walk,
        base: Root,
        root: _Dir,
        directory: _Dir,
        real: str,
        follow_symlinks: bool,
        seen_dirs: set[tuple[int, int]],
        stack: list[_Pending],
    ) -> None:
        self.real = real
        self.at = os.path.join(result.root, *real.split("/"))  # ends in a separator
        self.result = result
        self.base = base
        self.root = root
        self.directory = directory
        self.follow = follow_symlinks
        self.seen_dirs = seen_dirs
        self.stack = stack

    def __call__(self, entry: os.DirEntry[str], rel: str, st: os.stat_result) -> None:
        result = self.result
        parent, below, target = self.directory, entry.name, self.real + entry.name
        if stat.S_ISLNK(st.st_mode):
            if not self.follow:
                result.problems.append(WalkProblem(rel, link_refused()))
                return
            try:
                target, st = resolve(self.base, self.root.fd, target, True)
            except SourceError as e:
                result.problems.append(WalkProblem(rel, e.message))
                return
            parent, below = self.root, target
        if stat.S_ISDIR(st.st_mode):
            key = (st.st_dev, st.st_ino)
            if key in self.seen_dirs:
                result.problems.append(WalkProblem(rel, "directory reached twice through a symbolic link"))
                return
            self.seen_dirs.add(key)
            self.stack.append((rel + "/", target + "/" if target else "", parent.use(), below, key))
        elif stat.S_ISREG(st.st_mode):
            where = os.path.join(result.root, *target.split("/"))
            result.files.append(WalkedFile(rel, where, st.st_size, identity(st), self.base, target))
        else:
            result.problems.append(WalkProblem(rel, f"{kind_of(st.st_mode)}, not a regular file"))
