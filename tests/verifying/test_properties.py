"""Property tests: build a random small tree, mutate it once, and check that
`merkle.verify` names exactly the mutated path(s) with the right status.

Real files in a TemporaryDirectory per example (no function-scoped fixtures
with hypothesis); chunk_size = 1024, the minimum, so that files of a few KB
have several chunks.
"""

from __future__ import annotations

import os
import random
import re
import tempfile
import unicodedata
from dataclasses import replace
from pathlib import Path

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import merkle
from merkle import FileEntry, Manifest, Status

CHUNK = 1024
MAX_SIZE = 5000

# Lower case only (two names differing in case would be refused as a
# case-insensitive clash), plus a precomposed (NFC) non-ASCII letter.
ALPHABET = "abcxyz019-_\u00e9"
assert unicodedata.is_normalized("NFC", ALPHABET)

_component = st.text(ALPHABET, min_size=1, max_size=6)
# Directory components start with "d", file names with "f": a file path can
# never be the directory of another file.
_dir = _component.map(lambda s: "d" + s)
_name = _component.map(lambda s: "f" + s)
_path = st.tuples(st.lists(_dir, max_size=3), _name).map(lambda t: "/".join([*t[0], t[1]]))


@st.composite
def trees(draw, min_files: int = 1, big: bool = False) -> dict[str, bytes]:
    """1-6 files of 0..5000 bytes; with `big`, the first has two or more
    whole chunks of random bytes."""
    paths = draw(st.lists(_path, min_size=min_files, max_size=6, unique=True))
    out = {}
    for n, p in enumerate(paths):
        if big and n == 0:
            size = draw(st.integers(2 * CHUNK, MAX_SIZE))
            out[p] = random.Random(draw(st.integers(0, 2**32))).randbytes(size)
            continue
        kind = draw(st.sampled_from(["random", "random", "random", "constant", "empty"]))
        if kind == "empty":
            out[p] = b""
        elif kind == "constant":
            out[p] = bytes([draw(st.integers(0, 255))]) * draw(st.integers(1, MAX_SIZE))
        else:
            size = draw(st.integers(0, MAX_SIZE))
            out[p] = random.Random(draw(st.integers(0, 2**32))).randbytes(size)
    return out


def _write(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        p = root.joinpath(*rel.split("/"))
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


def _file(root: Path, rel: str) -> Path:
    return root.joinpath(*rel.split("/"))


class Case:
    """A built tree in a temporary directory: tree/ and a saved manifest beside it."""

    def __init__(self, files: dict[str, bytes], algorithm: str = "blake3") -> None:
        self._tmp = tempfile.TemporaryDirectory()
        base = Path(self._tmp.name)
        self.root = base / "tree"
        self.root.mkdir()
        _write(self.root, files)
        self.files = files
        self.manifest = merkle.build(self.root, algorithm=algorithm, chunk_size=CHUNK)
        self.manifest_path = base / "tree.merkle.json"
        self.manifest.save(self.manifest_path)

    def __enter__(self) -> Case:
        return self

    def __exit__(self, *exc: object) -> None:
        self._tmp.cleanup()

    def verify(self, from_file: bool) -> merkle.Report:
        return merkle.verify(self.root, self.manifest_path if from_file else self.manifest)


def _numbers(text: str) -> set[int]:
    return {int(x) for x in re.findall(r"\d+", text)}


def _failures(report: merkle.Report) -> dict[str, Status]:
    return {o.path: o.status for o in report.failures}


def _check_failed(report: merkle.Report, expected: dict[str, Status], case: Case) -> None:
    assert not bool(report)
    assert report.ok is False
    assert report.exit_code == 1
    assert _failures(report) == expected
    # Every other listed file is still reported OK, exactly once.
    statuses = {o.path: o.status for o in report.outcomes}
    assert len(statuses) == len(report.outcomes)
    for path in case.files:
        if path not in expected:
            assert statuses[path] is Status.OK, path


MODERATE = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@MODERATE
@given(files=trees(), algorithm=st.sampled_from(["blake3", "sha256"]), from_file=st.booleans())
def test_unchanged_tree_verifies(files, algorithm, from_file):
    with Case(files, algorithm) as case:
        assert [f.path for f in case.manifest.files] == sorted(files)
        assert {f.path: f.size for f in case.manifest.files} == {p: len(d) for p, d in files.items()}
        report = case.verify(from_file)
        assert bool(report) is True
        assert report.exit_code == 0
        assert {o.path: o.status for o in report.outcomes} == {p: Status.OK for p in files}
        assert report.root == case.manifest.root


@MODERATE
@given(files=trees(), data=st.data(), from_file=st.booleans())
def test_changed_byte(files, data, from_file):
    nonempty = sorted(p for p, d in files.items() if d)
    assume(nonempty)
    target = data.draw(st.sampled_from(nonempty))
    with Case(files) as case:
        content = bytearray(files[target])
        pos = data.draw(st.integers(0, len(content) - 1))
        content[pos] ^= data.draw(st.integers(1, 255))
        _file(case.root, target).write_bytes(content)
        report = case.verify(from_file)
        _check_failed(report, {target: Status.MISMATCH}, case)
        # The leaf sidecar lets the report name the bad chunk.
        (outcome,) = report.failures
        nchunks = -(-len(content) // CHUNK)
        assert f"1 of {nchunks} chunks differ" in outcome.detail
        assert (pos // CHUNK) * CHUNK in _numbers(outcome.detail)  # where the bad chunk starts


@MODERATE
@given(files=trees(), data=st.data(), from_file=st.booleans())
def test_truncation(files, data, from_file):
    nonempty = sorted(p for p, d in files.items() if d)
    assume(nonempty)
    target = data.draw(st.sampled_from(nonempty))
    cut = data.draw(st.integers(1, len(files[target])))
    with Case(files) as case:
        _file(case.root, target).write_bytes(files[target][:-cut])
        _check_failed(case.verify(from_file), {target: Status.MISMATCH}, case)


@MODERATE
@given(files=trees(), data=st.data(), from_file=st.booleans())
def test_extension(files, data, from_file):
    target = data.draw(st.sampled_from(sorted(files)))
    extra = data.draw(st.binary(min_size=1, max_size=2 * CHUNK))
    with Case(files) as case:
        with open(_file(case.root, target), "ab") as f:
            f.write(extra)
        _check_failed(case.verify(from_file), {target: Status.MISMATCH}, case)


@MODERATE
@given(files=trees(big=True), data=st.data(), from_file=st.booleans())
def test_swap_two_chunks(files, data, from_file):
    # Two whole chunks change places: same size, same multiset of leaves.
    candidates = sorted(p for p, d in files.items() if len(d) >= 2 * CHUNK)
    assume(candidates)
    target = data.draw(st.sampled_from(candidates))
    content = files[target]
    full = len(content) // CHUNK
    i, j = sorted(data.draw(st.lists(st.integers(0, full - 1), min_size=2, max_size=2, unique=True)))
    a, b = content[i * CHUNK : (i + 1) * CHUNK], content[j * CHUNK : (j + 1) * CHUNK]
    assume(a != b)
    swapped = content[: i * CHUNK] + b + content[(i + 1) * CHUNK : j * CHUNK] + a + content[(j + 1) * CHUNK :]
    assert len(swapped) == len(content) and swapped != content
    with Case(files) as case:
        _file(case.root, target).write_bytes(swapped)
        report = case.verify(from_file)
        _check_failed(report, {target: Status.MISMATCH}, case)
        (outcome,) = report.failures
        assert f"2 of {-(-len(content) // CHUNK)} chunks differ" in outcome.detail
        assert i * CHUNK in _numbers(outcome.detail)  # the first bad byte range


@MODERATE
@given(files=trees(), data=st.data(), from_file=st.booleans())
def test_rename(files, data, from_file):
    target = data.draw(st.sampled_from(sorted(files)))
    new_name = data.draw(_name)
    new = "/".join([*target.split("/")[:-1], new_name])
    assume(new not in files)
    with Case(files) as case:
        os.rename(_file(case.root, target), _file(case.root, new))
        _check_failed(case.verify(from_file), {target: Status.MISSING, new: Status.EXTRA}, case)


@MODERATE
@given(files=trees(min_files=2), data=st.data(), from_file=st.booleans())
def test_swap_contents_of_two_files(files, data, from_file):
    a, b = data.draw(st.lists(st.sampled_from(sorted(files)), min_size=2, max_size=2, unique=True))
    assume(files[a] != files[b])
    with Case(files) as case:
        _file(case.root, a).write_bytes(files[b])
        _file(case.root, b).write_bytes(files[a])
        _check_failed(case.verify(from_file), {a: Status.MISMATCH, b: Status.MISMATCH}, case)


@MODERATE
@given(files=trees(), new=_path, content=st.binary(max_size=3000), from_file=st.booleans())
def test_added_file(files, new, content, from_file):
    assume(new not in files)
    with Case(files) as case:
        p = _file(case.root, new)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content)
        _check_failed(case.verify(from_file), {new: Status.EXTRA}, case)
        # --allow-extra: the extra file is reported but is not a failure.
        lenient = merkle.verify(case.root, case.manifest, allow_extra=True)
        assert bool(lenient) is True and lenient.exit_code == 0
        assert {o.path: o.status for o in lenient.outcomes}[new] is Status.EXTRA


@MODERATE
@given(files=trees(), data=st.data(), from_file=st.booleans())
def test_removed_file(files, data, from_file):
    target = data.draw(st.sampled_from(sorted(files)))
    with Case(files) as case:
        _file(case.root, target).unlink()
        _check_failed(case.verify(from_file), {target: Status.MISSING}, case)


# -- manifest round trips ------------------------------------------------------------


@MODERATE
@given(files=trees(), algorithm=st.sampled_from(["blake3", "sha256"]))
def test_manifest_round_trips(files, algorithm):
    with Case(files, algorithm) as case:
        m = case.manifest
        again = Manifest.from_json(m.to_json())
        assert again == m
        assert again.to_json() == m.to_json()
        assert again.root == m.root and again.files == m.files and again.exclude == m.exclude

        loaded = Manifest.load(case.manifest_path)
        assert loaded == m
        assert loaded.layers is not None and m.layers is not None
        assert dict(loaded.layers.leaves) == dict(m.layers.leaves)
        # Layers cover exactly the files with two or more chunks ...
        multi = {p for p, d in files.items() if len(d) > CHUNK}
        assert set(m.layers.leaves) == multi
        # ... and hold their chunk leaves, recomputed here from the bytes.
        h = m.hasher
        for p in multi:
            d = files[p]
            want = b"".join(h.leaf(d[i : i + CHUNK]) for i in range(0, len(d), CHUNK))
            assert m.layers.leaves[p] == want
            assert loaded.layers.leaves[p] == want
            entry = loaded.entry(p)
            assert entry is not None
            assert loaded.layers.leaf_hashes(entry, CHUNK) == [want[i : i + 32] for i in range(0, len(want), 32)]
        # Loading without the sidecar gives the same manifest, without layers.
        bare = Manifest.load(case.manifest_path, layers=False)
        assert bare == m and bare.layers is None


# -- the dataset root commits to every entry's path, size and root --------------------

_digest = st.binary(min_size=32, max_size=32)
_entries = st.lists(st.tuples(_path, st.integers(0, 2**40), _digest), min_size=1, max_size=8, unique_by=lambda t: t[0])


@settings(max_examples=60, deadline=None)
@given(raw=_entries, data=st.data(), algorithm=st.sampled_from(["blake3", "sha256"]))
def test_dataset_root_changes_with_any_entry_field(raw, data, algorithm):
    entries = [FileEntry(p, s, r) for p, s, r in raw]
    base = Manifest.create(entries, algorithm, CHUNK)
    i = data.draw(st.integers(0, len(entries) - 1))
    e = entries[i]
    field = data.draw(st.sampled_from(["path", "size", "root"]))
    if field == "path":
        new_path = data.draw(_path)
        assume(new_path not in {x.path for x in entries})
        changed = replace(e, path=new_path)
    elif field == "size":
        new_size = data.draw(st.integers(0, 2**40))
        assume(new_size != e.size)
        changed = replace(e, size=new_size)
    else:
        bit = data.draw(st.integers(0, 255))
        root = bytearray(e.root)
        root[bit // 8] ^= 1 << (bit % 8)
        changed = replace(e, root=bytes(root))
    other = Manifest.create(entries[:i] + [changed] + entries[i + 1 :], algorithm, CHUNK)
    assert other.root != base.root
    # Order of the input does not matter; the entries are what is committed.
    assert Manifest.create(list(reversed(entries)), algorithm, CHUNK).root == base.root
    # The chunk size is part of every leaf too.
    assert Manifest.create(entries, algorithm, 2 * CHUNK).root != base.root
