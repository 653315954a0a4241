"""Where `merkle sync` fetches chunks from: a local folder or any fsspec URL.

Nothing read here is trusted: every chunk is checked against the signed
leaf hashes before it is written (merkle.syncing.sync).  A source only has to
answer "bytes [start, end) of this listed path", exactly, or fail with one
line; it never lists anything, so the paths read are the signed manifest's.
"""

from __future__ import annotations

import os
from typing import Any, Protocol

from merkle.errors import SourceError
from merkle.source.local import Root, open_regular
from merkle.source.readers import LocalFile
from merkle.source.remote import RemoteObject, RemoteReader, filesystem, is_url


class ChunkSource(Protocol):
    name: str

    def read(self, path: str, size: int, start: int, end: int) -> bytes | bytearray:
        """Bytes [start, end) of `path` (a file of `size` bytes, as signed):
        exactly that many, or SourceError naming the path."""
        ...

    def close(self) -> None: ...


class LocalSource:
    """A folder: every file opened down from the folder, never through a
    link, and only if it is a regular file (a FIFO or device planted under a
    signed name is refused, not read)."""

    def __init__(self, path: str) -> None:
        self.name = path
        fd, self._root = Root.open(path)
        os.close(fd)

    def read(self, path: str, size: int, start: int, end: int) -> bytes | bytearray:
        shown = self.shown(path)
        data = bytearray(end - start)
        with LocalFile(shown, self._root.open_file(path)) as f:  # per range: a million files never hold a million fds
            got = f.read_into(start, memoryview(data))
        if got < len(data):
            raise SourceError(f"ends at byte {start + got}; the bundle says {size} bytes", shown)
        return data

    def shown(self, path: str) -> str:
        return os.path.join(self.name, *path.split("/"))

    def close(self) -> None:
        """Nothing held: every range opens its file."""


class RemoteSource:
    """An object store prefix (or any fsspec URL): ranged GETs of exactly the
    bytes asked for, each retried with backoff as every object read is
    (merkle.source.remote)."""

    def __init__(self, url: str, storage_options: dict[str, Any] | None) -> None:
        self.name = url
        self._fs, self._base = filesystem(url, storage_options)

    def read(self, path: str, size: int, start: int, end: int) -> bytes:
        obj = RemoteObject(path, f"{self._base}/{path}", size, None, None)
        return RemoteReader(self._fs, obj).fetch_exactly(start, end)

    def close(self) -> None:
        """Nothing held: every read is a request of its own."""


def open_source(source: str, storage_options: dict[str, Any] | None) -> ChunkSource:
    """The source named by `source`: a URL, or a local folder."""
    if is_url(source):
        return RemoteSource(source, storage_options)
    if storage_options:
        from merkle.errors import UsageError, option

        raise UsageError(f"{option('storage_options')} applies to URLs", source)
    if not os.path.isdir(source):
        fd, _ = open_regular(source)  # one clear reason: absent, a file, unreadable
        os.close(fd)
        raise SourceError("not a directory", source)
    return LocalSource(source)
