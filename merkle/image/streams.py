"""The byte streams a layer is read through (merkle.image.layers).

- `Window`: bytes [start, start + length) of an open file, seekable: an
  uncompressed layer in place (a blob file, or a member of an archive),
  its headers read by seeking over the files' data.
- `Produced`: a layer's tar stream made on another thread (the blob read,
  checked against its digest and gunzipped there), handed over in large
  buffers: zlib and hashlib release the GIL, so the gunzip runs on one core
  while the tar is read and its files hashed on the other.
- `ZeroTail`: a stream, then one tar record of zeros.
"""

from __future__ import annotations

import io
import os
import queue
import tarfile
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import IO, Any, Final

BUFFER: Final = 4 << 20
DEPTH: Final = 4
"""Buffers in flight between the producing thread and the reader (memory: DEPTH x BUFFER)."""


class Window(io.RawIOBase):
    """Bytes [start, start + length) of the file open as `fd` (not closed
    here), read with pread (no shared file position), then `zeros` zero
    bytes (ZeroTail's record, for a tar not padded to its record size)."""

    def __init__(self, fd: int, start: int, length: int, zeros: int = 0) -> None:
        self.fd, self.start, self.length, self.zeros = fd, start, length, zeros
        self.pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.length}[whence]
        if base + offset < 0:
            raise OSError("seek before the start of the layer")
        self.pos = base + offset
        return self.pos

    def readinto(self, buffer: Any) -> int:
        want = min(len(buffer), self.length - self.pos)
        if want <= 0:
            n = max(0, min(len(buffer), self.length + self.zeros - self.pos))
            buffer[:n] = bytes(n)
            self.pos += n
            return n
        got = os.preadv(self.fd, [memoryview(buffer)[:want]], self.start + self.pos)
        self.pos += got
        return got


class ZeroTail(io.RawIOBase):
    """`inner`, then one tar record of zeros: a tar need not be padded to
    its record size, which tarfile's stream reader insists on (what the
    zeros complete is still checked: the layer's digest covers the bytes
    read, not the zeros)."""

    def __init__(self, inner: IO[bytes]) -> None:
        self.inner = inner
        self.tail = tarfile.RECORDSIZE
        self.real = 0
        """Bytes of `inner` read so far (the zeros after them are not)."""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        got = self.inner.readinto(buffer)  # type: ignore[attr-defined]
        if got:
            self.real += got
            return int(got)
        n = min(len(buffer), self.tail)
        buffer[:n] = bytes(n)
        self.tail -= n
        return n


class Produced(io.RawIOBase):
    """What `source()` yields, read to its end on a thread of its own (the
    source is opened, read and closed there) and handed over here in
    buffers of BUFFER bytes.  An error of the source is raised by the read
    that reaches it; `close()` stops the thread (it may stop early, when
    the reader gives up) and waits for it."""

    def __init__(self, source: Callable[[], AbstractContextManager[IO[bytes]]]) -> None:
        self.full: queue.Queue[tuple[bytearray, int] | BaseException] = queue.Queue()
        self.free: queue.Queue[bytearray | None] = queue.Queue()
        for _ in range(DEPTH):
            self.free.put(bytearray(BUFFER))
        self.current: bytearray | None = None
        self.at = self.end = 0
        self.done = self.stopping = False
        self.thread = threading.Thread(target=self._produce, args=(source,), name="merkle-layer", daemon=True)
        self.thread.start()

    def _produce(self, source: Callable[[], AbstractContextManager[IO[bytes]]]) -> None:
        try:
            with source() as src:
                while not self.stopping and (buffer := self.free.get()) is not None:
                    view = memoryview(buffer)
                    filled = 0
                    while filled < BUFFER and (got := src.readinto(view[filled:])):  # type: ignore[attr-defined]
                        filled += got
                    view.release()
                    self.full.put((buffer, filled))
                    if filled == 0:
                        return
        except BaseException as e:  # handed to the reader, raised there
            self.full.put(e)

    def readable(self) -> bool:
        return True

    def readinto(self, out: Any) -> int:
        while self.at == self.end:
            if self.done:
                return 0
            if self.current is not None:
                self.free.put(self.current)
                self.current = None
            item = self.full.get()
            if isinstance(item, BaseException):
                self.done = True
                raise item
            self.current, self.end = item
            self.at = 0
            self.done = self.end == 0
        n = min(len(out), self.end - self.at)
        assert self.current is not None
        out[:n] = self.current[self.at : self.at + n]
        self.at += n
        return n

    def close(self) -> None:
        self.stopping = True
        self.free.put(None)  # wakes a producer waiting for a buffer
        self.thread.join()
        super().close()


class _Unzstd(io.RawIOBase):
    """A zstd decompressor's reader whose errors are OSError, as gzip's are
    (a damaged layer is one outcome, never a traceback)."""

    def __init__(self, inner: Any, errors: tuple[type[BaseException], ...]) -> None:
        self.inner, self.errors = inner, errors

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            data = self.inner.read(len(buffer))
        except self.errors as e:
            raise OSError(f"not a zstd stream: {e}") from e
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self.inner.close()
        super().close()


def unzstd(fileobj: IO[bytes]) -> IO[bytes]:
    """The decompressed bytes of a zstd stream of one or more frames (as Go's
    decoder reads a layer; skippable frames skipped): Python 3.14's
    compression.zstd, else the `zstandard` package (the `image` extra)."""
    import importlib

    try:
        zstd = importlib.import_module("compression.zstd")
    except ImportError:
        pass
    else:
        return io.BufferedReader(_Unzstd(zstd.ZstdFile(fileobj, mode="rb"), (zstd.ZstdError, EOFError)), BUFFER)
    try:
        zstandard = importlib.import_module("zstandard")
    except ImportError as e:
        from merkle.errors import UnsupportedError

        raise UnsupportedError(
            "a zstd-compressed layer needs the zstandard package: pip install 'merkle-ml[image]'"
        ) from e
    reader = zstandard.ZstdDecompressor().stream_reader(fileobj, read_across_frames=True, closefd=False)
    return io.BufferedReader(_Unzstd(reader, (zstandard.ZstdError,)), BUFFER)
