"""`merkle sync SOURCE DEST BUNDLE --key PUB` from a local folder: only the
chunks DEST lacks are fetched, every one checked before it is written, files
take their names only once they verify whole, an interrupted or failed sync
resumes, and neither SOURCE, DEST nor a planted partial file can make sync
write bytes nobody signed or write outside DEST (docs/sync.md)."""

from __future__ import annotations

import os
import stat

import pytest
from support.cli import assert_one_line_error, statuses
from support.sync import run_sync, same_tree

from merkle.syncing.sync import STAGE, partial_name

CS = 64 * 1024


@pytest.fixture
def signed(cli, tmp_path):
    """SOURCE (three files, two of many chunks, one in a subfolder), a key
    pair and a bundle of SOURCE signed with 64 KiB chunks."""
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "model-1.bin").write_bytes(os.urandom(16 * CS))
    (src / "sub" / "model-2.bin").write_bytes(os.urandom(10 * CS + 123))
    (src / "README.md").write_text("# a model\n")
    r = cli("keygen", "-o", str(tmp_path / "k"))
    assert r.returncode == 0, r.stderr
    bundle = tmp_path / "b.json"
    r = cli("build", str(src), "--chunk-size", "64K", "--sign", str(tmp_path / "k"), "-o", str(bundle), "-q")
    assert r.returncode == 0, r.stderr
    return src, bundle, str(tmp_path / "k.pub")


def test_an_empty_dest_is_filled_and_verified(cli, signed, tmp_path):
    src, bundle, key = signed
    dest = tmp_path / "dest"
    r, doc = run_sync(cli, src, dest, bundle, key)
    assert r.returncode == 0, r.stderr
    assert doc["ok"] and doc["sync"]["written"] == 3 and doc["sync"]["in_place"] == 0
    assert doc["sync"]["fetched_bytes"] == sum(p.stat().st_size for p in src.rglob("*") if p.is_file())
    assert same_tree(src, dest)
    assert cli("verify", str(dest), str(bundle), "--key", key).returncode == 0
    r, doc = run_sync(cli, src, dest, bundle, key)  # again: nothing to do
    assert r.returncode == 0 and doc["sync"]["fetched_bytes"] == 0 and doc["sync"]["in_place"] == 3


def test_only_the_changed_chunks_are_fetched(cli, signed, tmp_path):
    src, bundle, key = signed
    dest = tmp_path / "dest"
    assert run_sync(cli, src, dest, bundle, key)[0].returncode == 0
    # Damage chunk 3 and chunk 11 of model-1.bin in DEST, cut model-2.bin after 4 chunks.
    with open(dest / "model-1.bin", "r+b") as f:
        for chunk in (3, 11):
            f.seek(chunk * CS + 100)
            f.write(b"\0garbage\0")
    with open(dest / "sub" / "model-2.bin", "r+b") as f:
        f.truncate(4 * CS)
    before = os.stat(dest / "README.md").st_ino
    r, doc = run_sync(cli, src, dest, bundle, key)
    assert r.returncode == 0, r.stderr
    s = doc["sync"]
    assert s["in_place"] == 1 and s["written"] == 2
    assert s["fetched_chunks"] == 2 + 7
    assert s["fetched_bytes"] == 2 * CS + 6 * CS + 123
    assert s["copied_bytes"] == 14 * CS + 4 * CS
    assert same_tree(src, dest)
    assert os.stat(dest / "README.md").st_ino == before  # a file in place is not rewritten


@pytest.mark.parametrize(
    "damage",
    ["append", "truncate", "same-size-replace", "removed", "empty", "byte-flip-last-chunk"],
)
def test_every_kind_of_damage_ends_verified(cli, signed, tmp_path, damage):
    src, bundle, key = signed
    dest = tmp_path / "dest"
    assert run_sync(cli, src, dest, bundle, key)[0].returncode == 0
    target = dest / "sub" / "model-2.bin"
    if damage == "append":
        with open(target, "ab") as f:
            f.write(b"more")
    elif damage == "truncate":
        os.truncate(target, 3 * CS + 5)
    elif damage == "same-size-replace":
        target.write_bytes(os.urandom(target.stat().st_size))
    elif damage == "removed":
        target.unlink()
    elif damage == "empty":
        target.write_bytes(b"")
    else:
        data = bytearray(target.read_bytes())
        data[-1] ^= 1
        target.write_bytes(bytes(data))
    r, doc = run_sync(cli, src, dest, bundle, key)
    assert r.returncode == 0, r.stderr
    assert same_tree(src, dest)
    assert doc["sync"]["written"] == 1
    if damage in ("append", "byte-flip-last-chunk"):
        assert doc["sync"]["fetched_bytes"] == 123  # only the last, short chunk
    assert not (dest / STAGE).exists()


def test_extra_files_fail_unless_allowed_or_deleted(cli, signed, tmp_path):
    src, bundle, key = signed
    dest = tmp_path / "dest"
    (dest / "old").mkdir(parents=True)
    (dest / "old" / "model-0.bin").write_bytes(b"an old shard")
    r, doc = run_sync(cli, src, dest, bundle, key)
    assert r.returncode == 1 and {f["path"]: f["status"] for f in doc["files"]}["old/model-0.bin"] == "extra"
    assert run_sync(cli, src, dest, bundle, key, "--allow-extra")[0].returncode == 0
    r, doc = run_sync(cli, src, dest, bundle, key, "--delete")
    assert r.returncode == 0 and doc["sync"]["deleted"] == ["old/model-0.bin"]
    assert not (dest / "old" / "model-0.bin").exists()
    assert cli("verify", str(dest), str(bundle), "--key", key).returncode == 0


def test_a_source_with_bytes_nobody_signed_never_reaches_dest(cli, signed, tmp_path):
    """SOURCE changed after signing: the chunk is refused before it is
    written, the file in DEST keeps its old bytes, and once SOURCE is right
    again the next sync resumes with what the first one checked."""
    src, bundle, key = signed
    dest = tmp_path / "dest"
    dest.mkdir()
    good = (src / "model-1.bin").read_bytes()
    (dest / "model-1.bin").write_bytes(b"old version")
    bad = bytearray(good)
    bad[9 * CS + 7] ^= 0xFF
    (src / "model-1.bin").write_bytes(bytes(bad))
    r, doc = run_sync(cli, src, dest, bundle, key)
    assert r.returncode == 1
    failed = {f["path"]: f for f in doc["files"]}["model-1.bin"]
    assert failed["status"] == "mismatch" and f"{9 * CS}-{10 * CS - 1}" in failed["detail"]
    assert (dest / "model-1.bin").read_bytes() == b"old version"
    partial = dest / STAGE / partial_name("model-1.bin")
    assert partial.exists() and stat.S_IMODE(partial.stat().st_mode) == 0o600
    (src / "model-1.bin").write_bytes(good)
    r, doc = run_sync(cli, src, dest, bundle, key)
    assert r.returncode == 0, r.stderr
    assert doc["sync"]["resumed_bytes"] > 0
    assert doc["sync"]["fetched_bytes"] + doc["sync"]["resumed_bytes"] == 16 * CS
    assert (dest / "model-1.bin").read_bytes() == good and not partial.exists()


def test_a_planted_partial_is_never_written_through(cli, signed, tmp_path):
    """A partial's name in the staging folder is a link to, or a second name
    of, a file of the user's, or holds wrong bytes: sync replaces the name,
    never writes into what it points at, and takes no unchecked byte from it."""
    src, bundle, key = signed
    dest = tmp_path / "dest"
    (dest / STAGE).mkdir(parents=True, mode=0o700)
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious" * 1000)
    os.symlink(victim, dest / STAGE / partial_name("model-1.bin"))
    os.link(victim, dest / STAGE / partial_name("README.md"))
    (dest / STAGE / partial_name("sub/model-2.bin")).write_bytes(os.urandom(10 * CS + 123))  # wrong bytes
    r, doc = run_sync(cli, src, dest, bundle, key)
    assert r.returncode == 0, r.stderr
    assert victim.read_bytes() == b"precious" * 1000
    assert same_tree(src, dest)
    assert doc["sync"]["resumed_bytes"] == 0
    assert not (dest / STAGE).exists()


def test_a_second_sync_of_the_same_folder_is_refused_while_one_runs(cli, signed, tmp_path):
    import fcntl

    src, bundle, key = signed
    dest = tmp_path / "dest"
    (dest / STAGE).mkdir(parents=True, mode=0o700)
    fd = os.open(dest / STAGE, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as a running sync holds it
        r = cli("sync", str(src), str(dest), str(bundle), "--key", key)
    finally:
        os.close(fd)
    assert r.returncode == 2
    assert_one_line_error(r, "another merkle sync is writing this folder")
    assert not (dest / "README.md").exists()


def test_a_link_in_dest_is_never_followed(cli, signed, tmp_path):
    src, bundle, key = signed
    dest = tmp_path / "dest"
    dest.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, dest / "sub")
    os.symlink(tmp_path / "elsewhere.md", dest / "README.md")
    r, doc = run_sync(cli, src, dest, bundle, key)
    assert r.returncode == 2, r.stderr
    by_path = {f["path"]: f for f in doc["files"]}
    assert by_path["sub/model-2.bin"]["status"] == "error" and "link" in by_path["sub/model-2.bin"]["detail"]
    assert by_path["README.md"]["status"] == "error"
    assert by_path["model-1.bin"]["status"] == "ok"
    assert list(outside.iterdir()) == [] and not (tmp_path / "elsewhere.md").exists()


def test_a_fifo_in_source_is_one_line_not_a_hang(cli, signed, tmp_path):
    src, bundle, key = signed
    (src / "README.md").unlink()
    os.mkfifo(src / "README.md")
    r, doc = run_sync(cli, src, tmp_path / "dest", bundle, key)
    assert r.returncode == 2
    readme = {f["path"]: f for f in doc["files"]}["README.md"]
    assert readme["status"] == "error" and "fifo" in readme["detail"].lower()


def test_a_bundle_from_another_key_writes_nothing(cli, signed, tmp_path):
    src, bundle, _ = signed
    assert cli("keygen", "-o", str(tmp_path / "other")).returncode == 0
    dest = tmp_path / "dest"
    r = cli("sync", str(src), str(dest), str(bundle), "--key", str(tmp_path / "other.pub"))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert not dest.exists()


def test_without_the_sidecar_a_changed_file_is_fetched_whole_and_checked_whole(cli, signed, tmp_path):
    src, bundle, key = signed
    dest = tmp_path / "dest"
    assert run_sync(cli, src, dest, bundle, key)[0].returncode == 0
    os.rename(f"{bundle}.leaves", tmp_path / "aside.leaves")
    with open(dest / "model-1.bin", "r+b") as f:
        f.write(b"changed")
    r, doc = run_sync(cli, src, dest, bundle, key)
    assert r.returncode == 0, r.stderr
    assert "no leaf sidecar" in doc["sync"]["notes"][0]
    assert doc["sync"]["fetched_bytes"] == 16 * CS and same_tree(src, dest)
    # A source that lies is still caught, by the whole-file check, and leaves nothing behind.
    with open(dest / "model-1.bin", "r+b") as f:
        f.write(b"changed")
    with open(src / "model-1.bin", "r+b") as f:
        f.seek(5 * CS)
        f.write(b"unsigned")
    r, doc = run_sync(cli, src, dest, bundle, key)
    assert r.returncode == 1
    assert {f["path"]: f["status"] for f in doc["files"]}["model-1.bin"] == "mismatch"
    assert (dest / "model-1.bin").read_bytes()[:7] == b"changed"
    assert not (dest / STAGE).exists()


def test_bad_input_is_one_line(cli, signed, tmp_path):
    src, bundle, key = signed
    r = cli("sync", str(tmp_path / "nowhere"), str(tmp_path / "dest"), str(bundle), "--key", key)
    assert r.returncode == 2
    assert_one_line_error(r, "nowhere")
    r = cli("sync", str(src), str(tmp_path / "dest"), str(tmp_path / "missing.json"), "--key", key)
    assert r.returncode == 2
    assert_one_line_error(r, "missing.json")
    (tmp_path / "afile").write_text("x")
    r = cli("sync", str(src), str(tmp_path / "afile"), str(bundle), "--key", key)
    assert r.returncode == 2
    assert_one_line_error(r, "afile")


def test_an_older_bundle_is_refused_after_a_newer(cli, signed, tmp_path):
    """Rollback: DEST is never brought back to an older signed version once
    a newer one was accepted (the attestation store, as verify)."""
    src, _, key = signed
    k = str(tmp_path / "k")
    for version in ("1", "2"):
        out = tmp_path / f"v{version}.json"
        r = cli("build", str(src), "--chunk-size", "64K", "--sign", k, "--version", version, "-o", str(out), "-q")
        assert r.returncode == 0, r.stderr
    dest = tmp_path / "dest"
    assert cli("sync", str(src), str(dest), str(tmp_path / "v2.json"), "--key", key).returncode == 0
    r = cli("sync", str(src), str(dest), str(tmp_path / "v1.json"), "--key", key)
    assert r.returncode == 1 and "version 1" in r.stderr and "version 2" in r.stderr, r.stderr
    assert set(statuses(cli("verify", str(dest), str(tmp_path / "v2.json"), "--key", key).stdout).values()) == {"="}
