"""Edge cases of building and verifying real directories: empty files and
trees, chunk boundaries, names, ordering, and exclusion rules.

Expected roots are computed here from the definitions (hashlib / the blake3
package directly, RFC 6962 MTH written out), never with merkle's own tree code.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import blake3
import pytest

import merkle
from merkle import Manifest, Status

H = {
    "sha256": lambda b: hashlib.sha256(b).digest(),
    "blake3": lambda b: blake3.blake3(b).digest(),
}
ALGS = sorted(H)
CHUNK = 1024


def spec_mth(items: list[bytes], h) -> bytes:
    """RFC 6962 section 2.1 MTH over data entries."""
    n = len(items)
    if n == 0:
        return h(b"")
    if n == 1:
        return h(b"\x00" + items[0])
    k = 1
    while k * 2 < n:
        k *= 2
    return h(b"\x01" + spec_mth(items[:k], h) + spec_mth(items[k:], h))


def spec_file_root(data: bytes, h, chunk: int = CHUNK) -> bytes:
    return spec_mth([data[i : i + chunk] for i in range(0, len(data), chunk)], h)


def spec_dataset_root(files: dict[str, bytes], h, chunk: int = CHUNK) -> bytes:
    """The dataset tree: one leaf per file in code-point order of its path,
    leaf data = u32 len(path) | path | u64 size | u64 chunk_size | file root
    (big-endian; merkle/format/manifest.py FileEntry.leaf_data)."""
    leaves = []
    for path in sorted(files):  # Python str order is code-point order
        p = path.encode("utf-8")
        data = files[path]
        leaves.append(
            len(p).to_bytes(4, "big")
            + p
            + len(data).to_bytes(8, "big")
            + chunk.to_bytes(8, "big")
            + spec_file_root(data, h, chunk)
        )
    return spec_mth(leaves, h)


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for rel, data in files.items():
        p = root.joinpath(*rel.split("/"))
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return root


def statuses(report: merkle.Report) -> dict[str, Status]:
    return {o.path: o.status for o in report.outcomes}


def data_of(size: int, seed: int = 0) -> bytes:
    return bytes((i * 31 + seed + i // 251) % 256 for i in range(size))


# -- empty file, empty directory ----------------------------------------------------


@pytest.mark.parametrize("alg", ALGS)
def test_empty_file(tmp_path: Path, alg: str):
    """F2: an empty file has no chunks and root H("")."""
    empty_hash = hashlib.sha256(b"").digest() if alg == "sha256" else blake3.blake3(b"").digest()
    d = write_tree(tmp_path / "t", {"empty.bin": b""})
    assert merkle.hash_file(d / "empty.bin", alg, CHUNK) == empty_hash
    with open(d / "empty.bin", "rb") as f:
        assert merkle.hash_stream(f, alg, CHUNK) == empty_hash
    m = merkle.build(d, algorithm=alg, chunk_size=CHUNK)
    (entry,) = m.files
    assert (entry.path, entry.size, entry.root) == ("empty.bin", 0, empty_hash)
    # The dataset root is a one-leaf tree over the entry, not H("").
    assert m.root == spec_dataset_root({"empty.bin": b""}, H[alg]) != empty_hash
    assert m.layers is not None and dict(m.layers.leaves) == {}
    report = merkle.verify(d, m)
    assert bool(report) and report.exit_code == 0 and statuses(report) == {"empty.bin": Status.OK}
    # One byte more is a mismatch (the size is committed).
    (d / "empty.bin").write_bytes(b"\x00")
    report = merkle.verify(d, m)
    assert not report and statuses(report) == {"empty.bin": Status.MISMATCH}


@pytest.mark.parametrize("alg", ALGS)
def test_empty_directory(tmp_path: Path, alg: str):
    """D2: with no files the dataset root is H("")."""
    empty_hash = hashlib.sha256(b"").digest() if alg == "sha256" else blake3.blake3(b"").digest()
    d = tmp_path / "empty"
    d.mkdir()
    m = merkle.build(d, algorithm=alg, chunk_size=CHUNK)
    assert m.files == ()
    assert m.root == empty_hash
    assert Manifest.from_json(m.to_json()) == m
    m.save(tmp_path / "m.json")
    assert Manifest.load(tmp_path / "m.json") == m
    report = merkle.verify(d, tmp_path / "m.json")
    assert bool(report) and report.exit_code == 0 and report.outcomes == ()
    (d / "new").write_bytes(b"")
    report = merkle.verify(d, m)
    assert not report and report.exit_code == 1 and statuses(report) == {"new": Status.EXTRA}


def test_empty_subdirectories_are_not_listed(tmp_path: Path):
    """W1: an empty directory contributes nothing."""
    files = {"a/x.bin": b"x", "b.bin": b"b"}
    plain = merkle.build(write_tree(tmp_path / "plain", files), chunk_size=CHUNK)
    d = write_tree(tmp_path / "with", files)
    (d / "a" / "empty").mkdir()
    (d / "z" / "y").mkdir(parents=True)
    m = merkle.build(d, chunk_size=CHUNK)
    assert m.root == plain.root == spec_dataset_root(files, H["blake3"])
    assert [f.path for f in m.files] == ["a/x.bin", "b.bin"]
    assert bool(merkle.verify(d, plain))


# -- chunk boundaries --------------------------------------------------------------


@pytest.mark.parametrize("alg", ALGS)
@pytest.mark.parametrize("chunk", [CHUNK, 4 * CHUNK])
@pytest.mark.parametrize("delta,leaves", [(-1, 1), (0, 1), (1, 2)])
def test_chunk_boundaries(tmp_path: Path, alg: str, chunk: int, delta: int, leaves: int):
    """F1, F2, S1, S2: chunk_size - 1, chunk_size and chunk_size + 1 bytes."""
    h = H[alg]
    data = data_of(chunk + delta, seed=delta)
    d = write_tree(tmp_path / "t", {"f.bin": data})
    m = merkle.build(d, algorithm=alg, chunk_size=chunk)
    (entry,) = m.files
    assert entry.size == chunk + delta

    # The root, written out by hand from the definition.
    if leaves == 1:
        want = h(b"\x00" + data)
    else:
        want = h(b"\x01" + h(b"\x00" + data[:chunk]) + h(b"\x00" + data[chunk:]))
    assert want == spec_file_root(data, h, chunk)
    assert entry.root == want
    assert merkle.hash_file(d / "f.bin", alg, chunk) == want
    assert m.root == spec_dataset_root({"f.bin": data}, h, chunk)

    # The sidecar: a 48-byte header, then the leaves of multi-chunk files only.
    m.save(tmp_path / "m.json")
    sidecar = (tmp_path / "m.json.leaves").read_bytes()
    assert sidecar[:8] == b"MRKLLEAF"
    assert sidecar[16:48] == m.root
    assert sidecar[10] == chunk.bit_length() - 1  # log2(chunk_size)
    body = sidecar[48:]
    if leaves == 1:
        assert body == b""
        assert dict(m.layers.leaves) == {}
    else:
        assert len(body) == 2 * 32
        assert body == h(b"\x00" + data[:chunk]) + h(b"\x00" + data[chunk:])
        assert m.layers.leaves["f.bin"] == body
    loaded = Manifest.load(tmp_path / "m.json")
    assert loaded.layers is not None
    want_leaves = [want] if leaves == 1 else [body[:32], body[32:]]
    assert loaded.layers.leaf_hashes(entry, chunk) == want_leaves
    assert bool(merkle.verify(d, tmp_path / "m.json"))


def test_mixed_sizes_sidecar_order_and_count(tmp_path: Path):
    """Several files around the boundary: the sidecar holds, in path order, the
    leaves of exactly those with two or more chunks."""
    files = {
        "a_minus1": data_of(CHUNK - 1, 1),
        "b_exact": data_of(CHUNK, 2),
        "c_plus1": data_of(CHUNK + 1, 3),
        "d_empty": b"",
        "e_three": data_of(3 * CHUNK, 4),
        "f_twice_plus": data_of(2 * CHUNK + 1, 5),
    }
    h = H["sha256"]
    d = write_tree(tmp_path / "t", files)
    m = merkle.build(d, algorithm="sha256", chunk_size=CHUNK)
    assert m.root == spec_dataset_root(files, h)
    for name, data in files.items():
        assert m.entry(name).root == spec_file_root(data, h)
    m.save(tmp_path / "m.json")
    body = (tmp_path / "m.json.leaves").read_bytes()[48:]
    want = b""
    for name in ("c_plus1", "e_three", "f_twice_plus"):
        data = files[name]
        want += b"".join(h(b"\x00" + data[i : i + CHUNK]) for i in range(0, len(data), CHUNK))
    assert len(body) == (2 + 3 + 3) * 32
    assert body == want


# -- names --------------------------------------------------------------------------


NON_ASCII = {
    "\u00e9t\u00e9.txt": b"summer",  # "été", precomposed (NFC)
    "\u65e5\u672c\u8a9e/\u30c7\u30fc\u30bf.bin": b"data",  # CJK dir and file name
    "\u00fcber/na\u00efve/\u0161\u0165.bin": data_of(2 * CHUNK + 3),
    "emoji-\U0001f600.bin": b"grin",  # outside the BMP
}


@pytest.mark.parametrize("alg", ALGS)
def test_non_ascii_names_nfc(tmp_path: Path, alg: str):
    """P1, P4, P5, D1: NFC names, UTF-8 in the leaf, code-point order."""
    for name in NON_ASCII:
        assert unicodedata.is_normalized("NFC", name)
    d = write_tree(tmp_path / "t", NON_ASCII)
    m = merkle.build(d, algorithm=alg, chunk_size=CHUNK)
    assert [f.path for f in m.files] == sorted(NON_ASCII)
    assert m.root == spec_dataset_root(NON_ASCII, H[alg])
    text = m.to_json()
    assert Manifest.from_json(text) == m
    m.save(tmp_path / "m.json")
    loaded = Manifest.load(tmp_path / "m.json")
    assert loaded == m and [f.path for f in loaded.files] == sorted(NON_ASCII)
    report = merkle.verify(d, tmp_path / "m.json")
    assert bool(report) and statuses(report) == {p: Status.OK for p in NON_ASCII}

    target = "\u00fcber/na\u00efve/\u0161\u0165.bin"
    (d / "\u00fcber" / "na\u00efve" / "\u0161\u0165.bin").write_bytes(data_of(2 * CHUNK + 3, 9))
    report = merkle.verify(d, m)
    assert not report and {o.path: o.status for o in report.failures} == {target: Status.MISMATCH}


def test_nfd_name_is_refused(tmp_path: Path):
    """P4: a name on disk that is not NFC is reported, not renamed."""
    nfc, nfd = "\u00e9.txt", "e\u0301.txt"
    assert unicodedata.normalize("NFC", nfd) == nfc and nfd != nfc
    d = write_tree(tmp_path / "t", {nfd: b"x"})
    with pytest.raises(merkle.SourceError):
        merkle.build(d, chunk_size=CHUNK)
    # Verifying: the NFC entry is missing, the NFD name is an error (it names
    # no canonical path), not matched and not an extra.
    good = write_tree(tmp_path / "g", {nfc: b"x"})
    m = merkle.build(good, chunk_size=CHUNK)
    report = merkle.verify(d, m)
    assert not report and report.exit_code == 1
    st = statuses(report)
    assert st[nfc] is Status.MISSING
    assert [s for p, s in st.items() if p != nfc] == [Status.ERROR]


def test_deep_subdirectories(tmp_path: Path):
    """P1, W1: files forty directories down."""
    deep = "/".join(f"level{i}" for i in range(40)) + "/leaf.bin"
    files = {deep: data_of(CHUNK * 3 + 1), "top.bin": b"top", "level0/side.bin": b"side"}
    d = write_tree(tmp_path / "t", files)
    m = merkle.build(d, algorithm="sha256", chunk_size=CHUNK)
    assert [f.path for f in m.files] == sorted(files)
    assert m.entry(deep).root == spec_file_root(files[deep], H["sha256"])
    assert m.root == spec_dataset_root(files, H["sha256"])
    assert bool(merkle.verify(d, m))
    d.joinpath(*deep.split("/")).write_bytes(files[deep][:-1])
    report = merkle.verify(d, m)
    assert not report and {o.path: o.status for o in report.failures} == {deep: Status.MISMATCH}
    d.joinpath(*deep.split("/")).unlink()
    report = merkle.verify(d, m)
    assert {o.path: o.status for o in report.failures} == {deep: Status.MISSING}


# -- ordering -------------------------------------------------------------------------


def test_sort_order_is_code_point_order(tmp_path: Path):
    """P5, D1, D2."""
    # Written out by hand: '-' (2D) < '.' (2E) < '/' (2F) < '0' (30); upper
    # case (41-5A) before lower case (61-7A); U+00E9 < U+FF21 < U+1F600 (in
    # UTF-16 order the last two would be the other way round).
    expected = ["B", "Zed", "a-b", "a.b", "a/b", "a0", "b-lower", "\u00e9", "\uff21", "\U0001f600"]
    files = {p: p.encode("utf-8") * 3 for p in reversed(expected)}
    d = write_tree(tmp_path / "t", files)
    for alg in ALGS:
        m = merkle.build(d, algorithm=alg, chunk_size=CHUNK)
        assert [f.path for f in m.files] == expected
        assert [m.index(p) for p in expected] == list(range(len(expected)))
        assert m.root == spec_dataset_root(files, H[alg])
        report = merkle.verify(d, m)
        assert [o.path for o in report.outcomes] == expected
        # Entries in any order make the same manifest.
        assert Manifest.create(list(reversed(m.files)), alg, CHUNK) == m
    # The JSON lists them in that order too.
    text = merkle.build(d, chunk_size=CHUNK).to_json().decode("utf-8")
    assert [f["path"] for f in json.loads(text)["files"]] == expected


def test_case_variants_are_refused(tmp_path: Path):
    """P6."""
    # Two names equal up to case would clash on a case-insensitive file system.
    d = write_tree(tmp_path / "t", {"Readme": b"1", "README": b"2"})
    if len(os.listdir(d)) != 2:
        pytest.skip("case-insensitive file system")
    with pytest.raises(merkle.SourceError):
        merkle.build(d, chunk_size=CHUNK)


# -- exclusions -------------------------------------------------------------------------


GIT_TREE = {
    "model.bin": b"weights",
    ".git/config": b"[core]\n",
    ".git/objects/ab/cdef": b"blob",
    "sub/.git/HEAD": b"ref: refs/heads/main\n",
    ".gitignore": b"*.tmp\n",
    ".github/workflows/ci.yml": b"on: push\n",
}


def test_git_excluded_by_default(tmp_path: Path):
    """W2: the default list is [".git"], a name pattern at any depth."""
    d = write_tree(tmp_path / "t", GIT_TREE)
    m = merkle.build(d, chunk_size=CHUNK)
    assert [f.path for f in m.files] == [".github/workflows/ci.yml", ".gitignore", "model.bin"]
    assert ".git" in m.exclude
    kept = {p: GIT_TREE[p] for p in (".github/workflows/ci.yml", ".gitignore", "model.bin")}
    assert m.root == spec_dataset_root(kept, H["blake3"])
    # Changes inside .git do not matter to the default manifest.
    (d / ".git" / "config").write_bytes(b"changed")
    (d / ".git" / "new").write_bytes(b"new")
    m.save(tmp_path / "m.json")
    assert bool(merkle.verify(d, tmp_path / "m.json"))


def test_git_included_without_default_excludes(tmp_path: Path):
    """W2: default_excludes=False hashes .git like anything else."""
    d = write_tree(tmp_path / "t", GIT_TREE)
    m = merkle.build(d, chunk_size=CHUNK, default_excludes=False)
    assert [f.path for f in m.files] == sorted(GIT_TREE)
    assert ".git" not in m.exclude
    assert m.root == spec_dataset_root(GIT_TREE, H["blake3"])
    m.save(tmp_path / "m.json")
    assert bool(merkle.verify(d, tmp_path / "m.json"))
    (d / ".git" / "config").write_bytes(b"changed")
    report = merkle.verify(d, tmp_path / "m.json")
    assert not report and {o.path: o.status for o in report.failures} == {".git/config": Status.MISMATCH}


EXCLUDE_TREE = {
    "keep.txt": b"k",
    "a.tmp": b"t",  # *.tmp
    "sub/deep/b.tmp": b"t",  # *.tmp at any depth
    "cache/x.bin": b"c",  # directory named cache
    "sub/cache/y.bin": b"c",  # ... at any depth
    "sub/cache.txt": b"c",  # not the name "cache"
    "top.log": b"l",  # /top.log, anchored
    "d/top.log": b"l",  # ... not below the root
    "sub/x.bin": b"s",  # sub/*.bin, anchored
    "other/sub/x.bin": b"s",  # ... not below the root
    "a.dat": b"a",  # [ab].dat
    "b.dat": b"b",
    "c.dat": b"c",
    "models/big/part1": b"p",  # models/big (a directory by path)
    "big/part2": b"p",  # ... not a name pattern
}
PATTERNS = ["*.tmp", "cache", "/top.log", "sub/*.bin", "[ab].dat", "models/big"]
KEPT = [
    "big/part2",
    "c.dat",
    "d/top.log",
    "keep.txt",
    "other/sub/x.bin",
    "sub/cache.txt",
]


def test_exclude_glob_semantics(tmp_path: Path):
    """W2: name patterns at any depth; patterns with '/' anchored at the root."""
    d = write_tree(tmp_path / "t", EXCLUDE_TREE)
    m = merkle.build(d, chunk_size=CHUNK, exclude=PATTERNS)
    assert [f.path for f in m.files] == KEPT
    assert m.root == spec_dataset_root({p: EXCLUDE_TREE[p] for p in KEPT}, H["blake3"])
    for pattern in PATTERNS:
        assert pattern in m.exclude
    assert ".git" in m.exclude

    # The manifest carries its patterns: verify ignores new excluded files.
    m.save(tmp_path / "m.json")
    write_tree(d, {"new.tmp": b"n", "cache/new": b"n", "sub/z.bin": b"n", "models/big/part3": b"n"})
    report = merkle.verify(d, tmp_path / "m.json")
    assert bool(report), report.summary()
    assert [o.path for o in report.outcomes] == KEPT
    # ... but not files the patterns do not cover.
    write_tree(d, {"other/cache.bin": b"n", "x/top.log": b"n"})
    report = merkle.verify(d, tmp_path / "m.json")
    assert {o.path: o.status for o in report.failures} == {
        "other/cache.bin": Status.EXTRA,
        "x/top.log": Status.EXTRA,
    }
    # verify's own exclude adds to the manifest's.
    report = merkle.verify(d, tmp_path / "m.json", exclude=["cache.bin", "/x"])
    assert bool(report), report.summary()
    # verify's exclusions only hide extras: a listed file is still checked.
    report = merkle.verify(d, tmp_path / "m.json", exclude=["cache.bin", "/x", "other"])
    assert bool(report), report.summary()
    assert "other/sub/x.bin" in [o.path for o in report.outcomes if o.status is Status.OK]
    (d / "other" / "sub" / "x.bin").write_bytes(b"changed")
    report = merkle.verify(d, tmp_path / "m.json", exclude=["cache.bin", "/x", "other"])
    assert {o.path: o.status for o in report.failures} == {"other/sub/x.bin": Status.MISMATCH}


def test_exclude_slash_pattern_star_crosses_slash(tmp_path: Path):
    """W2: for a pattern with '/' the whole relative path is matched and
    '*' crosses '/'."""
    d = write_tree(tmp_path / "t", {"sub/x.bin": b"1", "sub/deep/y.bin": b"2", "sub/keep.txt": b"3"})
    m = merkle.build(d, chunk_size=CHUNK, exclude=["sub/*.bin"])
    assert [f.path for f in m.files] == ["sub/keep.txt"]


def test_exclude_trailing_slash_is_anchored_path(tmp_path: Path):
    """W2: 'data/' has a '/', so it is a path pattern, anchored at the root."""
    d = write_tree(tmp_path / "t", {"data/a": b"1", "x/data/b": b"2", "keep": b"3"})
    m = merkle.build(d, chunk_size=CHUNK, exclude=["data/"])
    assert [f.path for f in m.files] == ["keep", "x/data/b"]


def test_exclude_via_cli(tmp_path: Path):
    """The --exclude option reaches the same rules (real child process)."""
    d = write_tree(tmp_path / "t", EXCLUDE_TREE)
    out = tmp_path / "cli.json"
    args = [sys.executable, "-m", "merkle", "build", str(d), "-o", str(out), "--chunk-size", "1K", "-q"]
    for p in PATTERNS:
        args += ["--exclude", p]
    result = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    m = Manifest.load(out)
    assert [f.path for f in m.files] == KEPT
    assert m.root == spec_dataset_root({p: EXCLUDE_TREE[p] for p in KEPT}, H["blake3"])


# -- engine work units ------------------------------------------------


def test_file_spanning_several_work_units(tmp_path: Path):
    """At 1 KiB chunks a file over 8 MiB is hashed as several work units
    (merkle/hashing/engine.py UNIT_BYTES); the root is still the MTH of all chunks."""
    size = (8 << 20) + 3 * CHUNK + 5
    data = os.urandom(size)
    d = write_tree(tmp_path / "t", {"big.bin": data, "small.bin": b"s"})
    h = H["sha256"]
    want = spec_file_root(data, h)
    assert merkle.hash_file(d / "big.bin", "sha256", CHUNK) == want
    m = merkle.build(d, algorithm="sha256", chunk_size=CHUNK, jobs=4)
    assert m.entry("big.bin").root == want
    assert m.root == spec_dataset_root({"big.bin": data, "small.bin": b"s"}, h)
    assert len(m.layers.leaves["big.bin"]) == 32 * -(-size // CHUNK)
    # A flipped byte in the second unit is found, and in the right chunk.
    pos = (8 << 20) + CHUNK + 7
    bad = bytearray(data)
    bad[pos] ^= 0x80
    (d / "big.bin").write_bytes(bad)
    report = merkle.verify(d, m, jobs=4)
    (failure,) = report.failures
    assert failure.path == "big.bin" and failure.status is Status.MISMATCH
    assert f"1 of {-(-size // CHUNK)} chunks differ" in failure.detail
    assert (pos // CHUNK) * CHUNK in {int(x) for x in re.findall(r"\d+", failure.detail)}


def test_exclude_name_pattern_never_spans_directories(tmp_path: Path):
    """W2: a pattern without '/' is tested against each name alone, so its '*'
    cannot reach across a '/' ("a*b" matches the name "axb", not "a/b")."""
    d = write_tree(tmp_path / "t", {"a/b": b"1", "axb": b"2", "c/axb": b"3", "a/b-side": b"4"})
    m = merkle.build(d, chunk_size=CHUNK, exclude=["a*b"])
    assert [f.path for f in m.files] == ["a/b", "a/b-side"]
