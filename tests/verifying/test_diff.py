"""`merkle diff A B` and merkle.verifying.diffing (docs/diff.md, DF1-DF8).

Trees are built with the real `merkle build`; expected chunk ranges are
computed here from the offsets each test edits and the chunk size, never
from the code under test."""

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
from support.cli import assert_one_line_error, run_cli

from merkle.format.manifest import FileEntry, Manifest
from merkle.verifying.diffing import diff

CS = 1024  # the smallest chunk size (F1): many chunks from small files
SIZE = 10 * CS + 300  # 11 chunks, the last short


def payload(n: int, seed: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        out += hashlib.sha256(b"%d-%d" % (seed, len(out))).digest()
    return bytes(out[:n])


def make_tree(root: Path) -> Path:
    root.mkdir()
    (root / "model.bin").write_bytes(payload(SIZE, 1))
    (root / "config.json").write_text('{"a": 1}\n')
    (root / "shards").mkdir()
    for i in range(3):
        (root / "shards" / f"s{i}.bin").write_bytes(payload(3 * CS, 10 + i))
    return root


def build(tree: Path, out: Path, *extra: str) -> Path:
    r = run_cli("build", str(tree), "-o", str(out), "--chunk-size", str(CS), "-q", *extra)
    assert r.returncode == 0, r.stderr
    return out


def edit(path: Path, offset: int, data: bytes = b"\xff") -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        old = f.read(len(data))
        f.seek(offset)
        f.write(bytes(b ^ 0x5A for b in old) if data == b"\xff" else data)


def chunks_of(offsets: list[int]) -> list[int]:
    return sorted({o // CS for o in offsets})


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    old = make_tree(tmp_path / "old")
    new = tmp_path / "new"
    shutil.copytree(old, new)
    return old, new


def run_diff(a: Path, b: Path, *extra: str) -> tuple[int, dict]:
    r = run_cli("diff", "--json", *extra, str(a), str(b))
    assert "Traceback" not in r.stderr
    return r.returncode, (json.loads(r.stdout) if r.stdout else {})


def changed_of(doc: dict, path: str) -> dict:
    (c,) = [c for c in doc["changed"] if c["path"] == path]
    return c


def test_identical_manifests_exit_0(pair, tmp_path):
    a = build(pair[0], tmp_path / "a.json")
    b = build(pair[1], tmp_path / "b.json")
    r = run_cli("diff", str(a), str(b))
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""
    assert "same" in r.stderr


def test_edited_bytes_name_their_chunks_and_byte_ranges(pair, tmp_path):
    offsets = [5, 3 * CS + 17, 3 * CS + 900, 4 * CS, 9 * CS + 1]  # chunks 0, 3, 4, 9
    for o in offsets:
        edit(pair[1] / "model.bin", o)
    code, doc = run_diff(build(pair[0], tmp_path / "a.json"), build(pair[1], tmp_path / "b.json"))
    assert code == 1
    c = changed_of(doc, "model.bin")
    seen = [i for r in c["ranges"] for i in range(r["chunks"][0], r["chunks"][1] + 1)]
    assert seen == chunks_of(offsets)
    assert all(r["kind"] == "changed" for r in c["ranges"])
    assert [r["chunks"] for r in c["ranges"]] == [[0, 0], [3, 4], [9, 9]]
    for r in c["ranges"]:
        assert r["bytes"] == [r["chunks"][0] * CS, (r["chunks"][1] + 1) * CS]
    assert doc["added"] == doc["removed"] == doc["moved"] == []
    assert doc["unchanged"] == 4


def test_human_lines_name_chunks_and_inclusive_bytes(pair, tmp_path):
    edit(pair[1] / "model.bin", 2 * CS + 3)
    r = run_cli("diff", str(build(pair[0], tmp_path / "a.json")), str(build(pair[1], tmp_path / "b.json")))
    assert r.returncode == 1
    assert r.stdout == f"* model.bin  ({SIZE} bytes; chunk 2: bytes {2 * CS}-{3 * CS - 1})\n"
    assert r.stderr.startswith("merkle: differ: 0 added, 0 removed, 1 changed")


def test_appended_bytes(pair, tmp_path):
    extra = 5 * CS
    with open(pair[1] / "model.bin", "ab") as f:
        f.write(payload(extra, 99))
    code, doc = run_diff(build(pair[0], tmp_path / "a.json"), build(pair[1], tmp_path / "b.json"))
    assert code == 1
    c = changed_of(doc, "model.bin")
    new_size = SIZE + extra
    last_old = (SIZE - 1) // CS  # the old short chunk now holds more bytes: changed
    assert c["old"]["size"] == SIZE and c["new"]["size"] == new_size
    assert c["ranges"] == [
        {"kind": "changed", "chunks": [last_old, last_old], "bytes": [last_old * CS, (last_old + 1) * CS]},
        {"kind": "appended", "chunks": [last_old + 1, (new_size - 1) // CS], "bytes": [(last_old + 1) * CS, new_size]},
    ]


def test_truncated_file(pair, tmp_path):
    new_size = 4 * CS + 10
    os.truncate(pair[1] / "model.bin", new_size)
    code, doc = run_diff(build(pair[0], tmp_path / "a.json"), build(pair[1], tmp_path / "b.json"))
    assert code == 1
    c = changed_of(doc, "model.bin")
    cut = new_size // CS  # chunk 4 is short now: changed; 5.. are gone
    assert c["ranges"] == [
        {"kind": "changed", "chunks": [cut, cut], "bytes": [cut * CS, new_size]},
        {"kind": "truncated", "chunks": [cut + 1, (SIZE - 1) // CS], "bytes": [(cut + 1) * CS, SIZE]},
    ]


def test_added_removed_and_moved(pair, tmp_path):
    (pair[1] / "shards" / "s1.bin").rename(pair[1] / "shards" / "renamed.bin")
    (pair[1] / "config.json").unlink()
    (pair[1] / "README.md").write_text("new\n")
    code, doc = run_diff(build(pair[0], tmp_path / "a.json"), build(pair[1], tmp_path / "b.json"))
    assert code == 1
    assert [f["path"] for f in doc["added"]] == ["README.md"]
    assert [f["path"] for f in doc["removed"]] == ["config.json"]
    assert [(m["from"], m["to"]) for m in doc["moved"]] == [("shards/s1.bin", "shards/renamed.bin")]
    r = run_cli("diff", str(tmp_path / "a.json"), str(tmp_path / "b.json"))
    assert r.stdout.splitlines() == ["+ README.md", "- config.json", "> shards/s1.bin -> shards/renamed.bin"]


def test_two_copies_of_one_content_are_not_a_move(pair, tmp_path):
    data = (pair[1] / "shards" / "s0.bin").read_bytes()
    (pair[1] / "shards" / "s0.bin").unlink()
    (pair[1] / "x.bin").write_bytes(data)
    (pair[1] / "y.bin").write_bytes(data)
    code, doc = run_diff(build(pair[0], tmp_path / "a.json"), build(pair[1], tmp_path / "b.json"))
    assert code == 1
    assert doc["moved"] == []
    assert sorted(f["path"] for f in doc["added"]) == ["x.bin", "y.bin"]


def test_without_a_sidecar_ranges_are_unknown(pair, tmp_path):
    edit(pair[1] / "model.bin", 7 * CS)
    a, b = build(pair[0], tmp_path / "a.json"), build(pair[1], tmp_path / "b.json")
    os.unlink(f"{b}.leaves")
    code, doc = run_diff(a, b)
    assert code == 1
    c = changed_of(doc, "model.bin")
    assert c["ranges"] is None and "no leaf layers" in c["ranges_unknown"]
    r = run_cli("diff", str(a), str(b))
    assert "ranges unknown" in r.stdout


def test_a_damaged_sidecar_gives_no_ranges_never_wrong_ones(pair, tmp_path):
    edit(pair[1] / "model.bin", 7 * CS)
    a, b = build(pair[0], tmp_path / "a.json"), build(pair[1], tmp_path / "b.json")
    leaves = Path(f"{b}.leaves")
    data = bytearray(leaves.read_bytes())
    data[48 + 32 * 2] ^= 1  # a leaf of model.bin's layer (the first multi-chunk file in path order)
    leaves.write_bytes(bytes(data))
    r = run_cli("diff", "--json", str(a), str(b))
    assert r.returncode == 1
    assert "warning" in r.stderr and "leaves" in r.stderr
    assert changed_of(json.loads(r.stdout), "model.bin")["ranges"] is None


def test_a_sidecar_from_another_manifest_is_ignored(pair, tmp_path):
    edit(pair[1] / "model.bin", 7 * CS)
    a, b = build(pair[0], tmp_path / "a.json"), build(pair[1], tmp_path / "b.json")
    shutil.copy(f"{a}.leaves", f"{b}.leaves")  # stale: the old tree's layers beside the new manifest
    code, doc = run_diff(a, b)
    assert code == 1
    assert changed_of(doc, "model.bin")["ranges"] is None


def test_different_algorithms_are_bad_input(pair, tmp_path):
    a = build(pair[0], tmp_path / "a.json")
    b = build(pair[1], tmp_path / "b.json", "--algorithm", "sha256")
    r = run_cli("diff", str(a), str(b))
    assert r.returncode == 2
    assert_one_line_error(r, "blake3", "sha256")


def test_different_chunk_sizes_compare_only_what_roots_allow(pair, tmp_path):
    (pair[1] / "config.json").write_text('{"a": 2}\n')  # one chunk under both sizes: comparable
    os.truncate(pair[1] / "shards" / "s2.bin", CS)  # sizes differ: changed, no ranges
    a = build(pair[0], tmp_path / "a.json")
    r = run_cli("build", str(pair[1]), "-o", str(tmp_path / "b.json"), "--chunk-size", str(2 * CS), "-q")
    assert r.returncode == 0, r.stderr
    code, doc = run_diff(a, tmp_path / "b.json")
    assert code == 1
    status = {c["path"]: c["status"] for c in doc["changed"]}
    assert status == {
        "config.json": "changed",
        "model.bin": "unknown",
        "shards/s0.bin": "unknown",
        "shards/s1.bin": "unknown",
        "shards/s2.bin": "changed",
    }
    assert changed_of(doc, "shards/s2.bin")["ranges"] is None


def test_only_unknowns_exit_2(pair, tmp_path):
    a = build(pair[0], tmp_path / "a.json")
    r = run_cli("build", str(pair[1]), "-o", str(tmp_path / "b.json"), "--chunk-size", str(2 * CS), "-q")
    assert r.returncode == 0
    r = run_cli("diff", str(a), str(tmp_path / "b.json"))
    assert r.returncode == 2
    assert "cannot tell" in r.stderr
    assert all(line.startswith("? ") for line in r.stdout.splitlines())


@pytest.mark.parametrize("which", ["old", "new"])
def test_bad_input_is_one_line_naming_the_file(pair, tmp_path, which):
    good = build(pair[0], tmp_path / "a.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "merkle-manifest-v1"}')
    args = (str(bad), str(good)) if which == "old" else (str(good), str(bad))
    r = run_cli("diff", *args)
    assert r.returncode == 2
    assert_one_line_error(r, "bad.json")
    r = run_cli("diff", str(good), str(tmp_path / "missing.json"))
    assert r.returncode == 2
    assert_one_line_error(r, "missing.json")


def test_non_ascii_names_print_as_one_line(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    new.mkdir()
    (new / "a\u00e9\u3042 b.txt").write_text("x")
    a, b = build(old, tmp_path / "a.json"), build(new, tmp_path / "b.json")
    r = run_cli("diff", str(a), str(b))
    assert r.returncode == 1
    assert len(r.stdout.splitlines()) == 1 and r.stdout.startswith("+ ")


# -- bundles -------------------------------------------------------------------


@pytest.fixture
def keys(tmp_path):
    out = {}
    for name in ("trusted", "other"):
        key = tmp_path / f"{name}.key"
        r = run_cli("keygen", "-o", str(key))
        assert r.returncode == 0, r.stderr
        out[name] = key
    return out


def test_signed_bundles_are_verified_then_compared(pair, tmp_path, keys):
    edit(pair[1] / "shards" / "s2.bin", CS + 5)
    a = build(pair[0], tmp_path / "a.bundle", "--sign", str(keys["trusted"]), "--name", "m", "--version", "2")
    b = build(pair[1], tmp_path / "b.bundle", "--sign", str(keys["trusted"]), "--name", "m", "--version", "1")
    code, doc = run_diff(a, b, "--key", f"{keys['trusted']}.pub")
    assert code == 1, doc
    assert changed_of(doc, "shards/s2.bin")["ranges"] == [{"kind": "changed", "chunks": [1, 1], "bytes": [CS, 2 * CS]}]
    assert doc["old"]["signature"]["version"] == 2 and doc["new"]["signature"]["version"] == 1
    # An older version after a newer one: diff keeps no rollback record (DF2), so this holds twice.
    code, _ = run_diff(b, a, "--key", f"{keys['trusted']}.pub")
    assert code == 1


def test_a_bundle_and_an_unsigned_manifest(pair, tmp_path, keys):
    a = build(pair[0], tmp_path / "a.bundle", "--sign", str(keys["trusted"]))
    b = build(pair[1], tmp_path / "b.json")
    code, doc = run_diff(a, b, "--key", f"{keys['trusted']}.pub")
    assert code == 0
    assert doc["new"]["signature"] is None and doc["old"]["signature"]["format"] == "merkle"
    r = run_cli("diff", "--key", f"{keys['trusted']}.pub", str(a), str(b))
    assert r.returncode == 0
    assert "a.bundle: signature ok" in r.stderr and "b.json: unsigned manifest" in r.stderr


def test_a_compact_bundle_uses_the_manifest_beside_it(pair, tmp_path, keys):
    edit(pair[1] / "model.bin", 5 * CS + 1)
    a = build(pair[0], tmp_path / "a.bundle", "--sign", str(keys["trusted"]), "--compact")
    b = build(pair[1], tmp_path / "b.json")
    code, doc = run_diff(a, b, "--key", f"{keys['trusted']}.pub")
    assert code == 1
    assert changed_of(doc, "model.bin")["ranges"] == [{"kind": "changed", "chunks": [5, 5], "bytes": [5 * CS, 6 * CS]}]
    os.unlink(f"{a}.manifest")
    r = run_cli("diff", "--key", f"{keys['trusted']}.pub", str(a), str(b))
    assert r.returncode == 2
    assert_one_line_error(r, "a.bundle.manifest")


def test_a_bundle_signed_by_an_untrusted_key_exits_1(pair, tmp_path, keys):
    a = build(pair[0], tmp_path / "a.bundle", "--sign", str(keys["other"]))
    b = build(pair[1], tmp_path / "b.json")
    r = run_cli("diff", "--key", f"{keys['trusted']}.pub", str(a), str(b))
    assert r.returncode == 1
    assert_one_line_error(r, "a.bundle")
    assert r.stdout == ""


def test_a_bundle_needs_a_key(pair, tmp_path, keys):
    a = build(pair[0], tmp_path / "a.bundle", "--sign", str(keys["trusted"]))
    r = run_cli("diff", str(a), str(build(pair[1], tmp_path / "b.json")))
    assert r.returncode == 2
    assert_one_line_error(r, "--key")


def test_a_tampered_bundle_exits_1(pair, tmp_path, keys):
    a = build(pair[0], tmp_path / "a.bundle", "--sign", str(keys["trusted"]))
    doc = json.loads(a.read_text())
    sig = doc["dsseEnvelope"]["signatures"][0]["sig"]
    doc["dsseEnvelope"]["signatures"][0]["sig"] = ("A" if sig[0] != "A" else "B") + sig[1:]
    a.write_text(json.dumps(doc))
    r = run_cli("diff", "--key", f"{keys['trusted']}.pub", str(a), str(a))
    assert r.returncode == 1
    assert_one_line_error(r)


# -- zarr ----------------------------------------------------------------------


def test_zarr_arrays_report_their_changed_chunk_keys(tmp_path):
    zarr = pytest.importorskip("zarr")
    np = pytest.importorskip("numpy")
    old = tmp_path / "old.zarr"
    g = zarr.open_group(str(old), mode="w", zarr_format=3)
    g.create_array("temp", shape=(8, 8), chunks=(4, 4), dtype="f4")[:] = np.arange(64, dtype="f4").reshape(8, 8)
    g.create_array("wind", shape=(4,), chunks=(2,), dtype="i4")[:] = np.arange(4, dtype="i4")
    new = tmp_path / "new.zarr"
    shutil.copytree(old, new)
    g2 = zarr.open_group(str(new), mode="r+")
    g2["temp"][5, 6] = -1.0  # chunk (1, 1)
    a, b = build(old, tmp_path / "a.json"), build(new, tmp_path / "b.json")
    code, doc = run_diff(a, b)
    assert code == 1
    assert doc["zarr"] == [{"path": "temp", "added": [], "removed": [], "changed": ["temp/c/1/1"]}]
    r = run_cli("diff", str(a), str(b))
    assert "zarr array 'temp': 1 keys changed" in r.stderr


# -- the library -----------------------------------------------------------------


def test_a_100000_file_pair():
    n = 100_000
    files = [FileEntry(f"d{i // 1000:03d}/f{i:06d}", 100 + i, hashlib.sha256(b"%d" % i).digest()) for i in range(n)]
    a = Manifest.create(files)
    touched = set(range(0, n, 997))
    b = Manifest.create(
        FileEntry(f.path, f.size, hashlib.sha256(b"x%d" % i).digest()) if i in touched else f
        for i, f in enumerate(files)
    )
    d = diff(a, b)
    assert {c.path for c in d.changed} == {files[i].path for i in touched}
    assert d.unchanged == n - len(touched)
    assert all(c.ranges is not None and [(r.first, r.last) for r in c.ranges] == [(0, 0)] for c in d.changed)
    assert not diff(a, a)
