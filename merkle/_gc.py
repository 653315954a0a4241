"""The cyclic garbage collector, paused while millions of objects are made.

A build, a verify or a manifest load of a million-file tree makes millions
of small objects that live until the end (entries, digests, paths) and hold
no reference cycles.  The collector's full passes walk all of them again and
again: at a million files they cost a fifth of a build and made its time per
file grow with the file count.  `paused()` turns the collector off for such a
step and back on after it (the cycles made meanwhile are collected then), so
time per file stays flat.  Nested and concurrent pauses count: the collector
comes back on when the last one ends, and only if it was on before the first.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0
_was_enabled = False


@contextmanager
def paused() -> Iterator[None]:
    global _depth, _was_enabled
    with _lock:
        if _depth == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _was_enabled:
                gc.enable()
