"""Path rules P1-P4: the fast regex path must agree with the rule-by-rule one."""

from hypothesis import given, settings
from hypothesis import strategies as st

from merkle.paths import MAX_PATH_BYTES, path_problem, path_problem_by_rules

ALPHABET = st.sampled_from(list("ab./\\ ~-_") + ["\x00", "\x1f", "\x7f", "\n", "é", "e\u0301", "\udcff", "Ω"])


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
