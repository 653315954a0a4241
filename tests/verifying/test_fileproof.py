"""Compact statements and file proofs: one file of a large dataset checked
against the signed root without the manifest (docs/partial.md C1-C3)."""

import json
import os
from pathlib import Path

import pytest
from support.cli import assert_one_line_error


@pytest.fixture
def key(cli, tmp_path):
    assert cli("keygen", "-o", str(tmp_path / "k")).returncode == 0
    return tmp_path / "k"


def make_tree(root: Path, count: int) -> Path:
    for i in range(count):
        (root / f"shard-{i % 3}").mkdir(parents=True, exist_ok=True)
        (root / f"shard-{i % 3}" / f"part-{i:04d}.bin").write_bytes(os.urandom(1000 + 37 * i))
    return root


def compact(cli, tree: Path, key: Path, out: Path) -> Path:
    r = cli("build", str(tree), "--sign", str(key), "--compact", "-o", str(out), "--chunk-size", "4K")
    assert r.returncode == 0, r.stderr
    return out


def test_compact_bundle_does_not_grow_with_the_dataset(cli, tmp_path, key):
    small = compact(cli, make_tree(tmp_path / "a", 5), key, tmp_path / "a.json")
    large = compact(cli, make_tree(tmp_path / "b", 60), key, tmp_path / "b.json")
    assert abs(len(small.read_bytes()) - len(large.read_bytes())) < 16
    assert (tmp_path / "b.json.manifest").stat().st_size > 10 * (tmp_path / "a.json.manifest").stat().st_size / 2


def test_tree_verifies_with_the_manifest_beside_and_not_without(cli, tmp_path, key):
    tree = make_tree(tmp_path / "t", 8)
    bundle = compact(cli, tree, key, tmp_path / "t.json")
    assert cli("verify", str(tree), str(bundle), "--key", f"{key}.pub").returncode == 0
    os.rename(f"{bundle}.manifest", tmp_path / "elsewhere.json")
    r = cli("verify", str(tree), str(bundle), "--key", f"{key}.pub")
    assert r.returncode == 2 and "needs its manifest" in r.stderr


def test_manifest_beside_must_be_the_signed_one(cli, tmp_path, key):
    tree = make_tree(tmp_path / "t", 8)
    bundle = compact(cli, tree, key, tmp_path / "t.json")
    (tree / "shard-0" / "part-0000.bin").write_bytes(b"swapped")
    other = tmp_path / "other.json"
    assert cli("build", str(tree), "-o", str(other), "--chunk-size", "4K").returncode == 0
    os.replace(other, f"{bundle}.manifest")
    r = cli("verify", str(tree), str(bundle), "--key", f"{key}.pub")
    assert r.returncode == 1
    assert_one_line_error(r, "not the one the signed summary describes")


def test_single_file_with_a_proof(cli, tmp_path, key):
    tree = make_tree(tmp_path / "t", 12)
    bundle = compact(cli, tree, key, tmp_path / "t.json")
    name = "shard-1/part-0007.bin"
    proof = tmp_path / "p.json"
    assert cli("prove", f"{bundle}.manifest", name, "-o", str(proof)).returncode == 0
    os.remove(f"{bundle}.manifest")  # the check must not need it
    lone = tmp_path / "downloaded.bin"
    lone.write_bytes((tree / name).read_bytes())
    r = cli("verify", str(lone), str(bundle), "--key", f"{key}.pub", "--proof", str(proof), "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["ok"] and doc["path"] == name and doc["tree_size"] == 12
    lone.write_bytes(lone.read_bytes()[:-1] + b"X")
    r = cli("verify", str(lone), str(bundle), "--key", f"{key}.pub", "--proof", str(proof))
    assert r.returncode == 1 and "content differs" in r.stdout


def test_many_proofs_at_once(cli, tmp_path, key):
    """`prove` of a list writes one proof per line, in the order asked, each the proof file `prove NAME` writes;
    each verifies its file alone, and none verifies another file."""
    tree = make_tree(tmp_path / "t", 30)
    bundle = compact(cli, tree, key, tmp_path / "t.json")
    names = ["shard-2/part-0029.bin", "shard-0/part-0000.bin", "shard-1/part-0013.bin"]
    listed = tmp_path / "names.txt"
    listed.write_text(names[1] + "\n\n" + names[2] + "\r\n")
    many = tmp_path / "many.jsonl"
    assert cli("prove", f"{bundle}.manifest", names[0], "--names", str(listed), "-o", str(many)).returncode == 0
    lines = many.read_bytes().splitlines(keepends=True)
    assert [json.loads(line)["path"] for line in lines] == names
    piped = cli("prove", f"{bundle}.manifest", "--names", "-", stdin="\n".join(names).encode())
    assert piped.returncode == 0 and piped.stdout.encode() == many.read_bytes()
    for name, line in zip(names, lines, strict=True):
        single = tmp_path / "single.json"
        assert cli("prove", f"{bundle}.manifest", name, "-o", str(single)).returncode == 0
        assert single.read_bytes() == line
        r = cli("verify", str(tree / name), str(bundle), "--key", f"{key}.pub", "--proof", str(single))
        assert r.returncode == 0, r.stdout + r.stderr
        other = tree / names[(names.index(name) + 1) % 3]
        r = cli("verify", str(other), str(bundle), "--key", f"{key}.pub", "--proof", str(single))
        assert r.returncode == 1, r.stdout + r.stderr


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["nope.bin"], 1, "nope.bin: not listed in the manifest"),
        (["shard-0/part-0000.bin", "nope.bin"], 1, "nope.bin: not listed in the manifest"),
        ([], 2, "name a file: NAME or --names FILE"),
        (["--names", "/nonexistent/list"], 2, "/nonexistent/list"),
    ],
)
def test_prove_refuses_with_one_line(cli, tmp_path, key, args, code, message):
    tree = make_tree(tmp_path / "t", 4)
    bundle = compact(cli, tree, key, tmp_path / "t.json")
    out = tmp_path / "out.jsonl"
    r = cli("prove", f"{bundle}.manifest", *args, "-o", str(out))
    assert r.returncode == code
    assert_one_line_error(r, message)
    assert not out.exists()


def _tamper(original: Path, changes: dict) -> Path:
    doc = json.loads(original.read_text())
    doc.update(changes)
    out = original.with_name("tampered.json")
    out.write_text(json.dumps(doc))
    return out


@pytest.mark.parametrize("mutation", ["index", "tree_size", "hash", "size", "root", "extra-hash", "fewer-hashes"])
def test_tampered_proofs_fail(cli, tmp_path, key, mutation):
    tree = make_tree(tmp_path / "t", 12)
    bundle = compact(cli, tree, key, tmp_path / "t.json")
    name = "shard-2/part-0005.bin"
    proof = tmp_path / "p.json"
    assert cli("prove", f"{bundle}.manifest", name, "-o", str(proof)).returncode == 0
    doc = json.loads(proof.read_text())
    flipped = ("1" if doc["proof"][0][0] != "1" else "2") + doc["proof"][0][1:]
    changes = {
        "index": {"index": doc["index"] + 1},
        "tree_size": {"tree_size": doc["tree_size"] + 1},
        "hash": {"proof": [flipped, *doc["proof"][1:]]},
        "size": {"size": doc["size"] + 1},
        "root": {"root": "0" * 64},
        "extra-hash": {"proof": [*doc["proof"], doc["proof"][0]]},
        "fewer-hashes": {"proof": doc["proof"][:-1]},
    }[mutation]
    r = cli("verify", str(tree / name), str(bundle), "--key", f"{key}.pub", "--proof", str(_tamper(proof, changes)))
    assert r.returncode == 1, (mutation, r.stdout, r.stderr)


def test_proof_from_another_dataset_fails(cli, tmp_path, key):
    a = make_tree(tmp_path / "a", 6)
    b = make_tree(tmp_path / "b", 6)
    bundle_a = compact(cli, a, key, tmp_path / "a.json")
    compact(cli, b, key, tmp_path / "b.json")
    proof = tmp_path / "p.json"
    assert cli("prove", str(tmp_path / "b.json.manifest"), "shard-0/part-0003.bin", "-o", str(proof)).returncode == 0
    r = cli("verify", str(b / "shard-0" / "part-0003.bin"), str(bundle_a), "--key", f"{key}.pub", "--proof", str(proof))
    assert r.returncode == 1


def test_prove_a_name_not_listed(cli, tmp_path, key):
    bundle = compact(cli, make_tree(tmp_path / "t", 3), key, tmp_path / "t.json")
    r = cli("prove", f"{bundle}.manifest", "nope.bin")
    assert r.returncode == 1
    assert_one_line_error(r, "nope.bin", "not listed")


FORGED = {
    "newline": "x\n= shard-0/part-0000.bin  (file 1 of 12 in the signed dataset; 4-hash proof)",
    "carriage-return": "x\r= shard-0/part-0000.bin",
    "ansi-escape": "\x1b[2K\x1b[1G= shard-0/part-0000.bin",
    "zero-width": "shard-2/part-0005.bin\u200b",
    "left-to-right-mark": "\u200eshard-2/part-0005.bin",
    "lone-surrogate": "shard-2/\ud800.bin",
    "not-canonical": "shard-2/../part-0005.bin",
}


@pytest.mark.parametrize("how", sorted(FORGED))
def test_a_failing_proof_cannot_forge_a_line(cli, tmp_path, key, how):
    """The path of a proof is unauthenticated until it verifies: a proof with
    a path no manifest may hold (P1-P7) is malformed, one clear line naming
    the proof, and nothing it says is printed raw."""
    tree = make_tree(tmp_path / "t", 12)
    bundle = compact(cli, tree, key, tmp_path / "t.json")
    name = "shard-2/part-0005.bin"
    proof = tmp_path / "p.json"
    assert cli("prove", f"{bundle}.manifest", name, "-o", str(proof)).returncode == 0
    tampered = _tamper(proof, {"path": FORGED[how]})
    r = cli("verify", str(tree / name), str(bundle), "--key", f"{key}.pub", "--proof", str(tampered))
    assert r.returncode == 2, (how, r.stdout, r.stderr)
    assert r.stdout == ""
    assert_one_line_error(r, str(tampered), "path")
    assert r.stderr.strip().isprintable() and "\u200b" not in r.stderr and "\u200e" not in r.stderr


@pytest.mark.parametrize("field,value", [("size", 10**19 * 5), ("index", 10**19 * 5), ("tree_size", 10**19 * 5)])
def test_proof_counts_out_of_range_are_malformed(cli, tmp_path, key, field, value):
    tree = make_tree(tmp_path / "t", 4)
    bundle = compact(cli, tree, key, tmp_path / "t.json")
    name = "shard-1/part-0001.bin"
    proof = tmp_path / "p.json"
    assert cli("prove", f"{bundle}.manifest", name, "-o", str(proof)).returncode == 0
    r = cli(
        "verify", str(tree / name), str(bundle), "--key", f"{key}.pub", "--proof", str(_tamper(proof, {field: value}))
    )
    assert r.returncode == 2, (field, r.stdout, r.stderr)
    assert_one_line_error(r, field)
