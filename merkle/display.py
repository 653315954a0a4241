"""Showing untrusted text to a person: names, paths, messages.

A name that reaches a terminal or a log must look like itself and like
nothing else: no control character may start a new line or move the cursor
(a forged `= ...` line), and no invisible character may make two different
names print alike.  `shown` leaves visible text alone and writes anything
else as ASCII Python escapes (`\\x1b`, `\\u200b`, `\\\\`), the form every
error message and report line uses (docs/cli.md).

`invisible_characters()` is the set that format rule P7 (docs/format.md) refuses in
paths: general categories Cf (format), Zl and Zp (line and paragraph
separators), and the Default_Ignorable_Code_Point property (Unicode's
DerivedCoreProperties: fillers, variation selectors, tags).  It is a fixed
table, so the rule does not move with the Unicode version of the Python
that reads a manifest; tests/format/test_paths.py compares it with current Unicode
data.
"""

from __future__ import annotations

import functools
import re
from typing import Final

_INVISIBLE_RANGES: Final = (
    (0x00AD, 0x00AD),  # soft hyphen
    (0x034F, 0x034F),  # combining grapheme joiner
    (0x0600, 0x0605),  # Arabic number signs (prepended concatenation marks)
    (0x061C, 0x061C),  # Arabic letter mark
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x115F, 0x1160),  # Hangul fillers
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),  # Mongolian variation selectors and vowel separator
    (0x200B, 0x200F),  # zero width space, (non-)joiner, left-to-right and right-to-left marks
    (0x2028, 0x2029),  # line and paragraph separators
    (0x202A, 0x202E),  # bidirectional embeddings and overrides
    (0x2060, 0x206F),  # word joiner, invisible operators, isolates, deprecated format characters
    (0x3164, 0x3164),  # Hangul filler
    (0xFE00, 0xFE0F),  # variation selectors
    (0xFEFF, 0xFEFF),  # zero width no-break space (byte order mark)
    (0xFFA0, 0xFFA0),  # halfwidth Hangul filler
    (0xFFF0, 0xFFFB),  # reserved default-ignorables, interlinear annotation
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),  # Egyptian hieroglyph format controls
    (0x1BCA0, 0x1BCA3),  # shorthand format controls
    (0x1D173, 0x1D17A),  # musical symbol format controls
    (0xE0000, 0xE0FFF),  # tags, variation selectors 17-256, reserved
)


@functools.cache
def invisible_characters() -> re.Pattern[str]:
    """The characters of _INVISIBLE_RANGES, as a compiled class: compiled on
    first use, since that takes about half a millisecond, which every
    command would pay and a `merkle hash` that prints plain names never
    needs."""
    return re.compile("[" + "".join(f"\\U{a:08x}-\\U{b:08x}" for a, b in _INVISIBLE_RANGES) + "]")


def invisible(text: str) -> str | None:
    """The first character of `text` that rule P7 refuses, or None."""
    m = invisible_characters().search(text)
    return m.group() if m else None


def shown(text: str) -> str:
    """`text` as it may be printed on one line: unchanged when every
    character is visible (str.isprintable, and nothing invisible), else
    ASCII with Python escapes, so that it cannot pass for another name or
    line."""
    if text.isprintable() and not invisible_characters().search(text):
        return text
    return ascii(text)[1:-1]


def codepoint(char: str) -> str:
    """'U+200B' for a character, to name it in a message."""
    return f"U+{ord(char):04X}"
