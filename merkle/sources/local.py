"""Local files: safe opening (never blocks on a FIFO), capped reads of small
documents, and atomic writes (a reader never sees half a file)."""

from __future__ import annotations

import errno
import os
import stat
import tempfile

from ..errors import FormatError, SourceError

_OPEN_FLAGS = (
    os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
)


def kind_of(mode: int) -> str:
    """A reader's name for a file type, for error messages."""
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISREG, "a regular file"),
    ):
        if test(mode):
            return name
    return "an unknown kind of file"


def open_regular(path: str, follow_symlinks: bool = True) -> tuple[int, os.stat_result]:
    """Open a regular file for reading without ever blocking (O_NONBLOCK keeps
    a FIFO from hanging the open); SourceError if it is anything else."""
    flags = _OPEN_FLAGS if follow_symlinks else _OPEN_FLAGS | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        raise SourceError(_os_reason(e), path) from e
    try:
        st = os.fstat(fd)
    except OSError as e:
        os.close(fd)
        raise SourceError(_os_reason(e), path) from e
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise SourceError(f"{kind_of(st.st_mode)}, not a regular file", path)
    return fd, st


def _os_reason(e: OSError) -> str:
    if e.errno == errno.ELOOP:  # O_NOFOLLOW met a link
        return "is a symbolic link"
    return e.strerror or str(e)


def read_capped(path: str, max_bytes: int, follow_symlinks: bool = True) -> bytes:
    """The whole of a small regular file; FormatError if over `max_bytes`."""
    fd, st = open_regular(path, follow_symlinks)
    try:
        if st.st_size > max_bytes:
            raise FormatError(f"{st.st_size} bytes, larger than the {max_bytes}-byte limit", path)
        chunks = []
        remaining = max_bytes + 1
        while remaining > 0:
            data = os.read(fd, min(remaining, 1 << 20))
            if not data:
                break
            chunks.append(data)
            remaining -= len(data)
        data = b"".join(chunks)
        if len(data) > max_bytes:
            raise FormatError(f"larger than the {max_bytes}-byte limit", path)
        return data
    except OSError as e:
        raise SourceError(_os_reason(e), path) from e
    finally:
        os.close(fd)


def check_output(path: str) -> None:
    """Refuse to replace anything but a regular file: renaming over a device,
    FIFO, symlink or directory would destroy it rather than write to it."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as e:
        raise SourceError(f"cannot write: {e.strerror or e}", path) from e
    if not stat.S_ISREG(st.st_mode):
        raise SourceError(f"cannot write: {kind_of(st.st_mode)} is in the way (only regular files are replaced)", path)


def write_atomic(path: str, data: bytes, mode: int = 0o666) -> None:
    """Write `data` to `path` through a temporary file and a rename
    (`mode` is masked by the umask, as open() would)."""
    check_output(path)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    except OSError as e:
        raise SourceError(f"cannot write: {e.strerror or e}", path) from e
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, mode & ~umask)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
    except OSError as e:
        raise SourceError(f"cannot write: {e.strerror or e}", path) from e
    finally:
        if fd >= 0:
            os.close(fd)
        if os.path.exists(tmp):
            os.unlink(tmp)
