"""Canonical relative paths: the only path shape a manifest may hold.

Rules (docs/format.md, P1-P6): '/'-separated, relative, non-empty parts, no
'.' or '..' part, no backslash, no NUL or other control character, valid
Unicode in NFC, at most 4096 UTF-8 bytes.  Sorting is by code point, which for
valid Unicode is the same as UTF-8 byte order.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from .errors import PathError

MAX_PATH_BYTES = 4096
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def path_problem(path: str) -> str | None:
    """Why `path` is not canonical, or None when it is."""
    if not path:
        return "empty path"
    try:
        encoded = path.encode("utf-8")
    except UnicodeEncodeError:
        return "not valid UTF-8"
    if len(encoded) > MAX_PATH_BYTES:
        return f"longer than {MAX_PATH_BYTES} bytes"
    if _CONTROL.search(path):
        return "contains a control character"
    if "\\" in path:
        return "contains a backslash"
    if path.startswith("/"):
        return "absolute path"
    parts = path.split("/")
    if any(p == "" for p in parts):
        return "empty path component"
    if any(p in (".", "..") for p in parts):
        return "'.' or '..' component"
    if unicodedata.normalize("NFC", path) != path:
        return "not in Unicode NFC form"
    return None


def check_path(path: str) -> str:
    """Return `path` if canonical; raise PathError naming the problem."""
    problem = path_problem(path)
    if problem:
        raise PathError(problem, repr(path))
    return path


def case_collision(paths: Iterable[str]) -> tuple[str, str] | None:
    """Two paths that name one file on a case-insensitive file system."""
    seen: dict[str, str] = {}
    for p in paths:
        key = p.casefold()
        if key in seen:
            return seen[key], p
        seen[key] = p
    return None
