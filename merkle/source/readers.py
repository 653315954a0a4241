"""The one reader protocol: bytes of one object, read by offset.  The
engine hashes through it, range checks and verified reads check through it;
a backend implements `Reader` and nothing else.

- `LocalFile`: a local file, named by the user, below a tree's root, or as
  a walk listed it (then refused once it is no longer the file listed).
- `FsspecObject`: one object behind an fsspec URL, for range checks and
  verified reads; a listing's objects are read by merkle.source.remote's
  `RemoteReader`, which retries and pins what was listed.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from merkle.errors import SourceError, UsageError, install_hint
from merkle.source.local import Root, open_below, open_regular
from merkle.source.walk import WalkedFile, identity


class Reader(Protocol):
    """Reads one object.  Used as a context manager (closed on exit; a
    reader of a listed object also checks there that the object did not
    change while it was read)."""

    name: str
    """What errors name."""

    def size(self) -> int: ...

    def read_into(self, offset: int, view: memoryview) -> int:
        """Fill `view` from `offset`; fewer bytes only at the end of the
        object.  SourceError if the object cannot be read."""
        ...

    def check_end(self) -> None:
        """After the last byte: SourceError if the object holds bytes past
        `size()` (one that grew, or whose size lies)."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Reader: ...

    def __exit__(self, kind: object, error: object, tb: object) -> None: ...


class Listed(Protocol):
    """What a listing holds and the engine hashes: a file or object."""

    @property
    def path(self) -> str: ...
    @property
    def abspath(self) -> str: ...
    @property
    def size(self) -> int: ...


Opener = Callable[[Listed], Reader]
"""Opens one listed object (a listing knows which kind it holds)."""


def fill(read_some: Callable[[int, memoryview], int], offset: int, view: memoryview) -> int:
    """Call `read_some(offset, view)` (which may return fewer bytes than
    asked) until `view` is full or it returns 0; the bytes read."""
    done = 0
    while done < len(view):
        got = read_some(offset + done, view[done:])
        if got == 0:
            break
        done += got
    return done


class LocalFile:
    """A local file: one named by the user, opened as named; one below a
    tree's root under the link policy (`below`); or one a walk listed
    (`listed`), which must still be the file the walk saw (device, inode,
    size, mtime, ctime) when opened and when closed after a clean read."""

    def __init__(
        self, path: str, opened: tuple[int, os.stat_result] | None = None, listed: WalkedFile | None = None
    ) -> None:
        self.name = path
        self._fd, st = opened if opened is not None else open_regular(path)
        self._size = st.st_size
        self._listed = listed
        if listed is not None and identity(st) != listed.identity:
            self.close()
            raise SourceError("changed between listing and hashing", listed.path)

    @classmethod
    def below(cls, root: str, name: str, follow_symlinks: bool = False) -> LocalFile:
        """File `name` ('/'-separated) of the tree at `root`, opened down from
        the root without following links unless `follow_symlinks` allows
        links that stay inside it (merkle.source.local.Root.open_file)."""
        return cls(os.path.join(root, *name.split("/")), open_below(root, name, follow_symlinks))

    @classmethod
    def listed(cls, src: WalkedFile, follow_symlinks: bool = False) -> LocalFile:
        """A file as the walk listed it, opened down from its root, never
        through a link (WalkedFile.open; through this thread's
        `directory_cache` when it has one); errors name `src.path`."""
        dirs: _DirCache | None = getattr(_thread, "dirs", None)
        opened = dirs.open(src) if dirs is not None and src.base is not None else src.open(follow_symlinks)
        return cls(src.path, opened, src)

    def in_hole(self, start: int, end: int) -> bool:
        """Whether bytes [start, end) lie wholly in a hole of a sparse file."""
        return in_hole(self._fd, start, end)

    def size(self) -> int:
        return self._size

    def read_into(self, offset: int, view: memoryview) -> int:
        try:
            return fill(self._pread, offset, view)
        except OSError as e:
            raise SourceError(f"read error: {e.strerror or e}", self.name) from e

    def _pread(self, offset: int, view: memoryview) -> int:
        return os.preadv(self._fd, [view], offset)

    def check_end(self) -> None:
        # Bytes past the size mean a file whose size lies (procfs, some
        # network file systems) or that grew: never hash a prefix of it.
        try:
            more = os.pread(self._fd, 1, self._size)
        except OSError as e:
            raise SourceError(f"read error: {e.strerror or e}", self.name) from e
        if more:
            raise SourceError(f"has bytes past its listed size of {self._size}", self.name)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> LocalFile:
        return self

    def __exit__(self, kind: object, error: object, tb: object) -> None:
        try:
            if error is None and self._listed is not None and identity(os.fstat(self._fd)) != self._listed.identity:
                raise SourceError("changed while hashing", self.name)
        except OSError as e:
            raise SourceError(f"read error: {e.strerror or e}", self.name) from e
        finally:
            self.close()


def in_hole(fd: int, start: int, end: int) -> bool:
    """Whether bytes [start, end) of the open file `fd` lie wholly in a hole
    (a sparse file's unwritten part)."""
    if start == end or not hasattr(os, "SEEK_DATA"):
        return False
    try:
        return os.lseek(fd, start, os.SEEK_DATA) >= end
    except OSError:  # ENXIO: no data after start at all
        return True


def local_opener(follow_symlinks: bool) -> Opener:
    def open_local(src: Listed) -> Reader:
        assert isinstance(src, WalkedFile)
        return LocalFile.listed(src, follow_symlinks)

    open_local.local_follow = follow_symlinks  # type: ignore[attr-defined]  # the extension may read these itself
    return open_local


_thread = threading.local()
"""Per thread inside `directory_cache`: its _DirCache."""


@contextlib.contextmanager
def directory_cache() -> Iterator[None]:
    """For the calling thread, while it lasts: the directory of the listed
    file opened last stays open for the next one (files come in directory
    order, so most opens are one openat relative to it instead of a walk
    down from the root).  The engine's workers each run inside one."""
    cache = _thread.dirs = _DirCache()
    try:
        yield
    finally:
        cache.close()
        del _thread.dirs


class _DirCache:
    """The directory opened last (down from the root without following a
    link, like every other)."""

    def __init__(self) -> None:
        self.base: Root | None = None
        self.directory = ""
        self.fd = -1

    def open(self, src: WalkedFile) -> tuple[int, os.stat_result]:
        """What `src.open()` gives, through the cached directory."""
        assert src.base is not None
        directory, _, name = src.target.rpartition("/")
        if src.base is not self.base or directory != self.directory or self.fd < 0:
            self.close()
            try:
                self.fd = src.base.open_dir(directory)
            except SourceError as e:
                raise SourceError(e.message, src.abspath) from e
            self.base, self.directory = src.base, directory
        return open_regular(name, False, self.fd, src.abspath)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
        self.base, self.fd = None, -1


class FsspecObject:
    """One object behind an fsspec URL (s3://, memory://, http://, ...)."""

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        try:
            import fsspec
        except ImportError as e:
            raise UsageError(f"reading URLs needs fsspec: {install_hint('s3')}") from e
        self.name = url
        try:
            self._fs, self._path = fsspec.core.url_to_fs(url, **(storage_options or {}))
            self._size = int(self._fs.size(self._path))
        except ImportError as e:
            raise UsageError(f"{e} (install the fsspec backend for this URL, e.g. {install_hint('s3')})") from e
        except (OSError, ValueError) as e:
            raise SourceError(str(e) or type(e).__name__, url) from e

    def size(self) -> int:
        return self._size

    def read_into(self, offset: int, view: memoryview) -> int:
        end = min(offset + len(view), self._size)
        if end <= offset:
            return 0
        try:
            data = self._fs.cat_file(self._path, start=offset, end=end)
        except (OSError, ValueError) as e:
            raise SourceError(f"read error: {e}", self.name) from e
        view[: len(data)] = data
        return len(data)

    def check_end(self) -> None:
        """Nothing to do: the size read when opened bounds every read."""

    def close(self) -> None:
        pass

    def __enter__(self) -> FsspecObject:
        return self

    def __exit__(self, kind: object, error: object, tb: object) -> None:
        self.close()


def open_source(path_or_url: str, storage_options: dict[str, Any] | None = None) -> Reader:
    """The object itself: a local path, opened as named, or an fsspec URL."""
    if "://" in path_or_url and not path_or_url.startswith("file://"):
        return FsspecObject(path_or_url, storage_options)
    return LocalFile(path_or_url.removeprefix("file://"))


def open_file(
    path_or_url: str,
    name: str,
    follow_symlinks: bool = False,
    storage_options: dict[str, Any] | None = None,
) -> Reader:
    """File `name` of a dataset at `path_or_url`: the file itself (a local
    path, opened as named, or an fsspec URL), or, for a local directory, the
    tree that holds it, opened below it under the link policy (no link
    followed unless `follow_symlinks` allows links that stay inside it)."""
    local = path_or_url.removeprefix("file://")
    if "://" not in local and os.path.isdir(local):
        return LocalFile.below(local, name, follow_symlinks)
    return open_source(path_or_url, storage_options)


class Counting:
    """Wraps a reader and counts what is read (tests and benchmarks)."""

    def __init__(self, inner: Reader) -> None:
        self.inner = inner
        self.name = inner.name
        self.bytes_read = 0
        self.reads = 0

    def size(self) -> int:
        return self.inner.size()

    def in_hole(self, start: int, end: int) -> bool:
        in_hole = getattr(self.inner, "in_hole", None)
        return bool(in_hole(start, end)) if in_hole is not None else False

    def read_into(self, offset: int, view: memoryview) -> int:
        got = self.inner.read_into(offset, view)
        self.bytes_read += got
        self.reads += 1
        return got

    def check_end(self) -> None:
        self.inner.check_end()

    def close(self) -> None:
        self.inner.close()

    def __enter__(self) -> Counting:
        return self

    def __exit__(self, kind: object, error: object, tb: object) -> None:
        self.inner.__exit__(kind, error, tb)
