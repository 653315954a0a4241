"""Local file names that name no canonical path are errors, as object keys
are (tests/source/test_s3_keys.py): a second 'café.txt' spelt in NFD beside the
signed NFC one, or a name with a backslash, is never an extra that
--allow-extra lets pass without a word."""

from __future__ import annotations

import unicodedata

import pytest
from support.cli import statuses


@pytest.mark.parametrize(
    "name", [unicodedata.normalize("NFD", "café.txt"), "caf\\e.txt", "cafe\u202e.txt"], ids=["nfd", "backslash", "bidi"]
)
def test_a_non_canonical_local_name_is_an_error_even_with_allow_extra(cli, tmp_path, name):
    tree = tmp_path / "t"
    tree.mkdir()
    (tree / "café.txt").write_bytes(b"signed")
    m = tmp_path / "m.json"
    assert cli("build", str(tree), "-o", str(m)).returncode == 0
    (tree / name).write_bytes(b"nobody signed this")
    for extra in ([], ["--allow-extra"]):
        r = cli("verify", str(tree), str(m), *extra)
        assert r.returncode == 2, (extra, r.stdout, r.stderr)
        got = statuses(r.stdout)
        assert got.pop("café.txt") == "="
        assert list(got.values()) == ["!"], r.stdout
        assert "unsupported file name" in r.stdout and "1 error" in r.stderr
