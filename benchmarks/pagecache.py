"""Make a file cold: its pages out of the page cache, and proof that they are.

posix_fadvise(DONTNEED) drops a file's clean pages that no process maps;
mincore(2) over a fresh shared mapping of the file then counts the pages
still resident (Linux answers for file pages when the caller owns the file
or may write it).  Where fadvise leaves pages behind, root may drop every
clean page with /proc/sys/vm/drop_caches; a container usually may not.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import os
from pathlib import Path

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
_MAP_FAILED = ctypes.c_void_p(-1).value
DROP_CACHES = Path("/proc/sys/vm/drop_caches")


def resident(path: Path) -> int:
    """How many of the file's pages are in the page cache (mincore)."""
    size = path.stat().st_size
    if size == 0:
        return 0
    pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = _libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if addr is None or addr == _MAP_FAILED:
            raise OSError(ctypes.get_errno(), f"mmap {path}")
        try:
            vec = ctypes.create_string_buffer(pages)
            if _libc.mincore(addr, size, vec) != 0:
                raise OSError(ctypes.get_errno(), f"mincore {path}")
            return sum(b & 1 for b in vec.raw)
        finally:
            _libc.munmap(addr, size)
    finally:
        os.close(fd)


def evict(path: Path) -> str | None:
    """Drop the file's pages; None once mincore sees none resident, else why not."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)  # dirty pages are not dropped
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    left = resident(path)
    if left and os.access(DROP_CACHES, os.W_OK):
        try:
            DROP_CACHES.write_text("1\n")
        except OSError:
            pass
        left = resident(path)
    if left:
        total = (path.stat().st_size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
        return (
            f"{left} of {total} pages of {path} still in the page cache after posix_fadvise(DONTNEED)"
            f" ({DROP_CACHES} not writable here)"
        )
    return None
