"""Canonical relative paths: the only path shape a manifest may hold.

Rules (docs/format.md, P1-P7): '/'-separated, relative, non-empty parts, no
'.' or '..' part, no backslash, no NUL or other control character, valid
Unicode in NFC, no invisible or formatting character, at most 4096 UTF-8
bytes.  Sorting is by code point, which for
valid Unicode is the same as UTF-8 byte order.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from merkle.display import codepoint, invisible, shown
from merkle.errors import PathError

MAX_PATH_BYTES = 4096
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Explicit embeddings, overrides and isolates: they can make a listing show
# a name other than the one on disk.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def name_problem(name: str) -> str | None:
    """Why one path component is not canonical, or None when it is."""
    if not name:
        return "empty path component"
    if name in (".", ".."):
        return "'.' or '..' component"
    if not name.isascii():
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            return "not valid UTF-8"
        if not unicodedata.is_normalized("NFC", name):
            return "not in Unicode NFC form"
        if any(unicodedata.category(c) == "Cc" or c in _BIDI_CONTROLS for c in name):
            return "contains a control or bidirectional formatting character"
        hidden = invisible(name)
        if hidden:  # P7: two names must never print alike
            return f"contains an invisible or formatting character ({codepoint(hidden)})"
    if _CONTROL.search(name):
        return "contains a control character"
    if "\\" in name:
        return "contains a backslash"
    return None


# Printable ASCII but '/' and '\\', in components that are not '.' or '..':
# the common case, checked by one regex before the rule-by-rule path.
_PLAIN_PART = r"(?!\.\.?(?:/|$))[\x20-\x2e\x30-\x5b\x5d-\x7e]+"
_PLAIN_PATH = re.compile(f"{_PLAIN_PART}(?:/{_PLAIN_PART})*")
_ASCII_UPPER = re.compile("[A-Z]")


def path_problem(path: str) -> str | None:
    """Why `path` is not canonical, or None when it is."""
    if _PLAIN_PATH.fullmatch(path) and len(path) <= MAX_PATH_BYTES:
        return None
    return path_problem_by_rules(path)


def path_problem_by_rules(path: str) -> str | None:
    """`path_problem` without the fast path, rule by rule (tests compare the two)."""
    if not path:
        return "empty path"
    if path.startswith("/"):
        return "absolute path"
    for part in path.split("/"):
        problem = name_problem(part)
        if problem:
            return problem
    if len(path.encode("utf-8")) > MAX_PATH_BYTES:
        return f"longer than {MAX_PATH_BYTES} bytes"
    return None


def check_path(path: str) -> str:
    """Return `path` if canonical; raise PathError naming the problem."""
    problem = path_problem(path)
    if problem:
        raise PathError(problem, shown(path))
    return path


def case_collision(paths: Iterable[str]) -> tuple[str, str] | None:
    """Two paths that name one file on a case-insensitive file system."""
    paths = list(paths)
    joined = "\n".join(paths)
    if joined.isascii() and _ASCII_UPPER.search(joined) is None:
        return None  # ASCII without a capital: casefold changes nothing, no two can clash (a million in 0.05 s)
    if len(set(map(str.casefold, paths))) == len(paths):  # without a dict entry per path
        return None
    seen: dict[str, str] = {}
    for p in paths:
        key = p.casefold()
        if key in seen:
            return seen[key], p
        seen[key] = p
    return None
