"""Checkpoints: an interrupted build resumes, when asked, without re-hashing
what was finished, and never reuses a digest for an object that changed, for
other parameters, or from state another user could have written."""

import base64
import hashlib
import hmac
import json
import os
import stat
from pathlib import Path

import pytest
from support.cli import assert_one_line_error

import merkle
from merkle.errors import CheckpointWarning, SourceError, UsageError
from merkle.hashing.checkpoint import Checkpoint, hash_resumable, hash_stream_resumable, job
from merkle.hashing.files import hash_paths
from merkle.source.walk import walk, walk_stream
from merkle.tree.hasher import tree_hasher
from merkle.verifying.tree import checkpoint_job

OTHER_UID = 12345  # tests run as root: os.chown hands a file to "another user"


def make(d, count=6):
    d.mkdir()
    for i in range(count):
        (d / f"f{i}.bin").write_bytes(os.urandom(5000 + i))
    return d


def failing_tree(d):
    """Six top-level files, hashed first, and zz/ walked last: `fail_once`
    puts a refused link there."""
    make(d)
    (d / "zz").mkdir()
    (d / "zz" / "inner.bin").write_bytes(os.urandom(3000))
    return d


def private_dir() -> Path:
    return Path(os.environ["MERKLE_CHECKPOINTS"])  # tests/conftest.py: one per test


def kept() -> list[Path]:
    return sorted(private_dir().glob("*.checkpoint"))


def a_job(d, chunk_size=4096):
    return job("test", str(d), None, algorithm="blake3", chunk_size=chunk_size)


def fail_once(root, **params) -> Path:
    """Run a build of `root` that fails after hashing its top-level files;
    returns the checkpoint it kept."""
    before = set(kept())
    link = root / "zz" / "link"
    os.symlink("/etc/passwd", link)  # out of the root: refused even with follow_symlinks
    with pytest.raises(SourceError, match="zz/link"):
        merkle.build(root, checkpoint=True, **params)
    os.unlink(link)
    [cp] = set(kept()) - before
    return cp


def records(cp: Path) -> dict[str, dict]:
    """What a checkpoint holds, read as anyone who can read it would (no key):
    after the header, one line per flush listing [path, identity, root,
    leaves] per object."""
    lines = [line.partition(b" ")[2] for line in cp.read_bytes().split(b"\n") if line]
    fields = ("path", "identity", "root", "leaves")
    return {r[0]: dict(zip(fields, r, strict=True)) for block in map(json.loads, lines[1:]) for r in block}


def forge(cp: Path, key: bytes, replace: dict[str, bytes], identities: dict[str, list] | None = None) -> None:
    """Append a line, MACed under `key`, that records the paths in `replace`
    with the root and leaves of other bytes (and the identity in
    `identities`): what whoever holds the key (or owns the directory, with a
    key of their own) could do.  A later record of a path wins; the lines
    already there stay."""
    lines = [line for line in cp.read_bytes().split(b"\n") if line]
    header = json.loads(lines[0].partition(b" ")[2])
    bind = b"merkle-checkpoint-v3\0" + hashlib.sha256(json.dumps(header["job"], sort_keys=True).encode()).digest()
    forged = []
    for path, record in records(cp).items():
        if path in replace:
            other = cp.parent / "forged.tmp"
            other.write_bytes(replace[path])
            fake = hash_paths([str(other)], header["job"]["algorithm"], header["job"]["chunk_size"])[0]
            other.unlink()
            identity = (identities or {}).get(path, record["identity"])
            forged.append([path, identity, fake.root.hex(), base64.b64encode(fake.leaves).decode()])
    data = json.dumps(forged).encode()
    lines.append(hmac.digest(key, bind + data, "sha256").hex().encode() + b" " + data)
    cp.write_bytes(b"\n".join(lines) + b"\n")


# -- resuming is explicit, counted, and reuses only unchanged objects ------------


def test_resume_hashes_only_what_was_not_finished(tmp_path):
    d = make(tmp_path / "d")
    h = tree_hasher("blake3")
    files = walk(d).files
    state = Checkpoint.open(a_job(d), resume=False)
    hash_resumable(files[:4], h, 4096, state)
    state.keep()  # "interrupted" after four files
    [cp] = kept()
    assert json.loads(cp.read_bytes().split(b"\n")[0].partition(b" ")[2])["format"] == "merkle-checkpoint-v3"
    assert stat.S_IMODE(cp.stat().st_mode) == 0o600 and stat.S_IMODE(private_dir().stat().st_mode) == 0o700
    progress = merkle.Progress()
    state = Checkpoint.open(a_job(d), resume=True)
    digests = hash_resumable(files, h, 4096, state, progress=progress)
    assert progress.bytes == sum(f.size for f in files[4:])  # only the two unfinished files were read
    assert (progress.resumed_files, progress.resumed_bytes) == (4, sum(f.size for f in files[:4]))
    assert [d.root for d in digests] == [d.root for d in hash_resumable(files, h, 4096, None)]
    state.discard()
    assert kept() == []


def test_resumed_digests_are_the_fresh_ones_for_every_shape(tmp_path):
    """Empty, one-chunk (leaves are the root: written "-") and multi-chunk files come back from a checkpoint with
    exactly the root and leaves a fresh hash gives (an empty file's leaves are none, not its root)."""
    d = tmp_path / "d"
    d.mkdir()
    (d / "empty").write_bytes(b"")
    (d / "one").write_bytes(os.urandom(4096))
    (d / "many").write_bytes(os.urandom(3 * 4096 + 1))
    h = tree_hasher("blake3")
    files = walk(d).files
    state = Checkpoint.open(a_job(d), resume=False)
    fresh = hash_resumable(files, h, 4096, state)
    state.keep()
    [cp] = kept()
    assert {p: r["leaves"] for p, r in records(cp).items()}["one"] == "-"
    progress = merkle.Progress()
    state = Checkpoint.open(a_job(d), resume=True)
    resumed = hash_resumable(files, h, 4096, state, progress=progress)
    assert progress.resumed_files == 3 and progress.bytes == 0
    assert [(x.path, x.root, x.leaves) for x in resumed] == [(x.path, x.root, x.leaves) for x in fresh]
    assert [x.leaves for x in resumed if x.path == "empty"] == [b""]
    state.discard()


def test_a_failed_build_keeps_its_checkpoint_and_only_resume_reads_it(tmp_path):
    d = failing_tree(tmp_path / "d")
    cp = fail_once(d)
    assert set(records(cp)) == {f"f{i}.bin" for i in range(6)}
    progress = merkle.Progress()
    manifest = merkle.build(d, checkpoint=True, progress=progress)  # no resume: nothing read, all hashed
    assert progress.resumed_files == 0 and progress.bytes == manifest.total_size
    assert kept() == []  # a build that succeeds deletes its checkpoint
    fail_once(d)
    progress = merkle.Progress()
    resumed = merkle.build(d, resume=True, progress=progress)
    assert resumed.root == manifest.root
    assert progress.resumed_files == 6 and progress.resumed_bytes == sum(5000 + i for i in range(6))
    assert progress.bytes == 3000 and kept() == []


def test_changed_file_is_not_reused(tmp_path):
    d = make(tmp_path / "d")
    h = tree_hasher("sha256")
    state = Checkpoint.open(a_job(d), resume=False)
    hash_resumable(walk(d).files, h, 4096, state)
    state.keep()
    (d / "f2.bin").write_bytes(b"changed since the checkpoint")
    progress = merkle.Progress()
    digests = hash_resumable(walk(d).files, h, 4096, Checkpoint.open(a_job(d), resume=True), progress=progress)
    assert progress.bytes == len(b"changed since the checkpoint") and progress.resumed_files == 5
    assert digests[2].root == merkle.hash_file(d / "f2.bin", "sha256", 4096)


def test_a_file_that_changed_while_hashed_is_not_recorded(tmp_path):
    d = make(tmp_path / "d")
    _, directories = walk_stream(d)

    def groups():
        for group in directories:
            (d / group[2].path).write_bytes(b"rewritten")  # listed, then rewritten before it is hashed
            yield group

    state = Checkpoint.open(a_job(d), resume=False)
    digests = hash_stream_resumable(groups(), tree_hasher("blake3"), 4096, state)
    state.keep()
    [bad] = [dg for dg in digests if dg.error is not None]
    [cp] = kept()
    assert bad.path == "f2.bin" and sorted(records(cp)) == ["f0.bin", "f1.bin", "f3.bin", "f4.bin", "f5.bin"]


def test_torn_lines_are_skipped(tmp_path):
    d = make(tmp_path / "d")
    files = walk(d).files
    state = Checkpoint.open(a_job(d), resume=False)
    hash_resumable(files, tree_hasher("blake3"), 4096, state)
    state.keep()
    [cp] = kept()
    with open(cp, "ab") as f:
        f.write(b'0123abcd [["f0.bin", [1, 2')  # killed mid-write
    progress = merkle.Progress()
    digests = hash_resumable(
        files, tree_hasher("blake3"), 4096, Checkpoint.open(a_job(d), resume=True), progress=progress
    )
    assert progress.bytes == 0 and progress.resumed_files == len(files)
    assert all(dg.error is None for dg in digests)


def test_one_run_of_a_job_at_a_time(tmp_path):
    d = make(tmp_path / "d")
    first = Checkpoint.open(a_job(d), resume=False)
    with pytest.warns(CheckpointWarning, match="another merkle run of the same job"):
        assert Checkpoint.open(a_job(d), resume=True) is None
    first.discard()
    Checkpoint.open(a_job(d), resume=True).discard()


def test_a_checkpoint_path_is_refused(tmp_path):
    d = make(tmp_path / "d")
    with pytest.raises(UsageError, match="private per-user directory"):
        merkle.build(d, checkpoint=str(tmp_path / "m.checkpoint"))
    with pytest.raises(UsageError, match="private per-user directory"):
        merkle.verify(d, merkle.build(d), checkpoint=str(tmp_path / "m.checkpoint"))


# -- records are bound to their job and authenticated --------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"chunk_size": 8192},
        {"algorithm": "sha256"},
        {"exclude": ["f5.bin"]},
        {"default_excludes": False},
        {"follow_symlinks": True},
        "root",
    ],
)
def test_a_checkpoint_of_another_build_is_not_reused(tmp_path, change):
    """A checkpoint made with other parameters, or over another root holding
    the very same inodes, is not used: not under this build's file name, and
    not its lines spliced into this build's own checkpoint (each line's MAC
    binds the job)."""
    d = failing_tree(tmp_path / "d")
    other, params = d, {"chunk_size": 4096}
    if change == "root":  # hard links: same inodes, same identities, under another root
        other = tmp_path / "e"
        (other / "zz").mkdir(parents=True)
        for p in ["zz/inner.bin", *(f"f{i}.bin" for i in range(6))]:
            os.link(d / p, other / p)
    else:
        params_other = {**params, **change}
    mine = fail_once(d, **params)
    theirs = fail_once(other, **(params if change == "root" else params_other))
    assert records(mine) and mine != theirs
    options = params if change == "root" else params_other
    header = theirs.read_bytes().split(b"\n")[0]
    spliced = header + b"\n" + b"\n".join(mine.read_bytes().split(b"\n")[1:])
    for i, planted in enumerate((mine.read_bytes(), spliced)):
        if i:
            assert fail_once(other, **options) == theirs  # the resume before succeeded and deleted it
        theirs.write_bytes(planted)
        progress = merkle.Progress()
        manifest = merkle.build(other, resume=True, progress=progress, **options)
        assert progress.resumed_files == 0 and progress.bytes == manifest.total_size


@pytest.mark.parametrize("by", ["the user (the same user is trusted)", "anyone without the key"])
def test_a_record_needs_the_users_key(tmp_path, by):
    d = failing_tree(tmp_path / "d")
    real = merkle.build(d).root
    cp = fail_once(d)
    mine = by.startswith("the user")
    forge(cp, (private_dir() / "key").read_bytes() if mine else os.urandom(32), {"f2.bin": os.urandom(5002)})
    progress = merkle.Progress()
    manifest = merkle.build(d, resume=True, progress=progress)
    assert progress.resumed_files == 6  # the real records, or the user's forged one
    if mine:  # the boundary: what the user's own key authenticates is used (and proves forge() is right)
        assert manifest.root != real
    else:  # the line under another key is not read: the real record of f2.bin stands
        assert manifest.root == real


# -- nothing another user could write is read -----------------------------------


def _link_dir() -> None:
    real = private_dir().with_name(private_dir().name + "-real")
    os.rename(private_dir(), real)
    os.symlink(real, private_dir())


def _link_file(name: str) -> None:
    target = private_dir().parent / (private_dir().name + "-" + name)
    os.rename(private_dir() / name, target)
    os.symlink(target, private_dir() / name)


UNSAFE = {
    "directory owned by another user": (lambda cp: os.chown(private_dir(), OTHER_UID, -1), "owned by uid 12345"),
    "directory writable by its group": (lambda cp: os.chmod(private_dir(), 0o770), "written by other users"),
    "directory writable by all (sticky)": (lambda cp: os.chmod(private_dir(), 0o1777), "written by other users"),
    "directory is a symbolic link": (lambda cp: _link_dir(), "symbolic link"),
    "checkpoint owned by another user": (lambda cp: os.chown(cp, OTHER_UID, -1), "owned by uid 12345"),
    "checkpoint writable by others": (lambda cp: os.chmod(cp, 0o666), "written by other users"),
    "checkpoint is a symbolic link": (lambda cp: _link_file(cp.name), "symbolic link"),
    "key owned by another user": (lambda cp: os.chown(private_dir() / "key", OTHER_UID, -1), "owned by uid 12345"),
    "key readable by others": (lambda cp: os.chmod(private_dir() / "key", 0o644), "read or written by other"),
    "key is a symbolic link": (lambda cp: _link_file("key"), "symbolic link"),
}


@pytest.mark.parametrize("case", sorted(UNSAFE))
def test_a_planted_checkpoint_is_refused(tmp_path, case):
    """Records forged with the key (read from, or planted in, a place another
    user can reach): the build warns, resumes nothing and hashes the bytes."""
    d = failing_tree(tmp_path / "d")
    real = merkle.build(d).root
    cp = fail_once(d)
    forge(cp, (private_dir() / "key").read_bytes(), {"f2.bin": os.urandom(5002)})
    mutate, reason = UNSAFE[case]
    mutate(cp)
    progress = merkle.Progress()
    with pytest.warns(CheckpointWarning, match=reason):
        manifest = merkle.build(d, resume=True, progress=progress)
    assert progress.resumed_files == 0 and manifest.root == real


# -- the command line ----------------------------------------------------------------


@pytest.mark.parametrize("resume", [False, True])
def test_a_record_planted_beside_the_output_is_not_signed(cli, tmp_path, resume):
    """The issue's example: a v1 record with the root of other bytes of the
    same size, planted at OUT.checkpoint.  The build hashes the real bytes;
    the attacker's bytes do not verify."""
    key = tmp_path / "k"
    assert cli("keygen", "-o", str(key)).returncode == 0
    d = tmp_path / "d"
    d.mkdir()
    (d / "w.bin").write_bytes(os.urandom(5000))
    evil = os.urandom(5000)
    (tmp_path / "evil.bin").write_bytes(evil)
    fake = hash_paths([str(tmp_path / "evil.bin")])[0]
    st = os.stat(d / "w.bin")
    out = tmp_path / "b.bundle"
    with open(str(out) + ".checkpoint", "w") as f:
        f.write(json.dumps({"format": "merkle-checkpoint-v1", "algorithm": "blake3", "chunk_size": 1 << 20}) + "\n")
        f.write(
            json.dumps(
                {
                    "path": "w.bin",
                    "identity": [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns],
                    "root": fake.root.hex(),
                    "leaves": base64.b64encode(fake.leaves).decode(),
                }
            )
            + "\n"
        )
    r = cli("build", str(d), "--sign", str(key), "-o", str(out), *(["--resume"] if resume else []))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[0] == merkle.build(d).root.hex()
    if resume:
        assert "--resume: 0 of 1 files (0 bytes) taken from a checkpoint" in r.stderr
    (d / "w.bin").write_bytes(evil)
    r = cli("verify", str(d), str(out), "--key", str(key) + ".pub")
    assert r.returncode == 1, r.stdout + r.stderr


def test_cli_resume_is_explicit_visible_and_leaves_nothing_beside_the_output(cli, tmp_path):
    d = failing_tree(tmp_path / "d")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    m = out_dir / "m.json"

    def fail() -> None:
        for name in os.listdir(out_dir):  # the last run's manifest and sidecar
            os.unlink(out_dir / name)
        os.symlink("../f0.bin", d / "zz" / "link")
        r = cli("build", str(d), "-o", str(m))
        assert r.returncode == 2 and "symbolic link refused" in r.stderr
        os.unlink(d / "zz" / "link")
        assert os.listdir(out_dir) == [] and len(kept()) == 1  # kept in the private directory only

    fail()
    r = cli("build", str(d), "-o", str(m), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["resumed"] is None and kept() == []
    fail()
    r = cli("build", str(d), "-o", str(m), "--resume")
    assert r.returncode == 0, r.stderr
    top = sum(5000 + i for i in range(6))
    assert f"merkle: --resume: 6 of 7 files ({top} bytes) taken from a checkpoint" in r.stderr
    assert sorted(os.listdir(out_dir)) == ["m.json", "m.json.leaves"] and kept() == []
    fail()
    r = cli("build", str(d), "-o", str(m), "--resume", "--json")
    assert json.loads(r.stdout)["resumed"] == {"files": 6, "bytes": top}
    assert json.loads(m.read_text())["root"] == merkle.build(d).root.hex()


def test_cli_build_resumes_after_a_refused_fifo(cli, tmp_path):
    d = make(tmp_path / "d", 8)
    os.mkfifo(d / "zz-pipe")
    m = tmp_path / "m.json"
    r = cli("build", str(d), "-o", str(m), "--chunk-size", "4K", timeout=30)
    assert r.returncode == 2 and not m.exists()
    os.unlink(d / "zz-pipe")
    (d / "late.bin").write_bytes(b"x" * 10)
    r = cli("build", str(d), "-o", str(m), "--chunk-size", "4K", "--resume")
    assert r.returncode == 0, r.stderr
    assert kept() == [] and not (tmp_path / "m.json.checkpoint").exists()
    assert json.loads(m.read_text())["root"] == merkle.build(d, chunk_size=4096).root.hex()


def _verify_checkpoint(d, manifest, count):
    """What an interrupted `merkle audit d m` leaves: its first `count` files."""
    state = Checkpoint.open(checkpoint_job(d, manifest), resume=False)
    hash_resumable(walk(d).files[:count], manifest.hasher, manifest.chunk_size, state)
    state.keep()
    [cp] = kept()
    return cp


def test_cli_audit_resumes_when_asked_and_refuses_a_checkpoint_path(cli, tmp_path):
    d = make(tmp_path / "d")
    manifest = merkle.build(d)
    manifest.save(tmp_path / "m.json")
    r = cli("audit", str(d), str(tmp_path / "m.json"), "--checkpoint", str(tmp_path / "cp"))
    assert r.returncode == 2
    assert_one_line_error(r, "--checkpoint FILE is gone", "--resume")
    _verify_checkpoint(d, manifest, 4)
    r = cli("audit", str(d), str(tmp_path / "m.json"), "--resume", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["resumed"] == {"files": 4, "bytes": sum(5000 + i for i in range(4))} and kept() == []
    _verify_checkpoint(d, manifest, 4)
    r = cli("audit", str(d), str(tmp_path / "m.json"))
    assert r.returncode == 0 and "--resume" not in r.stderr and kept() == []  # not read; the audit finished


def test_cli_audit_ignores_a_planted_checkpoint(cli, tmp_path):
    """A record claiming the signed root for a file that was changed, in a
    checkpoint directory another user owns: the audit still finds the change."""
    d = make(tmp_path / "d")
    manifest = merkle.build(d)
    manifest.save(tmp_path / "m.json")
    cp = _verify_checkpoint(d, manifest, 6)
    original = (d / "f2.bin").read_bytes()
    (d / "f2.bin").write_bytes(os.urandom(5002))
    st = os.stat(d / "f2.bin")
    identity = [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]
    forge(cp, (private_dir() / "key").read_bytes(), {"f2.bin": original}, {"f2.bin": identity})
    os.chown(private_dir(), OTHER_UID, -1)
    r = cli("audit", str(d), str(tmp_path / "m.json"), "--resume")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "* f2.bin" in r.stdout and "owned by uid 12345" in r.stderr
