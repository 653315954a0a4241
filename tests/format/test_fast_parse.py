"""The manifest's file list is read by its own parser (format.manifest.files_at:
one regular expression per canonical entry, the strict parser for anything
else), in manifest files and in signed statements (issue 17).  Two parsers
of one signed document are an attack surface: whatever bytes an attacker
writes, the fast reading must be exactly the strict one's, the same
manifest or the same refusal.  Each case here is parsed both ways and the
outcomes compared; the strict way is `strictjson.loads` without fields, the
parser every other document goes through."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from merkle.errors import BundleError, FormatError, MerkleError
from merkle.format import strictjson
from merkle.format.manifest import MANIFEST_FIELDS, FileEntry, Manifest, ParsedFiles
from merkle.signing.envelope import Statement


def strict(data: bytes) -> object:
    try:
        return Manifest.from_doc(strictjson.loads(data, "m", 1 << 30))
    except MerkleError as e:
        return type(e), e.message


def fast(data: bytes) -> object:
    try:
        return Manifest.from_json(data, "m")
    except MerkleError as e:
        return type(e), e.message


def same(data: bytes) -> object:
    a, b = strict(data), fast(data)
    assert a == b, data[:300]
    if isinstance(a, Manifest):
        assert isinstance(b, Manifest) and a.files == b.files and a.root == b.root and a.to_json() == b.to_json()
    return a


def manifest(paths: list[str], sizes: list[int]) -> Manifest:
    return Manifest.create(
        [FileEntry(p, s, bytes([i % 256]) * 32) for i, (p, s) in enumerate(zip(paths, sizes, strict=True))]
    )


NAMES = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)) | st.sampled_from('"\\\t\x7f/é'),
    min_size=1,
    max_size=12,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(NAMES, st.integers(0, (1 << 63) - 1)), min_size=0, max_size=8))
def test_any_manifest_reads_the_same(entries):
    """Names with quotes, backslashes, controls, non-ASCII, slashes (most are not canonical paths: both refuse)."""
    paths = sorted({p for p, _ in entries})
    sizes = [dict(entries)[p] for p in paths]
    doc = {
        "format": "merkle-manifest-v1",
        "algorithm": "blake3",
        "chunk_size": 1 << 20,
        "exclude": [".git"],
        "root": "00" * 32,
        "files": [{"path": p, "size": s, "root": "ab" * 32} for p, s in zip(paths, sizes, strict=True)],
    }
    same(json.dumps(doc).encode())
    same(json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode())
    try:
        m = manifest(paths, sizes)
    except MerkleError:
        return
    assert same(m.to_json()) == m  # canonical bytes: the fast path reads them all


def test_the_canonical_form_is_read_by_the_fast_path():
    m = manifest(["a", "b/c", "b/d e", "ü/x"], [0, 7, 1 << 40, 3])
    doc = strictjson.loads(m.to_json(), "m", 1 << 30, MANIFEST_FIELDS)
    assert isinstance(doc["files"], ParsedFiles) and all(type(f) is FileEntry for f in doc["files"])
    assert Manifest.from_json(m.to_json()) == m


@pytest.fixture
def good() -> bytes:
    return manifest(["a.bin", "dir/b.bin", "dir/c.bin"], [1, 2, 3]).to_json()


def _edits(good: bytes) -> dict[str, bytes]:
    text = good.decode()
    first = re.search(r'\{"path":"a.bin"[^}]*\}', text)
    assert first is not None
    entry = first.group(0)
    return {
        "pretty": json.dumps(json.loads(text), indent=2).encode(),
        "spaces around separators": text.replace('","', '" , "').replace('":', '" :').encode(),
        "tab before a comma": text.replace("},\n", "}\t,\n", 1).encode(),
        "keys reordered": text.replace(entry, json.dumps(dict(reversed(json.loads(entry).items())))).encode(),
        "duplicate key in an entry": text.replace(entry, entry[:-1] + ',"size":1}').encode(),
        "duplicate files key": text.replace('"files":[', '"files":[],"files":[').encode(),
        "duplicate key, then bad JSON": text.replace(entry, entry[:-1] + ',"size":1,}').encode(),
        "duplicate top-level key, then bad JSON": text.replace('"format"', '"algorithm":1,"format"').encode()[:-5],
        "files twice, second empty": text.replace("]}\n", '],"files":[]}\n').encode(),
        "upper-case hex root": text.replace(entry, entry.replace("000000", "ABCDEF", 1)).encode(),
        "leading zero size": text.replace('"size":1,', '"size":01,', 1).encode(),
        "negative size": text.replace('"size":1,', '"size":-1,', 1).encode(),
        "float size": text.replace('"size":1,', '"size":1.0,', 1).encode(),
        "exponent size": text.replace('"size":1,', '"size":1e0,', 1).encode(),
        "20-digit size": text.replace('"size":1,', '"size":12345678901234567890,', 1).encode(),
        "19 digits over the limit": text.replace('"size":1,', '"size":9999999999999999999,', 1).encode(),
        "escaped path": text.replace('"a.bin"', '"a\\u002ebin"').encode(),
        "escaped quote in path": text.replace('"a.bin"', '"a\\"bin"').encode(),
        "raw control in path": text.replace('"a.bin"', '"a\x01bin"').encode(),
        "trailing comma": text.replace("\n]}", ",\n]}").encode(),
        "missing comma": text.replace("},\n", "}\n", 1).encode(),
        "unclosed list": text.replace("\n]}", "\n}").encode(),
        "extra data": good + b"{}",
        "truncated": good[: len(good) // 2],
        "entry not an object": text.replace(entry, "[1,2,3]").encode(),
        "files not a list": re.sub(r'"files":\[.*\]', '"files":{}', text, flags=re.S).encode(),
        "nested files key in a path": text.replace('"a.bin"', '"a\\",\\"files\\":[\\"x"').encode(),
        "empty list": re.sub(r'"files":\[.*\]', '"files":[]', text, flags=re.S).encode(),
        "BOM": b"\xef\xbb\xbf" + good,
        "whitespace only after": good + b" \r\n\t",
    }


def test_every_edit_reads_the_same(good):
    outcomes = {name: same(data) for name, data in _edits(good).items()}
    assert isinstance(outcomes["pretty"], Manifest) and isinstance(outcomes["keys reordered"], Manifest)
    assert isinstance(outcomes["escaped path"], Manifest)
    for refused in ("duplicate key in an entry", "duplicate files key", "files twice, second empty", "20-digit size"):
        assert outcomes[refused][0] is FormatError, refused  # type: ignore[index]


def test_statement_payloads_read_the_same(good):
    """The same through a statement's predicate.manifest, where the file list is read by files_at too."""

    def statement(manifest_text: str) -> bytes:
        return (
            '{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"x","digest":{"blake3":"00"}}],'
            f'"predicateType":"p","predicate":{{"manifest":{manifest_text},"version":1}}}}'
        ).encode()

    for name, data in _edits(good).items():
        try:
            text = data.decode().strip()
        except UnicodeDecodeError:
            continue
        payload = statement(text)
        try:
            fast_pred = Statement.from_payload(payload).predicate
            fast_result = same_manifest(fast_pred["manifest"])
        except (BundleError, FormatError) as e:
            fast_result = ("error", e.message)
        try:
            strict_doc = strictjson.loads(payload, "statement", 1 << 30)
            strict_result = same_manifest(strict_doc["predicate"]["manifest"])
        except FormatError as e:
            strict_result = ("error", e.message)
        assert fast_result == strict_result, name


def same_manifest(doc: object) -> object:
    try:
        return Manifest.from_doc(doc)
    except MerkleError as e:
        return type(e), e.message


def test_statements_write_the_file_list_as_the_generic_writer_would():
    """A statement's predicate.manifest.files is written by _entry_json and spliced in (strictjson.Raw): the payload
    must be byte for byte what json.dumps of the plain dicts writes, hub identities and odd names included."""
    from merkle.format.hub import GIT_BLOB, SHA256
    from merkle.format.origin import Origin
    from merkle.signing.statements import statement

    odd = ["a", 'q"uote', "é/ü", "z/ü2", "sp ace", "日本/語"]
    files = [FileEntry(p, i * 7, bytes([i]) * 32) for i, p in enumerate(sorted(odd))]
    plain = Manifest.create(files)
    hub = [
        FileEntry(f.path, f.size, f.root, (SHA256, "ab" * 32) if i % 2 else (GIT_BLOB, "cd" * 20))
        for i, f in enumerate(plain.files)
    ]
    origin = Origin("0123456789abcdef0123456789abcdef01234567", "org/name")
    for m in (plain, Manifest.create(hub, origin=origin)):
        generic = json.dumps(m.to_dict(), ensure_ascii=False, separators=(",", ":"))
        assert strictjson.dumps(m.to_dict(raw_files=True)) == generic
        payload = statement(m, "name", version=2).to_payload()
        assert json.loads(payload)["predicate"]["manifest"] == json.loads(generic)
        assert Manifest.from_doc(Statement.from_payload(payload).predicate["manifest"]).files == m.files


def test_a_string_spelling_the_placeholder_falls_back_to_the_plain_writer():
    raw = strictjson.Raw('[{"path":"a"}]', lambda: [{"path": "a"}])
    doc = {"x": "\0merkle-raw-0\0", "files": raw}
    assert strictjson.dumps(doc) == json.dumps(
        {"x": "\0merkle-raw-0\0", "files": [{"path": "a"}]}, ensure_ascii=False, separators=(",", ":")
    )


def _files_at_both_ways(text: str, monkeypatch: pytest.MonkeyPatch) -> tuple[object, object]:
    """format.manifest.files_at over `text` with the C reader of canonical entries and without it."""
    from merkle.format import manifest as module

    def run() -> object:
        try:
            files, end = module.files_at(text, text.index("["))
            return [(f.path, f.size, f.root, f.hub) if type(f) is FileEntry else f for f in files], end
        except (FormatError, json.JSONDecodeError) as e:
            return type(e), str(e)

    native = run()
    monkeypatch.setattr(module, "native", None)
    pure = run()
    monkeypatch.undo()
    return native, pure


def test_the_c_reader_of_entries_is_the_regular_expressions_twin(good, monkeypatch):
    """ext/_merkle.c canonical_entries reads what _CANONICAL_ENTRY matches, entry for entry, and stops where it stops;
    on wider characters (not Latin-1) it declines and the expression reads every entry."""
    from merkle._native import native

    if native is None:
        pytest.skip("the C extension is not built (MERKLE_PURE or no compiler): the pure run is the only one")
    texts = [data.decode("utf-8", "replace") for data in _edits(good).values()]
    texts += [
        '{"files":[{"path":"caf\u00e9","size":1,"root":"'
        + "ab" * 32
        + '"},\n{"path":"x","size":0,"root":"'
        + "cd" * 32
        + '"}]}',  # Latin-1: read in C
        '{"files":[{"path":"\u65e5","size":1,"root":"' + "ab" * 32 + '"}]}',  # wider: declined
        '{"files":[{"path":"a","size":18446744073709551615,"root":"' + "ab" * 32 + '"}]}',  # 20 digits
        '{"files":[{"path":"a","size":9999999999999999999,"root":"' + "ab" * 32 + '"}]}',  # 19 nines
        '{"files":[{"path":"a","size":1,"root":"'
        + "ab" * 32
        + '"},{"path":"b","size":2,"root":"'
        + "ab" * 31
        + 'a"}]}',  # short root after a good entry
        '{"files":[{"path":"a","size":1,"root":"'
        + "ab" * 32
        + '"} , {"path":"b","size":2,"root":"'
        + "ab" * 32
        + '"}]}',  # spaced separator
        '{"files":[{"path":"a\x7f","size":1,"root":"' + "ab" * 32 + '"},\n]}',  # DEL, trailing comma
        '{"files":[{"path":"a","size":1,"root":"' + "ab" * 32 + '"',  # truncated inside
    ]
    for text in texts:
        if "[" not in text:
            continue
        native_result, pure_result = _files_at_both_ways(text, monkeypatch)
        assert native_result == pure_result, text[:200]
    m = manifest([f"d/{i:06d}" for i in range(2000)], list(range(2000)))
    assert (
        _files_at_both_ways(m.to_json().decode(), monkeypatch)[0]
        == _files_at_both_ways(m.to_json().decode(), monkeypatch)[1]
    )
