"""`merkle sync` read as an attacker (and as an unlucky user): each test here
guards a promise of docs/sync.md (nothing unsigned under a manifest name, a
verdict that is the truth, ordinary use never failing falsely, every
failure one line or one per-file outcome) that an attacker review found
broken in the first version.  Where a docstring tells how it broke (three
descriptors per file, partials beside their files, a directory found only
after the fetch...), that is the design it replaced; the test asserts what
holds now.

Real files and the real program throughout (the `cli` fixture); the two
tests that must act while a sync runs start the same program with
subprocess.Popen, as `support.cli.run_cli` does, and watch DEST with
inotify, as another local user could."""

from __future__ import annotations

import ctypes
import os
import resource
import select
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.cli import assert_one_line_error
from support.sync import by_path, files_of, run_sync

from merkle.syncing.sync import STAGE, partial_name

CS = 64 * 1024


def keypair(cli, tmp_path: Path) -> tuple[str, str]:
    r = cli("keygen", "-o", str(tmp_path / "k"))
    assert r.returncode == 0, r.stderr
    return str(tmp_path / "k"), str(tmp_path / "k.pub")


def build(cli, src: Path, key: str, out: Path, *extra: str) -> Path:
    r = cli("build", str(src), "--chunk-size", "64K", "--sign", key, "-o", str(out), "-q", *extra)
    assert r.returncode == 0, r.stderr
    return out


def partials(root: Path) -> list[Path]:
    """Sync's staging folder and what is in it (gone after a sync that ended well)."""
    stage = root / STAGE
    return [stage, *stage.iterdir()] if stage.exists() else []


@pytest.fixture
def signed(cli, tmp_path):
    """SOURCE (a multi-chunk file, a file of exactly one chunk, an empty file,
    a file in a subfolder), a key pair and a bundle signed with 64 KiB chunks."""
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "model.bin").write_bytes(os.urandom(5 * CS + 17))
    (src / "exact.bin").write_bytes(os.urandom(CS))
    (src / "empty.txt").write_bytes(b"")
    (src / "sub" / "config.json").write_text('{"a": 1}\n')
    priv, pub = keypair(cli, tmp_path)
    return src, build(cli, src, priv, tmp_path / "b.json"), pub, priv


# 1. Ordinary use: a model of many files under the usual open-file limit.


def test_many_files_sync_under_the_usual_open_file_limit(cli, tmp_path):
    """Every file to write keeps its partial and its directory open from
    _prepare to _finish, and LocalSource keeps every source file open until
    the end: 3 descriptors per file.  At the common soft limit of 1024, a
    folder of 700 small files (a sharded checkpoint, a tokenizer folder, a
    dataset) fails whole: every file an error ("Too many open files"), none
    written, hundreds of partial files left, and the next run the same."""
    src = tmp_path / "src"
    src.mkdir()
    for i in range(700):
        (src / f"shard-{i:04d}.txt").write_bytes(os.urandom(100))
    priv, pub = keypair(cli, tmp_path)
    bundle = build(cli, src, priv, tmp_path / "b.json")
    dest = tmp_path / "dest"
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))  # the child inherits it
    try:
        r, doc = run_sync(cli, src, dest, bundle, pub)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    errors = [f for f in doc["files"] if f["status"] != "ok"]
    assert r.returncode == 0, (len(errors), errors[:2])
    assert doc["sync"]["written"] == 700
    assert files_of(dest) == files_of(src)
    assert not partials(dest)


# 2. A local user who can write in DEST races the rename.

IN_CLOSE_NOWRITE = 0x10
IN_CREATE = 0x100


def _inotify(directory: Path) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(os.O_CLOEXEC | os.O_NONBLOCK)
    assert fd >= 0, os.strerror(ctypes.get_errno())
    assert libc.inotify_add_watch(fd, os.fsencode(directory), IN_CLOSE_NOWRITE | IN_CREATE) >= 0
    return fd


def _events(fd: int, timeout: float):
    ready, _, _ = select.select([fd], [], [], timeout)
    if not ready:
        return
    data = os.read(fd, 1 << 16)
    at = 0
    while at < len(data):
        _wd, mask, _cookie, length = struct.unpack_from("iIII", data, at)
        name = data[at + 16 : at + 16 + length].rstrip(b"\0").decode()
        at += 16 + length
        yield mask, name


def _as_nobody(steps) -> list[str]:
    """Run `steps` (callables) in a child process as user nobody (65534),
    another local user of a shared DEST, one after another until one fails:
    for each, "ok" or "ErrorName:errno"."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop to nobody, try, report, exit without cleanup
        os.close(read)
        said = []
        try:
            os.setgid(65534)
            os.setuid(65534)
            for step in steps:
                try:
                    step()
                    said.append("ok")
                except OSError as e:
                    said.append(f"{type(e).__name__}:{e.errno}")
                    break
        finally:
            os.write(write, ",".join(said).encode())
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        said = f.read().decode()
    os.waitpid(pid, 0)
    return said.split(",") if said else []


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user (CI runs as root)")
def test_another_user_cannot_swap_a_checked_partial_before_its_rename(cli):
    """A shared, world-writable DEST: while a sync runs (a.bin's partial just
    made, b.bin's 160 MiB still to write and check) another user writes a
    file of their own in DEST (allowed: DEST is shared) and renames it onto
    a.bin's partial.  Partials live in DEST's staging folder, this user's alone
    (0700): the write succeeds, the rename is refused by the kernel
    (EACCES), and a.bin ends with the signed bytes.  Everything is under a
    folder every user can enter (pytest's own temporary folders are 0700,
    which would stop the other user before the staging folder is reached)."""
    import errno
    import shutil
    import tempfile

    top = Path(tempfile.mkdtemp(dir="/tmp", prefix="merkle-shared-"))
    try:
        os.chmod(top, 0o755)
        src = top / "src"
        src.mkdir()
        signed_a = os.urandom(9 << 20)
        (src / "a.bin").write_bytes(signed_a)
        with open(src / "b.bin", "wb") as f:
            for _ in range(40):
                f.write(os.urandom(4 << 20))  # 160 MiB: its check is the window
        priv, pub = keypair(cli, top)
        bundle = build(cli, src, priv, top / "b.json")
        dest = top / "dest"
        dest.mkdir()
        os.chmod(dest, 0o777)  # anyone may write in DEST itself
        (dest / STAGE).mkdir(mode=0o700)
        watch = _inotify(dest / STAGE)
        env = dict(os.environ, PYTHONWARNINGS="error::ResourceWarning")
        args = [sys.executable, "-m", "merkle", "sync", str(src), str(dest), str(bundle), "--key", pub, "--jobs", "1"]
        proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        attempts: list[list[str]] = []
        planted = dest / "planted"

        def write() -> None:
            planted.write_bytes(os.urandom(len(signed_a)))

        def rename() -> None:
            os.rename(planted, dest / STAGE / partial_name("a.bin"))

        try:
            deadline = time.monotonic() + 120
            while not attempts and proc.poll() is None and time.monotonic() < deadline:
                for mask, name in _events(watch, 0.5):
                    if mask & IN_CREATE and name == partial_name("a.bin") and not attempts:
                        attempts.append(_as_nobody([write, rename]))
            out, err = proc.communicate(timeout=120)
        finally:
            os.close(watch)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert "Traceback" not in err, err
        assert proc.returncode == 0, err
        assert attempts == [["ok", f"PermissionError:{errno.EACCES}"]], attempts  # wrote in DEST, could not swap
        assert (dest / "a.bin").read_bytes() == signed_a
    finally:
        shutil.rmtree(top, ignore_errors=True)


def test_a_staging_folder_of_another_user_or_a_link_is_refused(cli, signed, tmp_path):
    src, bundle, pub, _ = signed
    for kind in ("link", "other-user"):
        dest = tmp_path / f"dest-{kind}"
        dest.mkdir()
        elsewhere = tmp_path / f"elsewhere-{kind}"
        elsewhere.mkdir()
        if kind == "link":
            os.symlink(elsewhere, dest / STAGE)
        else:
            if os.geteuid() != 0:
                continue
            (dest / STAGE).mkdir(mode=0o700)
            os.chown(dest / STAGE, 65534, 65534)
        r = cli("sync", str(src), str(dest), str(bundle), "--key", pub)
        assert r.returncode == 2, r.stderr
        assert_one_line_error(r, STAGE)
        assert list(elsewhere.iterdir()) == [] and not (dest / "model.bin").exists()


# 3. A signed manifest that lists a file under another file's partial name.


def test_a_signed_file_in_the_staging_folder_is_an_error_not_a_partial(cli, tmp_path):
    """A folder where an interrupted sync left its staging folder is built
    and signed with it (a mirror re-signed after a failed sync).  Syncing
    that bundle, the signed file under .merkle-sync/ is one error line,
    never taken for a partial or removed, and every other file is right."""
    src = tmp_path / "src"
    (src / STAGE).mkdir(parents=True)
    (src / "a.bin").write_bytes(os.urandom(3 * CS + 5))
    (src / STAGE / partial_name("a.bin")).write_bytes(b"left by an interrupted sync, then signed\n")
    priv, pub = keypair(cli, tmp_path)
    bundle = build(cli, src, priv, tmp_path / "b.json")
    dest = tmp_path / "dest"
    for _ in range(2):
        r, doc = run_sync(cli, src, dest, bundle, pub)
        assert r.returncode == 2, r.stderr
        files = by_path(doc)
        assert files[f"{STAGE}/{partial_name('a.bin')}"]["status"] == "error"
        assert files["a.bin"]["status"] == "ok"
        assert (dest / "a.bin").read_bytes() == (src / "a.bin").read_bytes()


# 4. Things in the way of a file's name, and --delete.


def test_a_directory_in_the_way_is_found_before_anything_is_fetched(cli, signed, tmp_path):
    """The listing already shows a directory where model.bin goes, yet the
    whole file is fetched and checked, then refused at the rename (with "a a
    directory" in the message), and its checked partial is left behind."""
    src, bundle, pub, _ = signed
    dest = tmp_path / "dest"
    (dest / "model.bin").mkdir(parents=True)
    (dest / "model.bin" / "old").write_text("an old layout")
    r, doc = run_sync(cli, src, dest, bundle, pub, "--allow-extra")
    assert r.returncode == 2, r.stderr
    detail = by_path(doc)["model.bin"]["detail"]
    assert "a a " not in detail, detail
    assert doc["sync"]["fetched_bytes"] == (src / "exact.bin").stat().st_size + len(b'{"a": 1}\n'), doc["sync"]
    assert not partials(dest)


def test_delete_brings_a_dest_with_a_directory_where_a_file_goes_to_the_signed_version(cli, signed, tmp_path):
    """Upstream turned a folder into a file.  --delete removes the files in
    the old folder but not the folder, and the rename refuses the folder:
    every run fetches model.bin again, fails again, leaves its partial."""
    src, bundle, pub, _ = signed
    dest = tmp_path / "dest"
    (dest / "model.bin").mkdir(parents=True)
    (dest / "model.bin" / "shard-0").write_bytes(b"old layout")
    for _ in range(2):
        r, doc = run_sync(cli, src, dest, bundle, pub, "--delete")
    assert r.returncode == 0, [f for f in doc["files"] if f["status"] != "ok"]
    assert files_of(dest) == files_of(src)
    assert not partials(dest)


def test_delete_removes_an_extra_link_and_fifo_never_their_target(cli, signed, tmp_path):
    """--delete removes "files and links, never what a link
    points to", but links and FIFOs are listing problems, which _extras only
    reports: --delete never converges (exit 1 on every run)."""
    src, bundle, pub, _ = signed
    dest = tmp_path / "dest"
    assert run_sync(cli, src, dest, bundle, pub)[0].returncode == 0
    target = tmp_path / "precious.txt"
    target.write_bytes(b"not DEST's")
    os.symlink(target, dest / "old-link")
    os.mkfifo(dest / "old-fifo")
    r, doc = run_sync(cli, src, dest, bundle, pub, "--delete")
    assert target.read_bytes() == b"not DEST's"
    assert r.returncode == 0, [f for f in doc["files"] if f["status"] != "ok"]
    assert not os.path.lexists(dest / "old-link") and not os.path.lexists(dest / "old-fifo")


# 5. Write errors: one per-file outcome naming the file, not an unplaced line.


def test_a_file_too_large_to_write_is_a_per_file_outcome(cli, tmp_path):
    """ftruncate/pwrite/copy_file_range/fsync/rename errors (disk full, quota,
    file size limit, EIO) are OSError, which only MerkleError handlers see
    around _prepare, _fetch_all and _rename_into_place: the whole run stops
    with `merkle: error: File too large` (no path, no report), and the small
    file that fit is not written either."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "big.bin").write_bytes(os.urandom(40 * CS))
    (src / "small.txt").write_text("fits\n")
    priv, pub = keypair(cli, tmp_path)
    bundle = build(cli, src, priv, tmp_path / "b.json")
    dest = tmp_path / "dest"
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, hard))  # Python ignores SIGXFSZ: writes fail EFBIG
    try:
        r, doc = run_sync(cli, src, dest, bundle, pub)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert r.returncode == 2, r.stderr
    assert doc is not None, r.stderr
    files = by_path(doc)
    assert files["big.bin"]["status"] == "error", files
    assert files["small.txt"]["status"] == "ok", files
    assert (dest / "small.txt").read_text() == "fits\n"
    assert not (dest / "big.bin").exists()


# 6. Partials: left by one run, they must not break the next.


def test_a_stale_partial_of_a_file_no_longer_signed_is_not_an_extra(cli, tmp_path):
    """v1's sync of old.bin failed (SOURCE held bad bytes) and left its
    checked partial; v2 no longer lists old.bin.  Syncing v2, sync's own
    leftover is an EXTRA: exit 1 without --delete, on every run."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "model.bin").write_bytes(os.urandom(3 * CS))
    good = os.urandom(4 * CS)
    (src / "old.bin").write_bytes(good)
    priv, pub = keypair(cli, tmp_path)
    v1 = build(cli, src, priv, tmp_path / "v1.json", "--version", "1")
    (src / "old.bin").write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    dest = tmp_path / "dest"
    r, _ = run_sync(cli, src, dest, v1, pub)
    assert r.returncode == 1 and (dest / STAGE / partial_name("old.bin")).exists()
    (src / "old.bin").unlink()
    v2 = build(cli, src, priv, tmp_path / "v2.json", "--version", "2")
    r, doc = run_sync(cli, src, dest, v2, pub)
    assert r.returncode == 0, [f for f in doc["files"] if f["status"] != "ok"]


def test_resume_works_when_the_manifest_excludes_hidden_files(cli, tmp_path):
    """The DEST walk applies the manifest's exclusions, and `.*` (a common
    one: .cache/, .DS_Store) prunes every `.merkle-sync-…` partial: an
    interrupted or failed sync is never resumed (its partial is unlinked
    unread) and a partial beside a file now in place is never removed."""
    src = tmp_path / "src"
    src.mkdir()
    good = os.urandom(16 * CS)
    (src / "model.bin").write_bytes(good)
    priv, pub = keypair(cli, tmp_path)
    bundle = build(cli, src, priv, tmp_path / "b.json", "--exclude", ".*")
    bad = bytearray(good)
    bad[12 * CS] ^= 1
    (src / "model.bin").write_bytes(bytes(bad))
    dest = tmp_path / "dest"
    r, _ = run_sync(cli, src, dest, bundle, pub)
    assert r.returncode == 1 and (dest / STAGE / partial_name("model.bin")).exists()
    (src / "model.bin").write_bytes(good)
    r, doc = run_sync(cli, src, dest, bundle, pub)
    assert r.returncode == 0, r.stderr
    assert doc["sync"]["resumed_bytes"] == 15 * CS, doc["sync"]
    assert doc["sync"]["fetched_bytes"] == CS, doc["sync"]


# 7. Found by the read-through after the review.


def test_an_empty_folder_where_a_file_goes_is_found_before_the_fetch(cli, signed, tmp_path):
    """An empty folder (or a tree of empty folders) at a signed file's path
    holds nothing the walk lists: it is still found before anything is
    fetched, and --delete removes it and the file is synced."""
    src, bundle, pub, _ = signed
    dest = tmp_path / "dest"
    (dest / "model.bin" / "a" / "b").mkdir(parents=True)
    r, doc = run_sync(cli, src, dest, bundle, pub)
    assert r.returncode == 2, r.stderr
    assert "a directory is in the way" in by_path(doc)["model.bin"]["detail"]
    assert doc["sync"]["fetched_bytes"] == (src / "exact.bin").stat().st_size + len(b'{"a": 1}\n')
    r, doc = run_sync(cli, src, dest, bundle, pub, "--delete")
    assert r.returncode == 0, r.stderr
    assert files_of(dest) == files_of(src) and not partials(dest)


def test_a_folder_planted_in_the_staging_folder_does_not_stop_the_sync(cli, signed, tmp_path):
    src, bundle, pub, _ = signed
    dest = tmp_path / "dest"
    (dest / STAGE / "junk").mkdir(parents=True)
    (dest / STAGE / partial_name("model.bin")).mkdir()  # even under a partial's own name
    r, doc = run_sync(cli, src, dest, bundle, pub)
    assert "Traceback" not in r.stderr and doc is not None, r.stderr
    files = by_path(doc)
    assert files["model.bin"]["status"] == "error"  # its partial cannot be made: that file only
    assert all(files[p]["status"] == "ok" for p in ("exact.bin", "empty.txt", "sub/config.json"))


def test_a_blocked_file_keeps_its_partial_for_the_next_run(cli, signed, tmp_path):
    """A sync that failed for model.bin left its checked chunks; next run a
    link stands where model.bin goes (an error for it), and its partial must
    still be there for the run after, once the link is gone."""
    src, bundle, pub, _ = signed
    good = (src / "model.bin").read_bytes()
    bad = bytearray(good)
    bad[3 * CS] ^= 1
    (src / "model.bin").write_bytes(bytes(bad))
    dest = tmp_path / "dest"
    assert run_sync(cli, src, dest, bundle, pub)[0].returncode == 1
    partial = dest / STAGE / partial_name("model.bin")
    assert partial.exists()
    os.symlink("/etc/hostname", dest / "model.bin")
    r, doc = run_sync(cli, src, dest, bundle, pub)
    detail = by_path(doc)["model.bin"]["detail"]
    assert r.returncode != 0 and "--follow-symlinks" not in detail, detail
    assert partial.exists()
    (dest / "model.bin").unlink()
    (src / "model.bin").write_bytes(good)
    r, doc = run_sync(cli, src, dest, bundle, pub)
    assert r.returncode == 0, r.stderr
    assert doc["sync"]["resumed_bytes"] == 4 * CS + 17 and doc["sync"]["fetched_bytes"] == CS  # chunk 3 only


def test_the_whole_file_note_is_given_only_when_a_file_was_fetched_whole(cli, signed, tmp_path):
    src, bundle, pub, _ = signed
    os.rename(f"{bundle}.leaves", tmp_path / "aside.leaves")
    dest = tmp_path / "dest"
    r, doc = run_sync(cli, src, dest, bundle, pub)
    sidecar = lambda d: [n for n in d["sync"]["notes"] if "no leaf sidecar" in n]  # noqa: E731
    assert r.returncode == 0 and doc["sync"]["whole_files"] == 1 and len(sidecar(doc)) == 1, r.stderr
    r, doc = run_sync(cli, src, dest, bundle, pub)
    assert r.returncode == 0 and doc["sync"]["whole_files"] == 0 and sidecar(doc) == [], doc["sync"]
