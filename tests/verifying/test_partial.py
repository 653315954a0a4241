"""Partial verification (issue 4): sparse and selected files, byte ranges, repair plans, safetensors
tensors.  Real files, real keys, the real `merkle` program in child processes; expected roots come from
a spec-literal RFC 6962 Merkle Tree Hash (tests/support/spec.py), never from the code under test.
Range proofs themselves are tests/tree/test_ranges.py."""

import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file
from support.cli import assert_one_line_error, run_cli, statuses
from support.damage import flip
from support.spec import make_tree

import merkle
from merkle.errors import ChunkError, IntegrityError, UsageError
from merkle.source.readers import Counting, LocalFile
from merkle.tree import rfc6962
from merkle.verifying.ranges import FileAuth, repair_plan, verify_range

KiB, MiB = 1 << 10, 1 << 20
CS = 64 * KiB  # chunk size of most tests here


@pytest.fixture(scope="module")
def key(tmp_path_factory):
    """An ECDSA key pair written by the real `merkle keygen`."""
    k = tmp_path_factory.mktemp("keys") / "release"
    r = run_cli("keygen", "-o", str(k))
    assert r.returncode == 0, r.stderr
    return k


def pub(key: Path) -> str:
    return str(key) + ".pub"


def sign(cli, d: Path, key: Path, out: Path, chunk: str = "64K") -> Path:
    r = cli("build", str(d), "--sign", str(key), "-o", str(out), "--chunk-size", chunk)
    assert r.returncode == 0, r.stderr
    assert Path(str(out) + ".leaves").exists()
    return out


def verify_file(cli, path, bundle, key, name, *extra):
    return cli("verify", str(path), str(bundle), "--key", pub(key), "--file", name, *extra)


def blake3_leaves(data: bytes, cs: int) -> list[bytes]:
    import blake3

    return [blake3.blake3(b"\x00" + data[i : i + cs]).digest() for i in range(0, len(data), cs)]


# -- acceptance 1: sparse checkouts and selected files -----------------------------


@pytest.fixture
def signed_tree(cli, tmp_path, key):
    d = tmp_path / "model"
    (d / "sub").mkdir(parents=True)
    files = {
        "config.json": b'{"hidden_size": 384}\n',
        "shard-1.bin": os.urandom(3 * 4096 + 17),
        "shard-2.bin": os.urandom(5 * 4096),
        "shard-3.bin": os.urandom(4096 + 1),
        "sub/tokenizer.json": b'{"a": 1}\n' * 700,
        "sub/vocab.txt": b"a\nb\n",
        "empty.txt": b"",
        "readme.md": b"# model\n",
    }
    for name, data in files.items():
        (d / name).write_bytes(data)
    bundle = sign(cli, d, key, tmp_path / "model.bundle.json", chunk="4K")
    return d, bundle, files


def test_sparse_checkout_exits_0_and_lists_absent_files(cli, signed_tree, key):
    d, bundle, files = signed_tree
    names = sorted(files)
    deleted = names[::2]
    for name in deleted:
        (d / name).unlink()
    r = cli("verify", str(d), str(bundle), "--key", pub(key), "--sparse")
    assert r.returncode == 0, r.stdout + r.stderr
    st = statuses(r.stdout)
    assert {n: st[n] for n in deleted} == dict.fromkeys(deleted, "~")
    assert {n: st[n] for n in names if n not in deleted} == {n: "=" for n in names if n not in deleted}
    assert "absent" in r.stderr

    r = cli("verify", str(d), str(bundle), "--key", pub(key), "--sparse", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["ok"] is True
    by_path = {f["path"]: f["status"] for f in doc["files"]}
    assert {by_path[n] for n in deleted} == {merkle.Status.ABSENT.label}
    assert {by_path[n] for n in names if n not in deleted} == {merkle.Status.OK.label}

    r = cli("verify", str(d), str(bundle), "--key", pub(key))  # not sparse: missing is a failure
    assert r.returncode == 1, r.stdout + r.stderr
    st = statuses(r.stdout)
    assert {n: st[n] for n in deleted} == dict.fromkeys(deleted, "-")

    remaining = "shard-2.bin" if "shard-2.bin" not in deleted else "shard-3.bin"
    flip(d / remaining, 4096)
    r = cli("verify", str(d), str(bundle), "--key", pub(key), "--sparse")
    assert r.returncode == 1, r.stdout + r.stderr
    st = statuses(r.stdout)
    assert st[remaining] == "*"
    assert {n: st[n] for n in deleted} == dict.fromkeys(deleted, "~")


def test_files_checks_only_the_named_files(cli, signed_tree, key):
    d, bundle, files = signed_tree
    flip(d / "shard-1.bin", 0)  # not asked about: must not matter
    (d / "readme.md").unlink()  # not asked about either
    r = cli("verify", str(d), str(bundle), "--key", pub(key), "--files", "shard-2.bin", "sub/vocab.txt")
    assert r.returncode == 0, r.stdout + r.stderr
    assert statuses(r.stdout) == {"shard-2.bin": "=", "sub/vocab.txt": "="}

    r = cli("verify", str(d), str(bundle), "--key", pub(key), "--files", "shard-1.bin", "sub/vocab.txt")
    assert r.returncode == 1, r.stdout + r.stderr
    assert statuses(r.stdout) == {"shard-1.bin": "*", "sub/vocab.txt": "="}

    r = cli("verify", str(d), str(bundle), "--key", pub(key), "--files", "readme.md", "--sparse")
    assert r.returncode == 0, r.stdout + r.stderr
    assert statuses(r.stdout) == {"readme.md": "~"}


def test_files_with_a_name_not_in_the_manifest_is_an_error(cli, signed_tree, key):
    d, bundle, _ = signed_tree
    (d / "stray.bin").write_bytes(b"not signed")
    for name in ("nope.bin", "stray.bin"):
        r = cli("verify", str(d), str(bundle), "--key", pub(key), "--files", "config.json", name)
        assert r.returncode != 0, r.stdout + r.stderr
        assert name in r.stdout + r.stderr
        assert "Traceback" not in r.stderr
        assert statuses(r.stdout).get("config.json") == "="


def test_one_file_outside_any_tree_is_checked_by_name(cli, signed_tree, key, tmp_path):
    d, bundle, files = signed_tree
    lone = tmp_path / "elsewhere" / "downloaded.bin"
    lone.parent.mkdir()
    lone.write_bytes(files["sub/tokenizer.json"])
    r = verify_file(cli, lone, bundle, key, "sub/tokenizer.json", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    names = sorted(files)  # manifest order is sorted by path
    assert doc["ok"] is True and doc["dataset_index"] == names.index("sub/tokenizer.json")
    # the audit path of that index in a tree of len(names) leaves
    _, _, _, levels = make_tree(len(names))
    assert doc["dataset_proof_hashes"] == len(rfc6962.inclusion_proof(levels, doc["dataset_index"]))
    flip(lone, 5000)
    r = verify_file(cli, lone, bundle, key, "sub/tokenizer.json")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "chunk 1" in r.stdout + r.stderr


# -- acceptance 2: byte ranges and repair in a file of many chunks -----------------


@pytest.fixture
def big_signed(cli, tmp_path, key):
    d = tmp_path / "tree"
    d.mkdir()
    data = os.urandom(4 * MiB)
    (d / "weights.bin").write_bytes(data)
    (d / "config.json").write_bytes(b"{}")
    bundle = sign(cli, d, key, tmp_path / "b.json", chunk="64K")
    return d, bundle, data


def test_acceptance_range_passes_and_fails_and_repair_names_the_chunk(cli, big_signed, key):
    d, bundle, data = big_signed
    f = d / "weights.bin"
    offset = 3 * MiB + 12345
    flip(f, offset)
    bad = offset // CS

    r = verify_file(cli, d, bundle, key, "weights.bin", "--range", "0:1M", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["ok"] is True and doc["bytes_read"] == MiB and doc["chunks"] == [0, MiB // CS]

    r = verify_file(cli, d, bundle, key, "weights.bin", "--range", f"{offset - 100}:{offset + 1}")
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"chunk {bad} " in r.stdout and f"chunk {bad} " in r.stderr
    r = verify_file(cli, d, bundle, key, "weights.bin", "--range", "2M:4M", "--json")
    assert r.returncode == 1, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["ok"] is False and f"chunk {bad} " in doc["error"]

    r = verify_file(cli, d, bundle, key, "weights.bin")  # the whole file
    assert r.returncode == 1

    r = verify_file(cli, d, bundle, key, "weights.bin", "--repair", "--json")
    assert r.returncode == 1, r.stdout + r.stderr
    plan = json.loads(r.stdout)
    assert plan["ok"] is False
    assert plan["bad_chunks"] == [bad] and plan["missing_chunks"] == []
    assert plan["chunks"] == {"good": 4 * MiB // CS - 1, "bad": 1, "missing": 0}
    assert plan["fetch"] == [{"start": bad * CS, "end": (bad + 1) * CS}]
    assert plan["size"] == plan["local_size"] == len(data)
    # the fetch range, put back, repairs the file
    with open(f, "r+b") as fh:
        fh.seek(bad * CS)
        fh.write(data[bad * CS : (bad + 1) * CS])
    r = verify_file(cli, d, bundle, key, "weights.bin", "--repair", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["fetch"] == []


def test_acceptance_at_real_size_sparse_256mib_file_with_1mib_chunks(cli, tmp_path, key):
    """A 256 MiB file (allocated sparse: written at a few offsets only) in the
    default 1 MiB chunks; one byte flipped at 3/4 of it.  The file that was
    signed is byte for byte the file on disk apart from that one byte, so
    the repair plan must name that chunk and nothing else."""
    d = tmp_path / "tree"
    d.mkdir()
    f = d / "model.bin"
    size = 256 * MiB
    fd = os.open(f, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        os.ftruncate(fd, size)
        for at in (0, 5 * MiB + 3, 100 * MiB, 192 * MiB, size - 70000):
            os.pwrite(fd, os.urandom(70000), at)
    finally:
        os.close(fd)
    bundle = sign(cli, d, key, tmp_path / "b.json", chunk="1M")
    offset = 192 * MiB + 4321
    flip(f, offset)
    bad = offset // MiB

    r = verify_file(cli, d, bundle, key, "model.bin", "--range", "0:1M", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["bytes_read"] == MiB
    r = verify_file(cli, d, bundle, key, "model.bin", "--range", f"{offset}:{offset + MiB}", "--json")
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"chunk {bad} " in json.loads(r.stdout)["error"]

    r = verify_file(cli, d, bundle, key, "model.bin", "--repair", "--json")
    assert r.returncode == 1, r.stdout + r.stderr
    plan = json.loads(r.stdout)
    assert plan["bad_chunks"] == [bad]
    assert plan["missing_chunks"] == [], "chunks of the signed file's own holes are reported missing"
    assert plan["fetch"] == [{"start": bad * MiB, "end": (bad + 1) * MiB}]


# -- repair plans --------------------------------------------------------------------


@pytest.fixture
def repair_case(cli, tmp_path, key):
    d = tmp_path / "tree"
    d.mkdir()
    data = os.urandom(10 * CS + 1000)  # 11 chunks, the last one short
    (d / "w.bin").write_bytes(data)
    bundle = sign(cli, d, key, tmp_path / "b.json", chunk="64K")
    return d, bundle, data


def repair(cli, d, bundle, key):
    r = verify_file(cli, d, bundle, key, "w.bin", "--repair", "--json")
    assert "Traceback" not in r.stderr
    return r.returncode, json.loads(r.stdout)


def test_repair_plan_of_a_good_file_is_ok(cli, repair_case, key):
    d, bundle, data = repair_case
    rc, plan = repair(cli, d, bundle, key)
    assert rc == 0 and plan["ok"] is True
    assert plan["chunks"] == {"good": 11, "bad": 0, "missing": 0} and plan["fetch"] == []
    r = verify_file(cli, d, bundle, key, "w.bin", "--repair")
    assert r.returncode == 0 and r.stdout.startswith("= w.bin")


def test_repair_plan_of_a_truncated_file_fetches_to_the_signed_size(cli, repair_case, key):
    d, bundle, data = repair_case
    cut = 4 * CS + CS // 2  # dies in the middle of chunk 4
    (d / "w.bin").write_bytes(data[:cut])
    rc, plan = repair(cli, d, bundle, key)
    assert rc == 1 and plan["ok"] is False
    assert plan["local_size"] == cut and plan["size"] == len(data)
    assert plan["missing_chunks"] == list(range(4, 11)) and plan["bad_chunks"] == []
    assert plan["chunks"] == {"good": 4, "bad": 0, "missing": 7}
    assert plan["fetch"] == [{"start": 4 * CS, "end": len(data)}]
    r = verify_file(cli, d, bundle, key, "w.bin", "--repair")
    assert r.returncode == 1
    assert f"fetch {4 * CS}-{len(data)}" in r.stdout.splitlines()


def test_repair_plan_of_a_file_with_a_hole(cli, repair_case, key):
    """Preallocated with truncate, chunks 0-1 and 5-10 written, 2-4 left a
    hole, chunk 6 only half written: chunks wholly in the hole are missing
    (the documented rule), the half-written one is read and is bad."""
    d, bundle, data = repair_case
    f = d / "w.bin"
    f.unlink()
    fd = os.open(f, os.O_WRONLY | os.O_CREAT)
    try:
        os.ftruncate(fd, len(data))
        os.pwrite(fd, data[: 2 * CS], 0)
        os.pwrite(fd, data[5 * CS : 6 * CS], 5 * CS)
        os.pwrite(fd, data[6 * CS : 6 * CS + CS // 2], 6 * CS)
        os.pwrite(fd, data[7 * CS :], 7 * CS)
    finally:
        os.close(fd)
    rc, plan = repair(cli, d, bundle, key)
    assert rc == 1 and plan["local_size"] == len(data)
    assert plan["missing_chunks"] == [2, 3, 4]
    assert plan["bad_chunks"] == [6]
    assert plan["fetch"] == [{"start": 2 * CS, "end": 5 * CS}, {"start": 6 * CS, "end": 7 * CS}]


def test_repair_plan_of_an_intact_file_signed_with_holes_is_ok(cli, tmp_path, key):
    """A file whose signed content has runs of zeros stored as holes: it is
    exactly what was signed (verify says so), so nothing is to be fetched."""
    d = tmp_path / "tree"
    d.mkdir()
    f = d / "w.bin"
    fd = os.open(f, os.O_WRONLY | os.O_CREAT)
    try:
        os.ftruncate(fd, 8 * CS)
        os.pwrite(fd, os.urandom(CS), 3 * CS)
    finally:
        os.close(fd)
    bundle = sign(cli, d, key, tmp_path / "b.json", chunk="64K")
    assert verify_file(cli, d, bundle, key, "w.bin").returncode == 0
    r = verify_file(cli, d, bundle, key, "w.bin", "--repair", "--json")
    plan = json.loads(r.stdout)
    assert (r.returncode, plan["missing_chunks"], plan["fetch"]) == (0, [], []), plan


def test_repair_plan_of_a_longer_than_signed_file(cli, repair_case, key):
    d, bundle, data = repair_case
    (d / "w.bin").write_bytes(data + b"trailing junk")
    rc, plan = repair(cli, d, bundle, key)
    assert rc == 1 and plan["ok"] is False
    assert plan["local_size"] == len(data) + len(b"trailing junk") and plan["size"] == len(data)
    assert plan["bad_chunks"] == [] and plan["missing_chunks"] == []  # the signed bytes are all there
    assert plan["fetch"] == []


def test_repair_plan_api_matches_the_cli(tmp_path, repair_case):
    d, _, data = repair_case
    m = merkle.build(d, chunk_size=CS)
    flip(d / "w.bin", 7 * CS)
    src = Counting(LocalFile(str(d / "w.bin")))
    try:
        plan = repair_plan(src, FileAuth.of(m, "w.bin"), str(d / "w.bin"))
    finally:
        src.close()
    assert plan.status == ("good",) * 7 + ("bad",) + ("good",) * 3
    assert plan.fetch == [(7 * CS, 8 * CS)]
    assert src.bytes_read == len(data)


# -- ranges read only their chunks --------------------------------------------------


@pytest.fixture
def counted(tmp_path):
    d = tmp_path / "t"
    d.mkdir()
    data = os.urandom(20 * CS + 777)
    (d / "f.bin").write_bytes(data)
    m = merkle.build(d, chunk_size=CS)
    auth = FileAuth.of(m, "f.bin")
    opened = []

    def check(offset, length):
        src = Counting(LocalFile(str(d / "f.bin")))
        opened.append(src)
        return src, verify_range(src, auth, offset, length)

    yield d, data, auth, check
    for s in opened:
        s.close()


@pytest.mark.parametrize(
    "offset,length,chunks",
    [
        (0, 1, [0]),
        (5 * CS + 100, 1, [5]),
        (CS - 1, 2, [0, 1]),  # straddles a boundary
        (3 * CS, CS, [3]),  # exactly one chunk
        (3 * CS - 1, CS + 2, [2, 3, 4]),
        (20 * CS + 5, 10, [20]),  # inside the short last chunk
        (20 * CS + 776, 1, [20]),  # the very last byte
        (2 * CS, 7 * CS + 3, list(range(2, 10))),
    ],
)
def test_range_reads_only_the_covering_chunks(counted, offset, length, chunks):
    d, data, auth, check = counted
    src, result = check(offset, length)
    expect = sum(min((i + 1) * CS, len(data)) - i * CS for i in chunks)
    assert src.bytes_read == expect
    assert result.bytes_read == expect
    assert (result.first_chunk, result.last_chunk) == (chunks[0], chunks[-1] + 1)


def test_range_check_names_the_bad_chunk_and_ignores_others(counted):
    d, data, auth, check = counted
    flip(d / "f.bin", 9 * CS + 5)
    src, result = check(0, 9 * CS)  # all good chunks
    assert src.bytes_read == 9 * CS
    with pytest.raises(ChunkError) as e:
        check(8 * CS, 3 * CS)
    assert e.value.chunk == 9 and e.value.path == "f.bin" and isinstance(e.value, IntegrityError)
    assert "chunk 9" in str(e.value)


def test_range_outside_the_file_or_empty_is_a_usage_error(counted):
    """A range past the signed size, or one of no bytes, is a question that
    cannot be asked (issue 14, item 11): a usage error, never a verdict."""
    d, data, auth, check = counted
    for offset, length in ((0, len(data) + 1), (len(data), 1), (len(data) + 5, 1), (-1, 3)):
        with pytest.raises(UsageError, match="outside"):
            check(offset, length)
    flip(d / "f.bin", 5)  # damaged: an empty range must not be called verified
    for offset, length in ((0, 0), (5 * CS, 0), (len(data), 0), (3, -1)):
        with pytest.raises(UsageError, match="no bytes"):
            check(offset, length)


# -- bad input on the command line ---------------------------------------------------


def test_range_outside_the_file_exits_2(cli, big_signed, key):
    """Past the signed size is a usage error (exit 2, no '*' line), also when
    the file on disk has another size: the question is wrong, not the file."""
    d, bundle, data = big_signed
    for damaged in (False, True):
        if damaged:
            (d / "weights.bin").write_bytes(data + b"x")
        for rng in (f"0:{len(data) + 1}", f"{len(data)}:{len(data) + 10}", "5M:6M"):
            r = verify_file(cli, d, bundle, key, "weights.bin", "--range", rng)
            assert r.returncode == 2, (rng, r.stdout, r.stderr)
            assert r.stdout == ""
            assert_one_line_error(r, "weights.bin", "outside the file's")
    r = verify_file(cli, d, bundle, key, "weights.bin", "--range", "10:5")
    assert r.returncode == 2  # not a range at all: a usage error


def test_empty_range_is_a_usage_error(cli, big_signed, key):
    """`--range 0:0` on a damaged file printed '=' and 'chunks 0--1', exit 0."""
    d, bundle, data = big_signed
    flip(d / "weights.bin", 5)
    for rng in ("0:0", "1M:1M", f"{len(data)}:{len(data)}", ":0"):
        r = verify_file(cli, d, bundle, key, "weights.bin", "--range", rng)
        assert r.returncode == 2, (rng, r.stdout, r.stderr)
        assert r.stdout == "" and "empty" in r.stderr and "Traceback" not in r.stderr


def test_whole_empty_file_names_no_chunk(cli, signed_tree, key):
    d, bundle, _ = signed_tree
    r = verify_file(cli, d, bundle, key, "empty.txt")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("= empty.txt ") and "--1" not in r.stdout and "no chunks" in r.stdout
    (d / "empty.txt").write_bytes(b"x")
    r = verify_file(cli, d, bundle, key, "empty.txt")
    assert r.returncode == 1 and r.stdout.startswith("* empty.txt"), r.stdout + r.stderr


def test_tampered_sidecar_fails_a_multi_chunk_range(cli, big_signed, key):
    d, bundle, _ = big_signed
    sidecar = Path(str(bundle) + ".leaves")
    raw = bytearray(sidecar.read_bytes())
    raw[-5] ^= 0x01  # one leaf hash changed: it no longer rebuilds the signed root
    sidecar.write_bytes(bytes(raw))
    r = verify_file(cli, d, bundle, key, "weights.bin", "--range", "0:1K")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "warning" in r.stderr and "ignored" in r.stderr
    assert "sidecar" in r.stderr.splitlines()[-1]
    assert "Traceback" not in r.stderr
    # a one-chunk file needs no sidecar
    r = verify_file(cli, d, bundle, key, "config.json", "--range", "0:2")
    assert r.returncode == 0, r.stdout + r.stderr


def test_missing_sidecar_fails_a_multi_chunk_range(cli, big_signed, key):
    d, bundle, _ = big_signed
    Path(str(bundle) + ".leaves").unlink()
    for extra in (("--range", "0:1K"), ("--repair",), ()):
        r = verify_file(cli, d, bundle, key, "weights.bin", *extra)
        assert r.returncode == 1, (extra, r.stdout, r.stderr)
        assert "sidecar" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("change", ["shorter", "longer"])
def test_file_shorter_or_longer_than_signed_fails_a_range(cli, big_signed, key, change):
    d, bundle, data = big_signed
    f = d / "weights.bin"
    f.write_bytes(data[:-1] if change == "shorter" else data + b"\x00")
    r = verify_file(cli, d, bundle, key, "weights.bin", "--range", "0:1K")
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"signed {len(data)}" in r.stderr and "Traceback" not in r.stderr


def test_file_name_not_in_the_manifest_fails(cli, big_signed, key):
    d, bundle, _ = big_signed
    r = verify_file(cli, d, bundle, key, "nope.bin", "--range", "0:1")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "nope.bin" in r.stderr and "not listed" in r.stderr


# -- safetensors ---------------------------------------------------------------------


@pytest.fixture
def safetensors_model(cli, tmp_path, key):
    rng = np.random.default_rng(7)
    tensors = {
        "embed.weight": rng.standard_normal((512, 512), dtype=np.float32),  # 1 MiB
        "layer.0.weight": rng.standard_normal((256, 1024)).astype(np.float16),  # 512 KiB
        "layer.0.bias": rng.standard_normal(1000).astype(np.float64),
        "ids": rng.integers(0, 1 << 40, size=4096, dtype=np.int64),
        "mask": rng.integers(0, 2, size=(100, 100), dtype=np.uint8),
        "head.weight": rng.standard_normal((384, 1024), dtype=np.float32),  # 1.5 MiB
    }
    d = tmp_path / "model"
    d.mkdir()
    path = d / "model.safetensors"
    save_file(tensors, str(path), metadata={"format": "np"})
    bundle = sign(cli, d, key, tmp_path / "model.bundle.json", chunk="64K")
    return d, path, bundle, tensors


def st_offsets(path: Path) -> dict[str, tuple[int, int]]:
    """Absolute [start, end) of each tensor, from the format's own layout."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    return {
        k: (8 + n + v["data_offsets"][0], 8 + n + v["data_offsets"][1])
        for k, v in header.items()
        if k != "__metadata__"
    } | {"__header__": (0, 8 + n)}


def covering_bytes(a: int, b: int, size: int) -> int:
    return sum(min((i + 1) * CS, size) - i * CS for i in range(a // CS, -(-b // CS)))


def test_tensor_check_reads_far_less_than_the_file(cli, safetensors_model, key):
    d, path, bundle, tensors = safetensors_model
    size = path.stat().st_size
    assert size > 3 * MiB
    offsets = st_offsets(path)
    for name in ("layer.0.bias", "mask", "embed.weight"):
        r = verify_file(cli, d, bundle, key, "model.safetensors", "--tensor", name, "--json")
        assert r.returncode == 0, r.stdout + r.stderr
        doc = json.loads(r.stdout)
        a, b = offsets[name]
        assert doc["tensor"] == name and doc["shape"] == list(tensors[name].shape)
        assert [doc["offset"], doc["offset"] + doc["length"]] == [a, b]
        # the header's chunks (plus at most one chunk of read-ahead) and the tensor's chunks
        limit = covering_bytes(0, offsets["__header__"][1], size) + CS + covering_bytes(a, b, size)
        assert covering_bytes(a, b, size) <= doc["bytes_read_total"] <= limit
        assert doc["bytes_read_total"] < size // 2


def test_tensor_check_after_damage_elsewhere(cli, safetensors_model, key):
    d, path, bundle, tensors = safetensors_model
    offsets = st_offsets(path)
    a, b = offsets["head.weight"]
    flip(path, (a + b) // 2)
    bad = ((a + b) // 2) // CS
    for name in ("layer.0.bias", "embed.weight", "ids"):
        ta, tb = offsets[name]
        assert not ta // CS <= bad < -(-tb // CS)  # shares no chunk with the damage
        r = verify_file(cli, d, bundle, key, "model.safetensors", "--tensor", name)
        assert r.returncode == 0, (name, r.stdout, r.stderr)
    r = verify_file(cli, d, bundle, key, "model.safetensors", "--tensor", "head.weight")
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"chunk {bad} " in r.stderr and "Traceback" not in r.stderr


def test_damaged_header_fails_every_tensor(cli, safetensors_model, key):
    d, path, bundle, _ = safetensors_model
    flip(path, 20)  # inside the JSON header
    r = verify_file(cli, d, bundle, key, "model.safetensors", "--tensor", "ids")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "chunk 0 " in r.stderr


def test_missing_tensor_name_is_a_clear_error(cli, safetensors_model, key):
    d, path, bundle, _ = safetensors_model
    for name in ("no.such.tensor", "__metadata__"):
        r = verify_file(cli, d, bundle, key, "model.safetensors", "--tensor", name)
        assert r.returncode != 0, r.stdout + r.stderr
        assert "Traceback" not in r.stderr
        assert "no tensor" in r.stderr and repr(name) in r.stderr


def test_a_tensor_question_that_cannot_be_answered_is_not_a_damaged_file(cli, safetensors_model, key):
    """Like a range past the signed size: a tensor name the (verified) header
    does not hold, or a signed file that is no safetensors file, is exit 2
    with one line, never '*' (differs) and exit 1."""
    d, path, bundle, _ = safetensors_model
    (d / "config.json").write_bytes(b'{"not": "safetensors"}')
    bundle = sign(cli, d, key, bundle.with_name("again.json"))
    for name, tensor, message in (
        ("model.safetensors", "no.such.tensor", "no tensor 'no.such.tensor'"),
        ("config.json", "x", "not a safetensors file"),
    ):
        r = verify_file(cli, d, bundle, key, name, "--tensor", tensor, "--no-store")  # re-signed: not a rollback
        assert r.returncode == 2, (name, r.stdout, r.stderr)
        assert r.stdout == ""
        assert_one_line_error(r, message)


def test_tensor_through_merkle_open_equals_what_safetensors_loads(safetensors_model, key):
    from merkle.format.tensors import read_tensor

    d, path, bundle, tensors = safetensors_model
    loaded = load_file(str(path))
    size = path.stat().st_size
    with merkle.open(path, bundle, name="model.safetensors", keys=[pub(key)]) as f:
        for name, arr in loaded.items():
            info, raw = read_tensor(f, name, size)
            assert raw == arr.tobytes() == tensors[name].tobytes()
            assert info.shape == arr.shape


def test_tensor_read_through_merkle_open_refuses_damage(safetensors_model, key):
    from merkle.format.tensors import read_tensor

    d, path, bundle, _ = safetensors_model
    offsets = st_offsets(path)
    a, b = offsets["layer.0.weight"]
    at = (a + b) // 2
    flip(path, at)
    loaded = {k: v.tobytes() for k, v in load_file(str(path)).items()}
    with merkle.open(path, bundle, name="model.safetensors", keys=[pub(key)]) as f:
        with pytest.raises(ChunkError) as e:
            read_tensor(f, "layer.0.weight", path.stat().st_size)
        assert e.value.chunk == at // CS and e.value.path == "model.safetensors"
        for name in ("ids", "head.weight"):  # in other chunks: still readable, and right
            ta, tb = offsets[name]
            assert not ta // CS <= at // CS < -(-tb // CS)
            info, raw = read_tensor(f, name, path.stat().st_size)
            assert raw == loaded[name]


def test_blake3_leaves_match_the_sidecar(safetensors_model):
    """The sidecar beside the bundle holds BLAKE3(0x00 || chunk) of every chunk."""
    d, path, bundle, _ = safetensors_model
    leaves = blake3_leaves(path.read_bytes(), CS)
    sidecar = Path(str(bundle) + ".leaves").read_bytes()
    assert sidecar[48:] == b"".join(leaves)


def test_tensor_check_ignores_damage_in_the_chunk_after_the_header(cli, tmp_path, key):
    """4K chunks: a small tensor that shares chunk 0 with the header passes
    `--tensor` although chunk 1 (another tensor's bytes only) is damaged:
    nothing but the header's and the tensor's chunks may be read."""
    d = tmp_path / "model"
    d.mkdir()
    path = d / "model.safetensors"
    save_file({"a.small": np.arange(10, dtype=np.float64), "b.big": np.ones(8192, dtype=np.float32)}, str(path))
    bundle = sign(cli, d, key, tmp_path / "b.json", chunk="4K")
    offsets = st_offsets(path)
    a, b = offsets["a.small"]
    assert b <= 4096 and offsets["__header__"][1] <= 4096  # header and a.small: chunk 0 only
    ba, bb = offsets["b.big"]
    assert ba < 4096 < 8192 < bb
    flip(path, 4096 + 10)  # chunk 1: bytes of b.big only
    r = verify_file(cli, d, bundle, key, "model.safetensors", "--tensor", "b.big")
    assert r.returncode == 1 and "chunk 1 " in r.stderr
    r = verify_file(cli, d, bundle, key, "model.safetensors", "--tensor", "a.small", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["bytes_read_total"] <= 2 * 4096


def test_file_proofs_are_for_the_signed_chunk_count(counted):
    """A root does not commit to its leaf count (a proof for n leaves can
    fold to the same root under another n of the same shape), so the count a
    range is checked under must come from the signed size: ceil(size / cs)."""
    d, data, auth, _ = counted
    n = -(-len(data) // CS)
    assert auth.chunks == n
    for first, last in ((0, 1), (3, 7), (n - 1, n), (0, n)):
        p = auth.proof(first, last)
        assert (p.size, p.start, p.end) == (n, first, last)
