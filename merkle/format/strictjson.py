"""Strict JSON for hostile input: size cap, no duplicate keys, no NaN or
Infinity, no floats.  The standard library accepts all of these silently."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
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


_scanstring: Callable[[str, int, bool], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]
_DECODER = json.JSONDecoder(
    object_pairs_hook=_no_duplicates, parse_constant=_no_constant, parse_float=_no_float, parse_int=_bounded_int
)
_WHITESPACE = re.compile(r"[ \t\n\r]*")  # JSON's four

Parser = Callable[[str, int], tuple[Any, int]]
"""Parses the JSON value at text[pos:] (pos at its first character):
(the value, the position after it); json.JSONDecodeError or FormatError."""


def value_at(text: str, pos: int) -> tuple[Any, int]:
    """Any value, strictly (the rules of `loads`)."""
    value, end = _DECODER.raw_decode(text, pos)
    return value, end


def object_at(text: str, pos: int, fields: Mapping[str, Parser]) -> tuple[Any, int]:
    """An object whose members named in `fields` are parsed by those parsers
    and every other value by `value_at`; the same rules as `loads` (JSON
    whitespace, no duplicate key).  Anything but an object is parsed by
    `value_at`.  This lets a large member (a manifest's file list) be read
    by a parser made for it while the document stays strict JSON."""
    if not text.startswith("{", pos):
        return value_at(text, pos)
    out: dict[str, Any] = {}
    duplicate: str | None = None  # refused once the object is read, as the strict parser's hook does
    pos = after_space(text, pos + 1)
    if text.startswith("}", pos):
        return out, pos + 1
    while True:
        if not text.startswith('"', pos):
            raise json.JSONDecodeError("Expecting property name enclosed in double quotes", text, pos)
        key, pos = _scanstring(text, pos + 1, True)
        pos = after_space(text, pos)
        if not text.startswith(":", pos):
            raise json.JSONDecodeError("Expecting ':' delimiter", text, pos)
        if key in out and duplicate is None:
            duplicate = key
        out[key], pos = fields.get(key, value_at)(text, after_space(text, pos + 1))
        pos = after_space(text, pos)
        if text.startswith("}", pos):
            if duplicate is not None:
                raise FormatError(f"duplicate key {duplicate!r}")
            return out, pos + 1
        if not text.startswith(",", pos):
            raise json.JSONDecodeError("Expecting ',' delimiter", text, pos)
        pos = after_space(text, pos + 1)


def after_space(text: str, pos: int) -> int:
    """The position of the first non-whitespace character at or after `pos`."""
    match = _WHITESPACE.match(text, pos)
    return match.end() if match is not None else pos


def loads(data: bytes, what: str, max_bytes: int, fields: Mapping[str, Parser] | None = None) -> Any:
    """Parse `data` strictly; errors name `what` (a file name or URL).  With
    `fields`, a top-level object's members of those names are parsed by
    their parsers (`object_at`)."""
    if len(data) > max_bytes:
        raise FormatError(f"larger than the {max_bytes}-byte limit", what)
    try:
        text = data.decode("utf-8")
        if fields is None:
            return json.loads(
                text,
                object_pairs_hook=_no_duplicates,
                parse_constant=_no_constant,
                parse_float=_no_float,
                parse_int=_bounded_int,
            )
        if text.startswith("\ufeff"):  # as json.loads says it
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        value, end = object_at(text, after_space(text, 0), fields)
        end = after_space(text, end)
        if end != len(text):
            raise json.JSONDecodeError("Extra data", text, end)
        return value
    except FormatError as e:
        raise FormatError(e.message, what) from e
    except UnicodeDecodeError as e:
        raise FormatError(f"not UTF-8 ({e.reason} at byte {e.start})", what) from e
    except json.JSONDecodeError as e:
        raise FormatError(f"invalid JSON: {e.msg} at line {e.lineno} column {e.colno}", what) from e
    except RecursionError as e:
        raise FormatError("JSON nested too deeply", what) from e


class Raw:
    """A value already written as compact JSON, put into `dumps`' output as
    is: a manifest's million entries are written by a formatter made for
    them, not as a million dicts.  `text` must be exactly what `dumps` would
    write for `value` (what the value means where it is parsed)."""

    __slots__ = ("text", "value")

    def __init__(self, text: str, value: Callable[[], Any]) -> None:
        self.text = text
        self.value = value  # the same, as data: for the rare document where the text cannot be spliced in


def dumps(value: Any) -> str:
    """Deterministic compact JSON (key order as given, UTF-8 kept); `Raw`
    values spliced in where they stand."""
    raws: list[Raw] = []

    def placeholder(obj: Any) -> Any:
        if isinstance(obj, Raw):
            raws.append(obj)
            return f"\0merkle-raw-{len(raws) - 1}\0"  # a string: NUL written \u0000, as nothing of ours is
        raise TypeError(f"{type(obj).__name__} is not JSON")

    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=placeholder)
    marks = [json.dumps(f"\0merkle-raw-{i}\0") for i in range(len(raws))]
    if any(text.count(mark) != 1 for mark in marks):  # some string of the document spells a placeholder
        return json.dumps(_expand(value), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for mark, raw in zip(marks, raws, strict=True):
        before, _, after = text.partition(mark)
        text = before + raw.text + after
    return text


def _expand(value: Any) -> Any:
    if isinstance(value, Raw):
        return value.value()
    if isinstance(value, dict):
        return {k: _expand(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_expand(v) for v in value]
    return value


def exact_keys(obj: dict[str, Any], keys: Sequence[str], where: str) -> None:
    """FormatError naming the first key `obj` has beyond `keys`, or lacks."""
    unknown = sorted(set(obj) - set(keys))
    if unknown:
        raise FormatError(f"{where}: unknown key {unknown[0]!r}")
    missing = [k for k in keys if k not in obj]
    if missing:
        raise FormatError(f"{where}: missing key {missing[0]!r}")
