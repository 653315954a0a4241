"""The C extension (ext/_merkle.c) against its pure twins and the public
vectors: identical bytes on the same inputs, or the native path is wrong.

The extension is built by the test install (`pip install -e .` compiles it
when a compiler and OpenSSL's headers are there; .ci/run installs both), so
these tests never skip in CI; `test_pure_path_is_forced_by_the_environment`
and .ci/run's pure-path pass cover the other side.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import blake3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.vectors import VECTORS, readme_leaves_and_roots

from merkle._native import native
from merkle.format import manifest
from merkle.format.manifest import FileEntry
from merkle.format.paths import case_collision
from merkle.tree import rfc6962
from merkle.tree.hasher import tree_hasher

B3, SHA = tree_hasher("blake3"), tree_hasher("sha256")

if os.environ.get("MERKLE_PURE", "") in ("", "0"):
    assert native is not None, "the C extension is not built: install a C compiler and OpenSSL headers"
else:
    pytestmark = pytest.mark.skip(reason="MERKLE_PURE set: the pure-path run checks the pure twins only")


def _b3_cases() -> list[dict]:
    return json.loads((VECTORS / "blake3.json").read_text())["cases"]


@pytest.mark.parametrize("case", _b3_cases(), ids=lambda c: f"len{c['input_len']}")
def test_native_blake3_matches_the_published_vectors(case):
    data = bytes(i % 251 for i in range(case["input_len"]))
    assert native.hash(1, data) == bytes.fromhex(case["hash"])[:32]


@given(st.binary(max_size=5000), st.integers(-1, 255))
@settings(max_examples=300, deadline=None)
def test_native_hash_with_a_prefix_matches_the_packages(data, prefix):
    lead = b"" if prefix < 0 else bytes([prefix])
    assert native.hash(1, data, prefix) == blake3.blake3(lead + data).digest()
    assert native.hash(2, data, prefix) == hashlib.sha256(lead + data).digest()


SIZES = [
    0,
    1,
    1023,
    1024,
    1025,
    8 * 1024,
    9 * 1024 + 1,
    16 * 1024,
    17 * 1024,
    17 * 1024 + 1,
    65_536,
    100_001,
    512 * 1024 - 1,
    512 * 1024,
    512 * 1024 + 1,
    1 << 20,
    (1 << 20) + 3,
    1536 * 1024 + 1,
    2047 * 1024,
    4096 * 1024,
    4096 * 1024 + 1,
    5 << 20,
]


@pytest.mark.parametrize("size", SIZES)
def test_native_blake3_chunk_boundaries(size):
    """Sizes around the 8- and 16-chunk batches and the driver's 512-chunk windows, with and without a prefix."""
    data = os.urandom(size)
    assert native.hash(1, data, 0) == blake3.blake3(b"\0" + data).digest()
    assert native.hash(1, data) == blake3.blake3(data).digest()


@pytest.mark.parametrize(("switch", "tier"), [("MERKLE_NO_AVX512", "avx2"), ("MERKLE_NO_AVX2", "portable")])
def test_native_blake3_narrower_tiers(switch, tier):
    """The AVX2 and portable tiers, forced on a machine that would pick a wider one: the published
    vectors, then sizes around every batch and window boundary, against the package."""
    code = (
        "import json, os, sys, blake3; from merkle._native import native; "
        f"cases = json.loads(open({str(VECTORS / 'blake3.json')!r}).read())['cases']; "
        "assert all(native.hash(1, bytes(i % 251 for i in range(c['input_len']))) "
        "== bytes.fromhex(c['hash'])[:32] for c in cases); "
        f"sizes = {SIZES!r}; "
        "assert all(native.hash(1, d, 0) == blake3.blake3(b'\\0' + d).digest() "
        "for d in map(os.urandom, sizes)); print(native.BLAKE3_TIER)"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("MERKLE_NO_AVX512", "MERKLE_NO_AVX2")}
    r = subprocess.run([sys.executable, "-c", code], env={**env, switch: "1"}, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    got = r.stdout.strip()
    if tier == "avx2" and "avx2" not in cpu():
        assert got == "portable"
    else:
        assert got == tier


def test_native_tier_follows_the_cpu():
    """Unmasked, the tier is the widest the CPU has (the twin runs in CI mask the wider ones)."""
    masked = [k for k in ("MERKLE_NO_AVX512", "MERKLE_NO_AVX2") if os.environ.get(k)]
    flags = cpu().split()
    if masked:
        want = "portable" if "MERKLE_NO_AVX2" in masked or "avx2" not in flags else "avx2"
    else:
        want = "avx512" if "avx512f" in flags else "avx2" if "avx2" in flags else "portable"
    assert native.BLAKE3_TIER == want


def cpu() -> str:
    from merkle.cli.doctor import cpu_features

    return " ".join(cpu_features())


@pytest.mark.parametrize("n", range(0, 70))
@pytest.mark.parametrize("hasher", [B3, SHA], ids=["blake3", "sha256"])
def test_native_tree_root_equals_pure(hasher, n):
    leaves = b"".join(hasher.leaf(i.to_bytes(4, "big")) for i in range(n))
    assert native.root_of_leaves(hasher.code, leaves) == rfc6962.root_of_bytes_pure(hasher, leaves)
    listed = [leaves[i : i + 32] for i in range(0, len(leaves), 32)]
    assert rfc6962.root_of_bytes_pure(hasher, leaves) == rfc6962.root(hasher, listed)


def test_native_tree_root_rfc6962_published_roots():
    """The roots the vectors' README publishes for the first n reference leaves (n = 1..8)."""
    leaves, roots = readme_leaves_and_roots()
    assert len(roots) == 8
    for n, want in roots.items():
        hashed = b"".join(hashlib.sha256(b"\0" + d).digest() for d in leaves[:n])
        assert native.root_of_leaves(2, hashed) == want


def test_native_tree_root_of_a_million_leaves_equals_pure():
    leaves = os.urandom(32 * 1_000_003)
    for hasher in (B3, SHA):
        assert rfc6962.root_of_bytes(hasher, leaves) == rfc6962.root_of_bytes_pure(hasher, leaves)


@given(
    st.lists(
        st.tuples(st.text(min_size=1, max_size=40), st.integers(0, 2**63 - 1), st.binary(min_size=32, max_size=32)),
        max_size=40,
    ),
    st.sampled_from([1 << 10, 1 << 20, 1 << 30]),
)
@settings(max_examples=200, deadline=None)
def test_native_dataset_root_equals_pure(items, chunk_size):
    files = [FileEntry(p, s, r) for p, s, r in items]  # shapes only: the roots are not validated here
    for hasher in (B3, SHA):
        assert native.dataset_root(hasher.code, chunk_size, files) == manifest.dataset_root_pure(
            hasher, chunk_size, files
        )


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=20000), chunk_size=st.sampled_from([1, 7, 1024, 4096, 65536]))
def test_native_chunk_leaves_equal_pure(data, chunk_size):
    for hasher in (B3, SHA):
        native_leaves = native.chunk_leaves(hasher.code, data, chunk_size)
        assert native_leaves == rfc6962.chunk_leaves_pure(hasher, data, chunk_size)
        assert len(native_leaves) == 32 * -(-len(data) // chunk_size)


@pytest.mark.parametrize("size", [65535, 65536, 65537, 3 * 65536 + 1, 4 << 20])
def test_native_chunk_leaves_on_wide_chunks_match_blake3(size):
    data = os.urandom(size)
    want = b"".join(blake3.blake3(b"\x00" + data[i : i + 65536]).digest() for i in range(0, size, 65536))
    assert native.chunk_leaves(B3.code, data, 65536) == want


@pytest.mark.parametrize(
    "bad",
    [
        lambda: native.chunk_leaves(1, b"x", 0),
        lambda: native.chunk_leaves(9, b"x", 1024),
        lambda: native.root_of_leaves(1, b"x" * 33),
        lambda: native.root_of_leaves(3, b""),
        lambda: native.hash(1, b"", 256),
        lambda: native.dataset_root(1, 1024, [FileEntry("a", 1, b"short")]),
        lambda: native.dataset_root(1, 1024, [object()]),
        lambda: native.dataset_root(1, 1024, 5),
    ],
)
def test_native_refuses_bad_arguments(bad):
    with pytest.raises((ValueError, TypeError, AttributeError)):
        bad()


def test_pure_path_is_forced_by_the_environment():
    code = "from merkle._native import native, status; print(native is None, status)"
    out = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, "MERKLE_PURE": "1"}, capture_output=True, text=True, check=True
    ).stdout
    assert out.startswith("True pure Python (forced by MERKLE_PURE=1)")
    r = subprocess.run(
        [sys.executable, "-m", "merkle", "doctor"],
        env={**os.environ, "MERKLE_PURE": "1"},
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0 and "pure Python" in r.stdout
    r = subprocess.run(
        [sys.executable, "-m", "merkle", "doctor"],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "MERKLE_PURE"},
    )
    assert r.returncode == 0 and "native" in r.stdout


@pytest.mark.parametrize(
    ("switch", "engine"),
    [("", "C extension, AVX"), ("MERKLE_NO_AVX512", "C extension, AVX2"), ("MERKLE_NO_AVX2", "blake3 package")],
)
def test_doctor_says_which_blake3_engine_runs_and_why(switch, engine):
    """Where the extension has only portable C, bulk BLAKE3 goes to the package, and doctor says so."""
    env = {k: v for k, v in os.environ.items() if k not in ("MERKLE_NO_AVX512", "MERKLE_NO_AVX2", "MERKLE_PURE")}
    if switch:
        env[switch] = "1"
    if "avx2" not in cpu().split() and switch != "MERKLE_NO_AVX2":
        engine = "blake3 package"
    r = subprocess.run([sys.executable, "-m", "merkle", "doctor", "--json"], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["blake3_engine"].startswith(engine)
    if engine == "blake3 package":
        assert "no vector code" in info["blake3_engine"] and info["native_blake3_tier"] == "portable"
    code = "from merkle._native import bulk; print(bulk(1) is None, bulk(2) is None)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == [str(engine == "blake3 package"), "False"]


# -- whole small files in batches (engine.hash_files) ------------------------------


def _walked_with_traps(root: Path):
    """Files of every shape, plus entries that must fail the same way on both paths."""
    from merkle.source.walk import WalkedFile, identity, walk

    sizes = {"empty": 0, "one": 1, "chunk": 4096, "chunk+1": 4097, "many": 100_000, "odd": 12_345}
    for name, size in sizes.items():
        (root / name).write_bytes(os.urandom(size))
    walked = list(walk(root).files)
    changed = root / "changed"
    changed.write_bytes(b"before")
    listed = WalkedFile("changed", str(changed), 6, identity(changed.stat()))
    changed.write_bytes(b"after!")  # same size, new mtime/ctime: changed between listing and hashing
    (root / "target").write_bytes(b"x" * 10)
    (root / "link").symlink_to("target")
    os.mkfifo(root / "fifo")
    (root / "dir").mkdir()
    fake = (1, 2, 10, 3, 4)
    traps = [
        listed,
        WalkedFile("gone", str(root / "gone"), 10, fake),
        WalkedFile("link", str(root / "link"), 10, fake),
        WalkedFile("fifo", str(root / "fifo"), 0, fake),
        WalkedFile("dir", str(root / "dir"), 0, fake),
    ]
    return walked + traps


@pytest.mark.parametrize("hasher", [B3, SHA], ids=["blake3", "sha256"])
def test_native_file_batches_equal_the_pure_engine(tmp_path, hasher):
    from merkle.hashing import engine

    files = _walked_with_traps(tmp_path)
    native_run = engine.hash_files(files, hasher, 4096, jobs=2)
    pure_opener = engine.local_opener(False)
    pure_run = engine.hash_files(files, hasher, 4096, jobs=2, opener=lambda src: pure_opener(src))

    def shape(digests):
        return {
            d.path: (d.root, d.leaves if len(d.leaves) > 32 else b"", type(d.error), d.error and d.error.message)
            for d in digests
        }

    got, want = shape(native_run), shape(pure_run)
    assert got == want
    assert want["changed"][3] == "changed between listing and hashing"
    assert want["link"][3] == "is a symbolic link"
    assert want["fifo"][3] == "a FIFO, not a regular file"
    assert want["gone"][3] == "No such file or directory"
    assert want["empty"][0] == hasher.empty() and want["one"][2] is type(None)


def _kernel_files():
    """Files whose size lies, as procfs and sysfs files do: both paths must refuse them with the same words."""
    from merkle.source.walk import WalkedFile, identity

    out = []
    for path in ("/proc/self/status", "/sys/kernel/mm/transparent_hugepage/enabled", "/sys/kernel/profiling"):
        if os.path.exists(path):
            out.append(WalkedFile(path.strip("/"), path, os.stat(path).st_size, identity(os.stat(path))))
    return out


@pytest.mark.parametrize("hasher", [B3, SHA], ids=["blake3", "sha256"])
def test_native_refuses_lying_sizes_like_the_pure_path(hasher):
    """procfs says 0 bytes and has more (bytes past the listed size); sysfs says 4096 and has fewer (a short
    read).  /proc/self is read by whichever process opens it, so identities are re-taken by each path."""
    from merkle.hashing import engine

    files = _kernel_files()
    assert files, "no procfs or sysfs here"
    pure_opener = engine.local_opener(True)
    messages = []
    for opener in (None, lambda src: pure_opener(src)):
        digests = engine.hash_files(files, hasher, 4096, jobs=1, follow_symlinks=True, opener=opener)
        messages.append({d.path: d.error.message if d.error else None for d in digests})
    native_msgs, pure_msgs = messages
    assert native_msgs == pure_msgs
    for path, message in pure_msgs.items():
        assert message is not None and (
            "past its listed size" in message or "short read" in message or "changed" in message
        ), (path, message)


@pytest.mark.parametrize("n", [0, 1, 2, 3, 64, 65, 66, 127, 128, 129, 1000, 4097])
@pytest.mark.parametrize("hasher", [B3, SHA], ids=["blake3", "sha256"])
def test_native_levels_equal_pure(hasher, n):
    leaves = [hasher.leaf(i.to_bytes(4, "big")) for i in range(n)]
    got = [rfc6962.split_leaves(level) for level in native.levels(hasher.code, b"".join(leaves))]
    assert got == rfc6962.levels_pure(hasher, leaves) == rfc6962.levels(hasher, leaves)
    if n:
        assert rfc6962.inclusion_proof(rfc6962.levels(hasher, leaves), n - 1) == rfc6962.inclusion_proof(
            rfc6962.levels_pure(hasher, leaves), n - 1
        )


def test_native_dataset_leaves_and_proofs_equal_pure():
    from merkle.format.fileproof import prove
    from merkle.format.manifest import Manifest, dataset_leaves_bytes

    files = [FileEntry(f"d{i // 100}/f{i:06d}", i, hashlib.sha256(str(i).encode()).digest()) for i in range(20_000)]
    m = Manifest.create(files)
    leaves = rfc6962.split_leaves(dataset_leaves_bytes(m.hasher, m.chunk_size, m.files))
    assert leaves == [m.hasher.leaf(f.leaf_data(m.chunk_size)) for f in m.files]
    proof = prove(m, "d123/f012345")
    proof.verify(m.summary)
    assert list(proof.hashes) == rfc6962.inclusion_proof(rfc6962.levels_pure(m.hasher, leaves), m.index("d123/f012345"))


@pytest.mark.parametrize("hasher", [B3, SHA], ids=["blake3", "sha256"])
def test_native_confined_opens_equal_the_pure_engine(tmp_path, hasher):
    """Listed files are opened down from their root, never through a link (format rule W5), on both paths and
    with the same words: a directory swapped for a link, a file swapped for a link (to the very same inode), a
    directory removed, a file swapped for a FIFO."""
    from merkle.hashing import engine
    from merkle.source.walk import walk

    root = tmp_path / "root"
    for d in ("a", "b", "c", "d/e"):
        (root / d).mkdir(parents=True)
    for name in ("top.bin", "a/x.bin", "b/y.bin", "c/z.bin", "d/e/w.bin", "d/v.bin"):
        (root / name).write_bytes(os.urandom(5000))
    files = walk(root).files
    aside = tmp_path / "aside"
    aside.mkdir()
    (root / "a").rename(aside / "a")
    (root / "a").symlink_to(aside / "a")  # the same files, through a link
    os.link(root / "b" / "y.bin", aside / "y.bin")
    (root / "b" / "y.bin").unlink()
    (root / "b" / "y.bin").symlink_to(aside / "y.bin")  # the same inode, through a link
    (root / "c" / "z.bin").unlink()
    (root / "c").rmdir()
    (root / "d" / "v.bin").unlink()
    os.mkfifo(root / "d" / "v.bin")
    native_run = engine.hash_files(files, hasher, 4096, jobs=2)
    pure_opener = engine.local_opener(False)
    pure_run = engine.hash_files(files, hasher, 4096, jobs=2, opener=lambda src: pure_opener(src))

    def messages(digests):
        return {d.path: d.error.message if d.error else d.root for d in digests}

    got, want = messages(native_run), messages(pure_run)
    assert got == want
    assert want["a/x.bin"] == "a: symbolic link refused"
    assert want["b/y.bin"] == "is a symbolic link"
    assert want["c/z.bin"] == "c: No such file or directory"
    assert want["d/v.bin"] == "a FIFO, not a regular file"
    assert isinstance(want["top.bin"], bytes) and isinstance(want["d/e/w.bin"], bytes)


_PATH_PARTS = st.sampled_from(["a", "b", ".", "..", "", "a.b", ".x", "x.", "A", "é", "\\", " ", "~", "\x7f", "\x1f"])
_PATHS = st.lists(_PATH_PARTS, min_size=1, max_size=3).map("/".join)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.tuples(
            _PATHS,
            st.sampled_from([0, 1, 7, manifest.MAX_FILE_SIZE, manifest.MAX_FILE_SIZE + 1, -1, True, 2.0]),
            st.sampled_from([bytes(32), bytes(31), bytearray(32), "00" * 32]),
            st.sampled_from([None, None, None, ("sha256", "ab" * 32)]),
        ),
        max_size=6,
    ),
    st.booleans(),
)
def test_native_plain_entries_is_sound_and_takes_the_common_case(rows, sort):
    """ext plain_entries answers True only for entries the entry-by-entry check accepts (less the case check, done
    after either), and True for every set of plain, sorted, hub-less entries."""
    if sort:
        rows = sorted(rows, key=lambda r: r[0])
    files = [FileEntry.__new__(FileEntry) for _ in rows]
    for f, (path, size, root, hub) in zip(files, rows, strict=True):
        for name, value in (("path", path), ("size", size), ("root", root), ("hub", hub)):
            object.__setattr__(f, name, value)
    fast = native.plain_entries(files, manifest.MAX_PATH_BYTES, manifest.MAX_FILE_SIZE)
    try:
        manifest._check_each_entry(files)
        accepted = True
    except manifest.FormatError:
        accepted = False
    if fast:
        assert accepted, rows
    if fast == manifest.NO_CAPITALS:  # its promise: casefold could not make two of these paths one
        assert len({p.casefold() for p, *_ in rows}) == len(rows), rows
        assert case_collision(p for p, *_ in rows) is None
    plain = all(p.isascii() and manifest.path_problem(p) is None for p, *_ in rows)
    if accepted and plain and all(h is None for *_, h in rows):
        assert fast, rows


def test_native_plain_entries_limits():
    root = bytes(32)
    longest = "a" * manifest.MAX_PATH_BYTES
    assert native.plain_entries([FileEntry(longest, 0, root)], manifest.MAX_PATH_BYTES, manifest.MAX_FILE_SIZE)
    over = FileEntry.__new__(FileEntry)
    for name, value in (("path", longest + "a"), ("size", 0), ("root", root), ("hub", None)):
        object.__setattr__(over, name, value)
    assert not native.plain_entries([over], manifest.MAX_PATH_BYTES, manifest.MAX_FILE_SIZE)
    assert not native.plain_entries([FileEntry("b", 0, root), FileEntry("a", 0, root)], 4096, 10)  # order
    assert not native.plain_entries([FileEntry("a", 0, root), FileEntry("a", 0, root)], 4096, 10)  # duplicate
    assert not native.plain_entries([FileEntry("a", 11, root)], 4096, 10)  # size over the limit
    assert native.plain_entries([FileEntry("a", 0, root), FileEntry("a/b", 0, root), FileEntry("ab", 0, root)], 9, 1)
    no_capitals = [FileEntry("a", 0, root), FileEntry("b", 0, root)]
    assert native.plain_entries(no_capitals, 9, 1) == manifest.NO_CAPITALS
    assert native.plain_entries([FileEntry("B", 0, root), FileEntry("b", 0, root)], 9, 1) == 1  # the case check decides
    assert native.plain_entries([FileEntry("a/Z", 0, root), FileEntry("b", 0, root)], 9, 1) == 1


def test_native_entries_json_and_entries_from_equal_the_python_writers():
    """ext entries_json writes what _entry_json writes, joined (or declines: None); entries_from makes the entries
    the dataclass makes."""
    from merkle.format.hub import SHA256

    root = bytes(range(32))
    plain = [FileEntry(p, s, root) for p, s in [("a", 0), ("b/c d", 7), ("e~f", manifest.MAX_FILE_SIZE)]]
    for sep in (",", ",\n"):
        assert native.entries_json(plain, sep) == sep.join(map(manifest._entry_json, plain))
        assert native.entries_json([], sep) == ""
    for odd in ('q"uote', "back\\slash", "é", "tab\tx", "日本"):
        assert native.entries_json([*plain, FileEntry(odd, 1, root)], ",") is None
    assert native.entries_json([FileEntry("h", 1, root, (SHA256, "ab" * 32))], ",") is None
    made = native.entries_from(FileEntry, plain)
    assert made == plain and all(type(e) is FileEntry and e.hub is None for e in made)
    for m in (manifest.Manifest.create(plain), manifest.Manifest.create([FileEntry("é", 1, root)])):
        assert m.to_json().decode().count("\n") == len(m.files) + 2  # after "[", between entries, before "]", last
        assert manifest.Manifest.from_json(m.to_json()) == m
