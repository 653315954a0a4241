"""Strict JSON for hostile input: size cap, no duplicate keys, no NaN or
Infinity, no floats.  The standard library accepts all of these silently."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from merkle.errors import FormatError


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise FormatError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise FormatError(f"non-standard number {name}")


def _no_float(text: str) -> Any:
    raise FormatError(f"unexpected non-integer number {text}")


def _bounded_int(text: str) -> int:
    # Every integer we accept fits in 64 bits; a 5,000-digit one is an attack
    # (and past 4,300 digits int() itself refuses).
    if len(text.lstrip("-")) > 20:
        raise FormatError(f"integer with {len(text)} digits is out of range")
    return int(text)


def loads(data: bytes, what: str, max_bytes: int) -> Any:
    """Parse `data` strictly; errors name `what` (a file name or URL)."""
    if len(data) > max_bytes:
        raise FormatError(f"larger than the {max_bytes}-byte limit", what)
    try:
        text = data.decode("utf-8")
        return json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_constant=_no_constant,
            parse_float=_no_float,
            parse_int=_bounded_int,
        )
    except FormatError as e:
        raise FormatError(e.message, what) from e
    except UnicodeDecodeError as e:
        raise FormatError(f"not UTF-8 ({e.reason} at byte {e.start})", what) from e
    except json.JSONDecodeError as e:
        raise FormatError(f"invalid JSON: {e.msg} at line {e.lineno} column {e.colno}", what) from e
    except RecursionError as e:
        raise FormatError("JSON nested too deeply", what) from e


def dumps(value: Any) -> str:
    """Deterministic compact JSON (key order as given, UTF-8 kept)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def exact_keys(obj: dict[str, Any], keys: Sequence[str], where: str) -> None:
    """FormatError naming the first key `obj` has beyond `keys`, or lacks."""
    unknown = sorted(set(obj) - set(keys))
    if unknown:
        raise FormatError(f"{where}: unknown key {unknown[0]!r}")
    missing = [k for k in keys if k not in obj]
    if missing:
        raise FormatError(f"{where}: missing key {missing[0]!r}")
