"""merkle.open (issue 4, verified reads): a read-only binary file that checks
every chunk before handing out any of its bytes.  Real files, a real signed
bundle made by the `merkle` program, real fsspec file systems."""

import io
import os
import uuid
from pathlib import Path

import fsspec
import pytest
from support.cli import run_cli
from support.damage import flip

import merkle
from merkle.errors import ChunkError, IntegrityError, SignatureError, UsageError
from merkle.source.readers import Counting, LocalFile
from merkle.verifying.ranges import FileAuth
from merkle.verifying.reader import VerifiedReader

CS = 4096


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    """A tree, its plain manifest (+ sidecar) and a signed bundle (+ sidecar)."""
    base = tmp_path_factory.mktemp("reader")
    d = base / "tree"
    d.mkdir()
    files = {
        "data.bin": os.urandom(7 * CS + 321),  # 8 chunks, the last one short
        "exact.bin": os.urandom(3 * CS),  # ends on a chunk boundary
        "lines.txt": b"".join(b"line %05d %s\n" % (i, b"x" * (i % 53)) for i in range(700)),
        "small.txt": b"one chunk only\n",
        "empty.bin": b"",
    }
    for name, data in files.items():
        (d / name).write_bytes(data)
    manifest = base / "m.json"
    r = run_cli("build", str(d), "-o", str(manifest), "--chunk-size", "4K")
    assert r.returncode == 0, r.stderr
    key = base / "release"
    assert run_cli("keygen", "-o", str(key)).returncode == 0
    bundle = base / "b.json"
    r = run_cli(
        "build", str(d), "--sign", str(key), "--store", str(base / "store"), "-o", str(bundle), "--chunk-size", "4K"
    )
    assert r.returncode == 0, r.stderr
    return {"dir": d, "files": files, "manifest": manifest, "bundle": bundle, "pub": str(key) + ".pub", "key": key}


@pytest.fixture
def work(signed, tmp_path):
    """A private copy of the tree (tests damage files) next to the same documents."""
    d = tmp_path / "tree"
    d.mkdir()
    for name, data in signed["files"].items():
        (d / name).write_bytes(data)
    return dict(signed, dir=d)


KINDS = ["manifest", "bundle", "object"]


def opener(s, kind):
    def op(path, name, **kw):
        if kind == "manifest":
            return merkle.open(path, s["manifest"], name=name, **kw)
        if kind == "bundle":
            return merkle.open(path, s["bundle"], name=name, keys=[s["pub"]], **kw)
        return merkle.open(path, merkle.Manifest.load(s["manifest"]), name=name, **kw)

    return op


# -- reading ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_full_read_equals_the_file(signed, kind):
    op = opener(signed, kind)
    for name, data in signed["files"].items():
        with op(signed["dir"] / name, name) as f:
            assert f.read() == data
            assert f.read() == b""
            assert f.tell() == len(data)
        with op(signed["dir"] / name, name) as f:
            assert f.raw.readall() == data
        with op(signed["dir"] / name, name) as f:
            assert f.read(-1) == data


@pytest.mark.parametrize("kind", ["manifest", "bundle"])
@pytest.mark.parametrize("piece", [1, 7, CS - 1, CS, CS + 1, 10000])
def test_read_n_in_pieces(signed, kind, piece):
    data = signed["files"]["data.bin"]
    with opener(signed, kind)(signed["dir"] / "data.bin", "data.bin") as f:
        parts = []
        while part := f.read(piece):
            assert len(part) <= piece
            parts.append(part)
        assert b"".join(parts) == data
        assert f.read(0) == b""


def test_readinto(signed):
    data = signed["files"]["data.bin"]
    with opener(signed, "bundle")(signed["dir"] / "data.bin", "data.bin") as f:
        out = bytearray()
        buf = bytearray(3000)
        while n := f.readinto(buf):
            out += buf[:n]
        assert out == data
        f.seek(0)
        big = bytearray(len(data) + 100)
        assert f.readinto(big) == len(data)
        assert big[: len(data)] == data and big[len(data) :] == bytes(100)
        f.seek(CS)
        mv = memoryview(bytearray(2 * CS))
        assert f.readinto(mv) == 2 * CS and mv.tobytes() == data[CS : 3 * CS]


def test_seek_and_tell(signed):
    data = signed["files"]["data.bin"]
    with opener(signed, "manifest")(signed["dir"] / "data.bin", "data.bin") as f:
        assert f.seekable() and f.readable() and not f.writable()
        assert f.seek(5000) == 5000 and f.tell() == 5000
        assert f.read(10) == data[5000:5010] and f.tell() == 5010
        assert f.seek(-10, io.SEEK_CUR) == 5000
        assert f.read(3) == data[5000:5003]
        assert f.seek(100, os.SEEK_CUR) == 5103
        assert f.read(5) == data[5103:5108]
        assert f.seek(-5, io.SEEK_END) == len(data) - 5
        assert f.read() == data[-5:]
        assert f.seek(0, io.SEEK_END) == len(data) and f.read(1) == b""
        assert f.seek(len(data) + 1000) == len(data) + 1000 and f.read(10) == b""
        assert f.seek(0) == 0 and f.read(4) == data[:4]
        with pytest.raises((ValueError, OSError)):
            f.seek(-1)
        with pytest.raises((ValueError, OSError)):
            f.seek(-len(data) - 1, io.SEEK_END)
        assert f.read(4) == data[4:8]  # a refused seek does not move


def test_iteration_and_readline(signed):
    data = signed["files"]["lines.txt"]
    lines = data.splitlines(keepends=True)
    assert len(data) > 4 * CS
    with opener(signed, "bundle")(signed["dir"] / "lines.txt", "lines.txt") as f:
        assert list(f) == lines
    with opener(signed, "manifest")(signed["dir"] / "lines.txt", "lines.txt") as f:
        assert f.readline() == lines[0]
        assert f.readline() == lines[1]
        assert f.readlines() == lines[2:]
        assert f.readline() == b""


def test_with_closes(signed):
    f = opener(signed, "bundle")(signed["dir"] / "data.bin", "data.bin")
    with f:
        assert not f.closed
        f.read(10)
    assert f.closed and f.raw.closed
    with pytest.raises(ValueError):
        f.read(1)
    with pytest.raises(ValueError):
        f.raw.readinto(bytearray(1))


def test_reads_across_chunk_boundaries(signed):
    data = signed["files"]["data.bin"]
    with opener(signed, "manifest")(signed["dir"] / "data.bin", "data.bin") as f:
        for boundary in range(CS, len(data), CS):
            for start in (boundary - CS - 1, boundary - 2, boundary - 1, boundary, boundary + 1):
                for length in (1, 2, 3, CS - 1, CS, CS + 1, 2 * CS + 5, len(data)):
                    if start < 0:
                        continue
                    f.seek(start)
                    assert f.read(length) == data[start : start + length], (start, length)


def test_empty_and_one_chunk_files(signed, tmp_path):
    with opener(signed, "bundle")(signed["dir"] / "empty.bin", "empty.bin") as f:
        assert f.read() == b"" and f.read(10) == b""
    # a one-chunk file needs no sidecar
    m = tmp_path / "m.json"
    m.write_bytes(Path(signed["manifest"]).read_bytes())
    with merkle.open(signed["dir"] / "small.txt", m, name="small.txt") as f:
        assert f.read() == signed["files"]["small.txt"]


def test_sequential_small_reads_check_each_chunk_once(signed):
    """Reading through a counting source: each chunk is read exactly once for
    a whole sequential read, and a 1-byte read reads one chunk."""
    data = signed["files"]["data.bin"]
    path = str(signed["dir"] / "data.bin")
    auth = FileAuth.of(merkle.Manifest.load(signed["manifest"]), "data.bin")
    src = Counting(LocalFile(path))
    with io.BufferedReader(VerifiedReader(src, auth), buffer_size=1000) as f:
        out = b"".join(iter(lambda: f.read(100), b""))
    assert out == data and src.bytes_read == len(data)
    src = Counting(LocalFile(path))
    with VerifiedReader(src, auth) as raw:
        raw.seek(5 * CS + 17)
        assert raw.read(1) == data[5 * CS + 17 : 5 * CS + 18]
        assert src.bytes_read == CS
        raw.seek(5 * CS + 1000)
        assert raw.read(7) == data[5 * CS + 1000 : 5 * CS + 1007]
        assert src.bytes_read == CS  # the cached chunk is not read again
        raw.seek(7 * CS)
        assert raw.read() == data[7 * CS :]
        assert src.bytes_read == CS + 321


# -- damage -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["manifest", "bundle"])
def test_flipped_byte_raises_chunk_error_naming_file_and_chunk(work, kind):
    data = work["files"]["data.bin"]
    path = work["dir"] / "data.bin"
    flip(path, 3 * CS + 100)
    op = opener(work, kind)
    with op(path, "data.bin") as f:
        with pytest.raises(ChunkError) as e:
            f.read()
    err = e.value
    assert isinstance(err, IntegrityError)
    assert err.chunk == 3 and err.path == "data.bin"
    assert "data.bin" in str(err) and "chunk 3" in str(err)
    # any read touching chunk 3 raises, however small
    for start, length in ((3 * CS - 10, 11), (3 * CS, 1), (3 * CS + 100, 1), (4 * CS - 1, 1), (0, len(data))):
        with op(path, "data.bin") as f:
            f.seek(start)
            with pytest.raises(ChunkError) as e:
                f.read(length)
            assert e.value.chunk == 3


GOOD_READS = [(0, 3 * CS), (CS + 5, CS), (3 * CS - 10, 10), (2 * CS, CS), (4 * CS, None), (4 * CS + 7, 100), (0, 100)]


def _check_good_reads(open_file, data):
    failed = []
    for start, length in GOOD_READS:
        with open_file() as f:
            f.seek(start)
            try:
                got = f.read(length) if length is not None else f.read()
            except ChunkError as e:
                failed.append((start, length, f"chunk {e.chunk}"))
                continue
            want = data[start : start + length] if length is not None else data[start:]
            assert got == want, (start, length)
    assert not failed, f"reads wholly inside good chunks raised (start, length, error): {failed}"


@pytest.mark.parametrize("kind", ["manifest", "bundle"])
def test_reads_wholly_inside_good_chunks_work_next_to_a_bad_chunk(work, kind):
    """Chunk 3 is damaged; every read below asks only for bytes of chunks
    0-2 or 4-7, each on a freshly opened file."""
    data = work["files"]["data.bin"]
    path = work["dir"] / "data.bin"
    flip(path, 3 * CS + 100)
    _check_good_reads(lambda: opener(work, kind)(path, "data.bin"), data)


def test_raw_reads_wholly_inside_good_chunks_work_next_to_a_bad_chunk(work):
    """The same reads on the unbuffered verified reader."""
    data = work["files"]["data.bin"]
    path = work["dir"] / "data.bin"
    flip(path, 3 * CS + 100)
    auth = FileAuth.of(merkle.Manifest.load(work["manifest"]), "data.bin")
    _check_good_reads(lambda: VerifiedReader(LocalFile(str(path)), auth), data)


def test_good_reads_near_a_bad_chunk_with_default_1mib_chunks(tmp_path):
    """The default chunk size: a tensor-sized read inside chunk 0 of a file
    whose chunk 1 is damaged must return its (good) bytes."""
    d = tmp_path / "t"
    d.mkdir()
    data = os.urandom(3 << 20)
    (d / "w.bin").write_bytes(data)
    m = merkle.build(d)
    assert m.chunk_size == 1 << 20
    flip(d / "w.bin", (1 << 20) + 5)
    with merkle.open(d / "w.bin", m, name="w.bin") as f:
        f.seek(100_000)
        assert f.read(100_000) == data[100_000:200_000]


def test_no_bytes_of_the_bad_chunk_reach_the_caller(work):
    data = work["files"]["data.bin"]
    path = work["dir"] / "data.bin"
    flip(path, 3 * CS + 100)
    bad = path.read_bytes()[3 * CS : 4 * CS]
    with opener(work, "bundle")(path, "data.bin") as f:
        # buffered readinto with a buffer larger than the file: BufferedReader
        # keeps asking past the short read of the good chunks, and raises
        buf = bytearray(b"\xaa" * (len(data) + 10))
        with pytest.raises(ChunkError):
            f.readinto(buf)
        region = bytes(buf[3 * CS : 4 * CS])
        assert region in (b"\xaa" * CS, bytes(CS)), "bytes of the bad chunk were left in the caller's buffer"
        assert bad[90:110] not in bytes(buf)
        # straight into the caller's buffer (the raw reader, a whole chunk): wiped
        raw = f.raw
        raw.seek(3 * CS)
        buf = bytearray(b"\xaa" * CS)
        with pytest.raises(ChunkError):
            raw.readinto(buf)
        assert buf == bytes(CS)
        # through the cache (a partial chunk): nothing copied
        raw.seek(3 * CS + 50)
        buf = bytearray(b"\xaa" * 100)
        with pytest.raises(ChunkError):
            raw.readinto(buf)
        assert buf == b"\xaa" * 100
        # a multi-chunk raw read: the good chunk comes back alone (short read),
        # the bad one is not in the buffer, and reading on raises
        raw.seek(2 * CS)
        buf = bytearray(b"\xaa" * (2 * CS))
        assert raw.readinto(buf) == CS
        assert bytes(buf[:CS]) == data[2 * CS : 3 * CS]
        assert bytes(buf[CS:]) in (b"\xaa" * CS, bytes(CS))
        with pytest.raises(ChunkError):
            raw.readinto(buf)


def test_flipped_byte_in_the_short_last_chunk(work):
    data = work["files"]["data.bin"]
    path = work["dir"] / "data.bin"
    flip(path, len(data) - 1)
    with opener(work, "bundle")(path, "data.bin") as f:
        f.seek(7 * CS + 5)
        with pytest.raises(ChunkError) as e:
            f.read(1)
        assert e.value.chunk == 7
    auth = FileAuth.of(merkle.Manifest.load(work["manifest"]), "data.bin")
    with VerifiedReader(LocalFile(str(path)), auth) as raw:
        assert raw.read(7 * CS) == data[: 7 * CS]  # unbuffered: no read-ahead into chunk 7
        with pytest.raises(ChunkError):
            raw.read(1)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("change", ["shorter", "longer", "empty"])
def test_file_shorter_or_longer_than_signed_raises_at_open(work, kind, change):
    data = work["files"]["data.bin"]
    path = work["dir"] / "data.bin"
    path.write_bytes({"shorter": data[:-1], "longer": data + b"\x00", "empty": b""}[change])
    with pytest.raises(IntegrityError) as e:
        opener(work, kind)(path, "data.bin")
    assert f"signed {len(data)}" in str(e.value) and "data.bin" in str(e.value)


def test_file_shortened_after_open_raises(work):
    data = work["files"]["data.bin"]
    path = work["dir"] / "data.bin"
    with opener(work, "manifest")(path, "data.bin") as f:
        assert f.read(10) == data[:10]
        with open(path, "r+b") as g:
            g.truncate(5 * CS + 7)
        f.seek(5 * CS)
        with pytest.raises(IntegrityError) as e:
            f.read(CS)
        assert "data.bin" in str(e.value)


# -- URLs --------------------------------------------------------------------------------


@pytest.fixture
def memory_fs():
    fs = fsspec.filesystem("memory")
    root = f"/merkle-test-{uuid.uuid4().hex}"
    yield fs, root
    if fs.exists(root):
        fs.rm(root, recursive=True)


@pytest.mark.parametrize("kind", ["manifest", "bundle"])
def test_memory_url(signed, memory_fs, kind):
    fs, root = memory_fs
    data = signed["files"]["data.bin"]
    fs.pipe(f"{root}/data.bin", data)
    url = f"memory://{root}/data.bin"
    op = opener(signed, kind)
    with op(url, "data.bin") as f:
        assert f.read() == data
        f.seek(CS - 3)
        assert f.read(10) == data[CS - 3 : CS + 7]
    damaged = bytearray(data)
    damaged[5 * CS + 1] ^= 0x80
    fs.pipe(f"{root}/data.bin", bytes(damaged))
    with op(url, "data.bin") as f:
        f.seek(5 * CS + 1)
        with pytest.raises(ChunkError) as e:
            f.read(1)
        assert e.value.chunk == 5 and e.value.path == "data.bin"
    with op(url, "data.bin") as f:
        assert f.read(CS) == data[:CS]  # far from the damage
    fs.pipe(f"{root}/data.bin", data[:-5])
    with pytest.raises(IntegrityError, match=f"signed {len(data)}"):
        op(url, "data.bin")


def test_file_url(signed):
    data = signed["files"]["lines.txt"]
    url = "file://" + str(signed["dir"] / "lines.txt")
    with opener(signed, "bundle")(url, "lines.txt") as f:
        assert f.read() == data
    with opener(signed, "manifest")(url, "lines.txt") as f:
        f.seek(-100, io.SEEK_END)
        assert f.read() == data[-100:]


# -- trust ---------------------------------------------------------------------------------


def test_bundle_needs_keys(signed):
    path = signed["dir"] / "data.bin"
    with pytest.raises(UsageError, match="key"):
        merkle.open(path, signed["bundle"], name="data.bin")
    with pytest.raises(UsageError, match="key"):
        merkle.open(path, signed["bundle"], name="data.bin", keys=[], cas=[])


def test_keys_with_an_unsigned_manifest_is_a_usage_error(signed):
    """reader._trusted_manifest means to say 'an unsigned manifest cannot be
    checked with keys' (as the CLI does), not to parse the manifest as a
    broken bundle."""
    with pytest.raises(UsageError, match="unsigned manifest"):
        merkle.open(signed["dir"] / "data.bin", signed["manifest"], name="data.bin", keys=[signed["pub"]])


def test_bundle_with_the_wrong_key_is_refused(signed, tmp_path):
    other = tmp_path / "other"
    assert run_cli("keygen", "-o", str(other)).returncode == 0
    with pytest.raises(SignatureError):
        merkle.open(signed["dir"] / "data.bin", signed["bundle"], name="data.bin", keys=[str(other) + ".pub"])


def test_tampered_signed_bundle_is_refused(signed, tmp_path):
    import base64
    import json

    doc = json.loads(Path(signed["bundle"]).read_bytes())
    payload = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))
    # point the signed statement at other content: the signature no longer holds
    payload["predicate"]["manifest"]["root"] = "00" * 32
    doc["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()
    b = tmp_path / "b.json"
    b.write_text(json.dumps(doc))
    with pytest.raises(IntegrityError):
        merkle.open(signed["dir"] / "data.bin", b, name="data.bin", keys=[signed["pub"]])


def test_name_not_in_the_manifest(signed):
    with pytest.raises(IntegrityError, match="not listed"):
        opener(signed, "bundle")(signed["dir"] / "data.bin", "nope.bin")


def test_multi_chunk_file_needs_the_sidecar(signed, tmp_path):
    b = tmp_path / "b.json"
    b.write_bytes(Path(signed["bundle"]).read_bytes())  # no b.json.leaves beside it
    with pytest.raises(IntegrityError, match="sidecar"):
        merkle.open(signed["dir"] / "data.bin", b, name="data.bin", keys=[signed["pub"]])
    leaves = Path(str(signed["bundle"]) + ".leaves").read_bytes()
    damaged = bytearray(leaves)
    damaged[-1] ^= 1
    Path(str(b) + ".leaves").write_bytes(bytes(damaged))
    with pytest.warns(UserWarning, match="ignored"):
        with pytest.raises(IntegrityError, match="sidecar"):
            merkle.open(signed["dir"] / "data.bin", b, name="data.bin", keys=[signed["pub"]])
    Path(str(b) + ".leaves").write_bytes(leaves)
    with merkle.open(signed["dir"] / "data.bin", b, name="data.bin", keys=[signed["pub"]]) as f:
        assert f.read() == signed["files"]["data.bin"]
