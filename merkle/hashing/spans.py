"""Roots of byte ranges of open files, hashed by the engine's workers:
the files inside an uncompressed container layer are byte ranges of its
blob (merkle.image.layers), hashed in parallel as if they were files.

A span is read with `os.preadv` at its offset into the worker's buffer;
the file descriptor stays the caller's (opened once, never by name again,
so a blob swapped under us is not read).  Every byte is counted as for a file: a
span the file does not hold whole is a short read, an error for that span.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from merkle.errors import SourceError
from merkle.format.parameters import check_chunk_size
from merkle.hashing.engine import FileDigest, hash_files
from merkle.report import Progress
from merkle.source.readers import Listed, Reader, fill
from merkle.tree.hasher import Algorithm, tree_hasher


@dataclass(frozen=True)
class Span:
    """Bytes [start, start + size) of the file open as `fd` (the caller's), named `path` in errors."""

    path: str
    fd: int
    start: int
    size: int

    @property
    def abspath(self) -> str:
        return self.path


class SpanReader:
    """The `Reader` of one span of an open file descriptor (not closed here)."""

    def __init__(self, span: Span) -> None:
        self.fd = span.fd
        self.span = span
        self.name = span.path

    def size(self) -> int:
        return self.span.size

    def read_into(self, offset: int, view: memoryview) -> int:
        want = min(len(view), self.span.size - offset)
        if want <= 0:
            return 0
        try:
            return fill(self._pread, self.span.start + offset, view[:want])
        except OSError as e:
            raise SourceError(f"read error: {e.strerror or e}", self.name) from e

    def _pread(self, offset: int, view: memoryview) -> int:
        return os.preadv(self.fd, [view], offset)

    def check_end(self) -> None:
        """Nothing past a span belongs to it: there is no end to check."""

    def close(self) -> None:
        """The descriptor is the caller's."""

    def __enter__(self) -> SpanReader:
        return self

    def __exit__(self, kind: object, error: object, tb: object) -> None:
        self.close()


def hash_spans(
    spans: Sequence[Span],
    algorithm: Algorithm,
    chunk_size: int,
    jobs: int | None = None,
    progress: Progress | None = None,
) -> list[FileDigest]:
    """The Merkle root of each span, in order,
    hashed in parallel (large spans split across workers as large files
    are); a span that cannot be read whole comes back with its error."""
    check_chunk_size(chunk_size)

    def opener(listed: Listed) -> Reader:
        assert isinstance(listed, Span)
        return SpanReader(listed)

    return hash_files(spans, tree_hasher(algorithm), chunk_size, jobs, progress, opener=opener)
