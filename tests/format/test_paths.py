"""Path rules P1-P7: the fast regex path must agree with the rule-by-rule one;
P7's table of invisible characters against Unicode's own data."""

import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from merkle.display import invisible_characters, shown
from merkle.format.paths import MAX_PATH_BYTES, case_collision, path_problem, path_problem_by_rules

ALPHABET = st.sampled_from(
    list("ab./\\ ~-_") + ["\x00", "\x1f", "\x7f", "\n", "é", "e\u0301", "\udcff", "Ω", "\u200b", "\ufe0f", "\u00a0"]
)


@settings(max_examples=3000, deadline=None)
@given(st.lists(ALPHABET, max_size=12).map("".join))
def test_fast_path_agrees_with_the_rules(path):
    assert (path_problem(path) is None) == (path_problem_by_rules(path) is None)


def test_named_cases():
    ok = ["a", "a/b", ".hidden", "a/...", "name with spaces", "é/ü", "1_Pooling/config.json"]
    bad = ["", "/a", "a/", "a//b", ".", "..", "a/./b", "a/../b", "a\\b", "a\x00b", "a\nb", "e\u0301", "\udcff"]
    assert [p for p in ok if path_problem(p)] == []
    assert [p for p in bad if not path_problem(p)] == []
    assert path_problem("a" * MAX_PATH_BYTES) is None
    assert path_problem("a" * (MAX_PATH_BYTES + 1)) == f"longer than {MAX_PATH_BYTES} bytes"
    assert path_problem("é" * (MAX_PATH_BYTES // 2 + 1)) == f"longer than {MAX_PATH_BYTES} bytes"


def test_invisible_characters_are_refused_p7():
    """P7: names that would print alike.  Visible non-ASCII stays allowed."""
    for c in (
        "\u200b",
        "\u200c",
        "\u200d",
        "\u200e",
        "\u00ad",
        "\u2060",
        "\ufeff",
        "\ufe0f",
        "\u3164",
        "\U000e0001",
        "\U000e0100",
        "\u2028",
        "\u2029",
        "\u0600",
        "\u180e",
    ):
        assert "invisible or formatting character" in (path_problem(f"a{c}b") or ""), ascii(c)
    for ok in ("a\u00a0b", "日本語\u3000名前", "❤.png", "Ωmega", "naïve"):
        assert path_problem(ok) is None, ascii(ok)


def test_invisible_table_is_unicode_format_separators_and_default_ignorables():
    """The fixed table equals Cf + Zl + Zp + Default_Ignorable_Code_Point in
    the Unicode data of the `regex` package (newer than this Python's)."""
    regex = pytest.importorskip("regex")
    want = regex.compile(r"[\p{Cf}\p{Zl}\p{Zp}\p{Default_Ignorable_Code_Point}]")
    everything = "".join(map(chr, range(sys.maxunicode + 1)))
    assert [hex(m.start()) for m in invisible_characters().finditer(everything)] == [
        hex(m.start()) for m in want.finditer(everything)
    ]


def test_shown_escapes_what_could_forge_or_hide():
    assert shown("config.json") == "config.json" and shown("vocabulário.txt") == "vocabulário.txt"
    assert shown("a\n= b") == "a\\n= b"
    assert shown("\x1b[2Ka") == "\\x1b[2Ka"
    assert shown("a\u200bb") == "a\\u200bb" and shown("a\ufe0fb") == "a\\ufe0fb"
    assert shown("\ud800") == "\\ud800"
    assert shown("a\\b\r") == "a\\\\b\\r"  # a backslash is doubled when anything is escaped
    assert all(shown(chr(c)).isprintable() and shown(chr(c)).count("\n") == 0 for c in range(0x3000))


@pytest.mark.parametrize(
    ("paths", "clash"),
    [
        (["a/B", "a/b"], ("a/B", "a/b")),
        (["README.md", "readme.md", "x"], ("README.md", "readme.md")),
        (["stra\u00dfe", "strasse"], ("stra\u00dfe", "strasse")),  # casefold, not lower: sharp s is "ss"
        (["\u212a", "k"], ("\u212a", "k")),  # KELVIN SIGN folds to k
        (["a/b", "a/c", "B/a"], None),
        ([f"d{i:03d}/f{i:05d}.bin" for i in range(2000)], None),  # ASCII, no capital: the fast path
        (["\u00e9", "\u00c9t\u00e9", "x"], None),
    ],
)
def test_case_collision(paths, clash):
    assert case_collision(paths) == clash
    assert case_collision(iter(paths)) == clash
