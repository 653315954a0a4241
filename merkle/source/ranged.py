"""Sources that read byte ranges of one object: a local file or any fsspec
URL.  Verified reads and range checks need only `size` and `read_into`; a
backend implements those two and nothing else."""

from __future__ import annotations

import os
from typing import Any, Protocol

from merkle.errors import SourceError, UsageError, install_hint
from merkle.source.local import open_below, open_regular


class RangeSource(Protocol):
    name: str

    def size(self) -> int: ...

    def read_into(self, offset: int, view: memoryview) -> int:
        """Fill `view` from `offset`; fewer bytes only at end of object."""
        ...

    def close(self) -> None: ...


class LocalFile:
    """A local file: one named by the user, opened as named, or one below a
    tree's root under the link policy (`below`)."""

    def __init__(self, path: str, opened: tuple[int, os.stat_result] | None = None) -> None:
        self.name = path
        self._fd, st = opened if opened is not None else open_regular(path)
        self._size = st.st_size

    @classmethod
    def below(cls, root: str, name: str, follow_symlinks: bool = False) -> LocalFile:
        """File `name` ('/'-separated) of the tree at `root`, opened down from
        the root without following links unless `follow_symlinks` allows
        links that stay inside it (merkle.source.local.Root.open_file)."""
        return cls(os.path.join(root, *name.split("/")), open_below(root, name, follow_symlinks))

    def in_hole(self, start: int, end: int) -> bool:
        """Whether bytes [start, end) lie wholly in a hole of a sparse file."""
        if start == end or not hasattr(os, "SEEK_DATA"):
            return False
        try:
            return os.lseek(self._fd, start, os.SEEK_DATA) >= end
        except OSError:  # ENXIO: no data after start at all
            return True

    def size(self) -> int:
        return self._size

    def read_into(self, offset: int, view: memoryview) -> int:
        done = 0
        try:
            while done < len(view):
                got = os.preadv(self._fd, [view[done:]], offset + done)
                if got == 0:
                    break
                done += got
        except OSError as e:
            raise SourceError(f"read error: {e.strerror or e}", self.name) from e
        return done

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


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

    def close(self) -> None:
        pass


def open_source(path_or_url: str, storage_options: dict[str, Any] | None = None) -> RangeSource:
    if "://" in path_or_url and not path_or_url.startswith("file://"):
        return FsspecObject(path_or_url, storage_options)
    return LocalFile(path_or_url.removeprefix("file://"))


class Counting:
    """Wraps a source and counts what is read (tests and benchmarks)."""

    def __init__(self, inner: RangeSource) -> None:
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

    def close(self) -> None:
        self.inner.close()
