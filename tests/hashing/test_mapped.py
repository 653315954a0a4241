"""Large files' runs of chunks through the extension's mapping
(ext/_merkle.c hash_range): the same leaves, roots and errors as the pure
reading path, and a file truncated under the mapping is "changed while
hashing", caught by the SIGBUS guard, never a crash, a wrong digest or a
signal the user sees.  A SIGBUS that is not a guarded fault still reaches
the handler that was there before (faulthandler, a Python handler, or the
default action)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from merkle._native import native
from merkle.hashing import engine
from merkle.source.walk import WalkedFile, identity, walk
from merkle.tree import rfc6962
from merkle.tree.hasher import tree_hasher

B3, SHA = tree_hasher("blake3"), tree_hasher("sha256")

if native is None:
    pytestmark = pytest.mark.skip(reason="the pure path (MERKLE_PURE, or no extension): nothing is mapped")
elif sys.platform != "linux":
    pytestmark = pytest.mark.skip(reason="the extension maps files on Linux only")


def leaves_of(hasher, data: bytes, chunk_size: int) -> bytes:
    return b"".join(hasher.leaf(data[i : i + chunk_size]) for i in range(0, len(data), chunk_size))


def shape(digests):
    return {d.path: (d.root, d.leaves, d.error and d.error.message) for d in digests}


# Units of 3 chunks of 1K start off page boundaries (3K, 6K, 9K): the mapping
# starts at the page below and skips to the unit.  Sizes sit around chunk and
# unit ends.
SMALL_CHUNKS = [3 * 1024 + 1, 4096, 6 * 1024 - 1, 6 * 1024, 6 * 1024 + 1, 9 * 1024 - 1, 65_536 + 7, 5 * 4096 + 1000]
# The real shape: 1M chunks, units of 8 chunks.
REAL_CHUNKS = [(8 << 20) + 1, 16 << 20, (17 << 20) - 1]


@pytest.mark.parametrize("hasher", [B3, SHA], ids=["blake3", "sha256"])
def test_mapped_units_equal_the_pure_engine(tmp_path, monkeypatch, hasher):
    local = engine.local_opener(False)

    def read(src):  # not the local opener itself: the engine reads what it opens
        return local(src)

    for chunk_size, unit_bytes, sizes in [(1024, 3 * 1024, SMALL_CHUNKS), (1 << 20, engine.UNIT_BYTES, REAL_CHUNKS)]:
        root = tmp_path / f"c{chunk_size}"
        (root / "sub").mkdir(parents=True)
        contents = {}
        for size in sizes:
            data = os.urandom(size)
            name = f"sub/f{size}.bin" if size % 2 else f"f{size}.bin"
            (root / name).write_bytes(data)
            contents[name] = data
        files = walk(root).files
        monkeypatch.setattr(engine, "UNIT_BYTES", unit_bytes)
        # mapped whichever BLAKE3 kernel this CPU runs
        monkeypatch.setattr(engine, "MAPPED_BLAKE3_TIERS", frozenset({"avx512", "avx2", "portable"}))
        assert all(rfc6962.chunk_count(f.size, chunk_size) > unit_bytes // chunk_size for f in files)  # all in units
        mapped = engine.hash_files(files, hasher, chunk_size, jobs=2)
        assert shape(mapped) == shape(engine.hash_files(files, hasher, chunk_size, jobs=2, opener=read))
        for d in mapped:
            assert d.error is None and d.leaves == leaves_of(hasher, contents[d.path], chunk_size), d.path


@pytest.mark.parametrize("hasher", [B3, SHA], ids=["blake3", "sha256"])
def test_mapped_units_fail_as_the_pure_engine_does(tmp_path, monkeypatch, hasher):
    """Large files that changed after listing, swapped for a link, a FIFO or nothing, or below a directory
    swapped for a link: the same words on both paths."""
    monkeypatch.setattr(engine, "UNIT_BYTES", 3 * 1024)
    monkeypatch.setattr(engine, "MAPPED_BLAKE3_TIERS", frozenset({"avx512", "avx2", "portable"}))
    root = tmp_path / "root"
    (root / "d").mkdir(parents=True)
    for name in ("changed", "link", "fifo", "gone", "d/below", "kept"):
        (root / name).write_bytes(os.urandom(10_000))
    files = walk(root).files
    (root / "changed").write_bytes(os.urandom(10_001))  # a new size: changed whatever the clock says
    (root / "link").unlink()
    (root / "link").symlink_to("kept")
    (root / "fifo").unlink()
    os.mkfifo(root / "fifo")
    (root / "gone").unlink()
    (root / "d").rename(tmp_path / "d")
    (root / "d").symlink_to(tmp_path / "d")
    local = engine.local_opener(False)
    mapped = engine.hash_files(files, hasher, 1024, jobs=2)
    read = engine.hash_files(files, hasher, 1024, jobs=2, opener=lambda src: local(src))
    assert shape(mapped) == shape(read)
    messages = {d.path: d.error and d.error.message for d in mapped}
    assert messages == {
        "changed": "changed between listing and hashing",
        "link": "is a symbolic link",
        "fifo": "a FIFO, not a regular file",
        "gone": "No such file or directory",
        "d/below": "d: symbolic link refused",
        "kept": None,
    }


def test_blake3_is_mapped_only_with_a_kernel_as_fast_as_the_package():
    assert engine.mapped_is_faster(SHA)
    assert engine.mapped_is_faster(B3) == (native.BLAKE3_TIER == "avx512") == ("AVX-512" in native.BLAKE3)


def test_hash_range_reads_any_range_as_the_chunks_it_names(tmp_path):
    path = tmp_path / "f.bin"
    data = os.urandom(50_000)
    path.write_bytes(data)
    listed = identity(path.stat())
    for hasher in (B3, SHA):
        for first, count in [(0, 49), (3, 1), (5, 17), (48, 1), (0, 1)]:
            got = native.hash_range(hasher.code, 1024, False, -1, bytes(path), len(data), listed, first, count)
            assert got == leaves_of(hasher, data[first * 1024 : (first + count) * 1024], 1024), (first, count)
    for first, count in [(0, 0), (49, 1), (40, 10), (2**63, 1)]:
        with pytest.raises(ValueError, match="not within"):
            native.hash_range(1, 1024, False, -1, bytes(path), len(data), listed, first, count)
    with pytest.raises(ValueError, match="power of two"):
        native.hash_range(1, 1000, False, -1, bytes(path), len(data), listed, 0, 1)


def test_hash_range_opens_and_checks_like_the_reading_path(tmp_path):
    """Listed, then changed; a link; a FIFO; a file gone; a directory opened relative to its parent: the words
    of hash_files and the pure reader."""
    data = os.urandom(20_000)
    (tmp_path / "f.bin").write_bytes(data)
    listed = identity((tmp_path / "f.bin").stat())
    (tmp_path / "link").symlink_to("f.bin")
    os.mkfifo(tmp_path / "fifo")
    dirfd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:

        def at(name: str, follow: bool = False, first: int = 0) -> bytes | str | None:
            return native.hash_range(1, 1024, follow, dirfd, name.encode(), len(data), listed, first, 4)

        assert at("f.bin", first=16) == leaves_of(B3, data[16 * 1024 :], 1024)
        assert at("link") == at("link", follow=True) == "is a symbolic link"  # relative to a directory: never
        assert at("fifo") == "a FIFO, not a regular file"
        assert at("gone") == "No such file or directory"
        os.utime(tmp_path / "f.bin", ns=(1, 1))
        assert at("f.bin") == "changed between listing and hashing"
    finally:
        os.close(dirfd)
    link = bytes(tmp_path / "link")
    moved = identity((tmp_path / "f.bin").stat())
    assert native.hash_range(1, 1024, True, -1, link, len(data), moved, 0, 2) == leaves_of(B3, data[:2048], 1024)
    assert native.hash_range(1, 1024, False, -1, link, len(data), moved, 0, 2) == "is a symbolic link"


def test_the_cli_gives_the_pure_roots_for_large_files(tmp_path):
    """The whole program, both paths (MERKLE_PURE=1 is the pure twin): a file of two units and one of a unit and
    a byte, both algorithms."""
    for size in ((16 << 20), (8 << 20) + 1):
        (tmp_path / f"f{size}.bin").write_bytes(os.urandom(size))
    names = sorted(str(p) for p in tmp_path.iterdir())
    for algorithm in ("blake3", "sha256"):
        outs = []
        for pure in ("0", "1"):
            r = subprocess.run(
                [sys.executable, "-m", "merkle", "hash", "-q", "--algorithm", algorithm, *names],
                env={**os.environ, "MERKLE_PURE": pure},
                capture_output=True,
                text=True,
            )
            assert r.returncode == 0, r.stderr
            outs.append(r.stdout)
        assert outs[0] == outs[1] and len(outs[0].splitlines()) == 2


# -- files truncated under the mapping ------------------------------------------

TRUNCATION_SIZE = 64 << 20
MAX_ATTEMPTS = 300


def truncate_while_hashing(path: Path, attempts: int = MAX_ATTEMPTS) -> tuple[int, list[bytes | str | None]]:
    """Hash a 64 MiB sparse file (zeros) through hash_range while another thread cuts it short at a random
    moment, until the guard has caught a fault (at most `attempts` times): (faults caught, every result)."""
    chunk = 1 << 20
    zeros = B3.leaf(bytes(chunk)) * (TRUNCATION_SIZE // chunk)
    before = native.faults()
    results: list[bytes | str | None] = []
    for _ in range(attempts):
        os.truncate(path, TRUNCATION_SIZE)  # back to full size (a hole: zeros)
        listed = identity(path.stat())
        go = threading.Event()

        def cut(go: threading.Event) -> None:
            go.wait()
            time.sleep(random.uniform(0, 0.03))
            os.truncate(path, random.choice([0, TRUNCATION_SIZE // 2]))

        cutter = threading.Thread(target=cut, args=(go,))
        cutter.start()
        caught = native.faults()
        go.set()
        got = native.hash_range(B3.code, chunk, False, -1, bytes(path), TRUNCATION_SIZE, listed, 0, 64)
        cutter.join()
        results.append(got)
        if native.faults() > caught:
            assert got == "changed while hashing"
            break
        assert got in ("changed while hashing", "changed between listing and hashing", zeros)
    return native.faults() - before, results


def test_a_file_truncated_under_the_mapping_changed_while_hashing(tmp_path):
    """Runs under pytest's faulthandler, whose SIGBUS handler is installed before ours."""
    path = tmp_path / "big.bin"
    path.touch()
    caught, results = truncate_while_hashing(path)
    assert caught >= 1, f"no fault in {len(results)} attempts"
    assert results[-1] == "changed while hashing"


def _python(code: str, tmp_path: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    here = Path(__file__).resolve().parent
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), str(tmp_path), str(here)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_the_guard_holds_when_faulthandler_replaces_it(tmp_path):
    """faulthandler enabled anew before every attempt, so its handler sits over ours each time: every guarded
    call puts ours back, and the faults are still caught, not reported as a fatal error."""
    r = _python(
        """
        import faulthandler, sys
        sys.path.insert(0, sys.argv[2])
        from pathlib import Path
        from test_mapped import truncate_while_hashing
        path = Path(sys.argv[1]) / "big.bin"
        path.touch()
        caught = 0
        for _ in range(20):
            faulthandler.disable()
            faulthandler.enable()
            n, results = truncate_while_hashing(path, 30)
            caught += n
            if caught >= 2:
                break
        print("caught", caught, results[-1])
        """,
        tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert "Fatal Python error" not in r.stderr
    words = r.stdout.split()
    assert words[0] == "caught" and int(words[1]) >= 2 and r.stdout.rstrip().endswith("changed while hashing")


OUTSIDE_FAULT = """
    import faulthandler, mmap, os, sys
    from merkle import _merkle
    {before}
    name = os.path.join(sys.argv[1], "f.bin")
    with open(name, "wb") as f:
        f.truncate(1 << 20)
    st = os.stat(name)
    listed = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    assert isinstance(_merkle.hash_range(1, 1024, False, -1, name.encode(), st.st_size, listed, 0, 4), bytes)
    {after}
    with open(name, "rb") as f:
        mapped = mmap.mmap(f.fileno(), 1 << 20, access=mmap.ACCESS_READ)
    os.truncate(name, 0)
    print("touching", flush=True)
    print(mapped[4096])
    print("survived", flush=True)
"""


@pytest.mark.parametrize(
    ("before", "after", "fatal"),
    [
        ("", "", 0),  # no faulthandler: the default action
        ("faulthandler.enable()", "", 1),  # faulthandler's handler, then ours over it
        ("", "faulthandler.enable()", 1),  # ours, then faulthandler's over it
        # ours, faulthandler's over it, then ours over that (faulthandler hands the fault back to ours)
        (
            "",
            "faulthandler.enable(); _merkle.hash_range(1, 1024, False, -1, name.encode(), st.st_size, listed, 0, 4)",
            1,
        ),
        # the same, then faulthandler disabled: it puts ours back, whose previous handler (faulthandler's) now
        # returns at once; the fault must not repeat for ever
        (
            "",
            "faulthandler.enable(); _merkle.hash_range(1, 1024, False, -1, name.encode(), st.st_size, listed, 0, 4);"
            " faulthandler.disable()",
            0,
        ),
    ],
    ids=["default", "faulthandler-first", "faulthandler-last", "reinstalled", "reinstalled-then-disabled"],
)
def test_a_sigbus_outside_a_guarded_range_reaches_the_previous_handler(tmp_path, before, after, fatal):
    """Python's own mmap touching a truncated file: the process dies of SIGBUS, with faulthandler's report
    exactly once when it is enabled (no loop between the two handlers), never swallowed."""
    r = _python(OUTSIDE_FAULT.format(before=before, after=after), tmp_path, timeout=60)
    assert r.returncode == -signal.SIGBUS, (r.returncode, r.stdout, r.stderr)
    assert r.stdout == "touching\n"
    assert r.stderr.count("Fatal Python error: Bus error") == fatal, r.stderr


def test_a_sigbus_sent_by_a_process_reaches_a_python_handler(tmp_path):
    """A SIGBUS sent with kill() is no fault of ours: a Python handler installed before ours still gets it,
    and the process goes on."""
    r = _python(
        """
        import os, signal, sys
        from merkle import _merkle
        seen = []
        signal.signal(signal.SIGBUS, lambda sig, frame: seen.append(sig))
        name = os.path.join(sys.argv[1], "f.bin")
        with open(name, "wb") as f:
            f.truncate(1 << 20)
        st = os.stat(name)
        listed = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        assert isinstance(_merkle.hash_range(1, 1024, False, -1, name.encode(), st.st_size, listed, 0, 4), bytes)
        for _ in range(3):
            os.kill(os.getpid(), signal.SIGBUS)
        print(len(seen), _merkle.faults())
        """,
        tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["3", "0"]


def test_a_walked_file_cut_short_while_hashing_is_an_error_not_a_digest(tmp_path, monkeypatch):
    """Through the engine: a file listed at 64 MiB, cut to half while its units are hashed, is an error for that
    file (whichever way the cut is met: a caught fault, a changed identity, a short read)."""
    path = tmp_path / "big.bin"
    with open(path, "wb") as f:
        f.truncate(TRUNCATION_SIZE)
    files: list[WalkedFile] = walk(tmp_path).files
    monkeypatch.setattr(engine, "MAPPED_BLAKE3_TIERS", frozenset({"avx512", "avx2", "portable"}))
    go = threading.Event()

    def cut() -> None:
        go.wait()
        time.sleep(0.005)
        os.truncate(path, TRUNCATION_SIZE // 2)

    cutter = threading.Thread(target=cut)
    cutter.start()
    go.set()
    (digest,) = engine.hash_files(files, B3, 1 << 20, jobs=2)
    cutter.join()
    if digest.error is None:  # the cut came after the last check: the whole file was hashed before it
        assert digest.root == engine.rfc6962.root_of_bytes(B3, B3.leaf(bytes(1 << 20)) * 64)
    else:
        assert digest.error.message in ("changed while hashing", "changed between listing and hashing"), digest.error


# -- swapped between units (found by the attacker review of issue 16) -------------------


def _file_to_symlink(root: Path, outside: Path) -> None:
    (root / "d" / "f").unlink()
    (root / "d" / "f").symlink_to(outside / "f")


def _dir_to_symlink(root: Path, outside: Path) -> None:
    os.rename(root / "d", root / "d-old")
    (root / "d").symlink_to(outside)


def _dir_to_another_holding_the_same_inode(root: Path, outside: Path) -> None:
    os.rename(root / "d", root / "d-old")
    (root / "d").mkdir()
    os.link(root / "d-old" / "f", root / "d" / "f")


def _file_to_fifo(root: Path, outside: Path) -> None:
    (root / "d" / "f").unlink()
    os.mkfifo(root / "d" / "f")


def _file_to_a_copy(root: Path, outside: Path) -> None:
    (root / "d" / "f").unlink()
    (root / "d" / "f").write_bytes((outside / "f").read_bytes())


def _rewritten_with_its_mtime_put_back(root: Path, outside: Path) -> None:
    st = os.stat(root / "d" / "f")
    with open(root / "d" / "f", "r+b") as f:
        f.seek(20_000)
        f.write(b"X")
    os.utime(root / "d" / "f", ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.mark.parametrize(
    ("swap", "words"),
    [
        (_file_to_symlink, "symbolic link"),
        (_dir_to_symlink, "symbolic link"),
        (_dir_to_another_holding_the_same_inode, "changed between listing and hashing"),
        (_file_to_fifo, "FIFO"),
        (_file_to_a_copy, "changed between listing and hashing"),
        (_rewritten_with_its_mtime_put_back, "changed between listing and hashing"),
    ],
    ids=lambda v: v.__name__.strip("_") if callable(v) else None,
)
def test_a_file_swapped_between_its_units_is_refused(tmp_path, monkeypatch, swap, words):
    """After the first mapped unit of a large file, its directory or the file itself is swapped
    (for a link out of the root, a FIFO, another file with the same bytes, the same file rewritten
    with its mtime put back): the next unit refuses it; no digest, no hang, nothing read outside."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "d").mkdir(parents=True)
    outside.mkdir()
    data = os.urandom(40_000)
    (root / "d" / "f").write_bytes(data)
    (outside / "f").write_bytes(data)  # the same bytes, outside the root
    files = walk(root).files
    monkeypatch.setattr(engine, "UNIT_BYTES", 4096)  # ten units of four 1K chunks
    units: list[int] = []
    real = native.hash_range

    class Between:
        """The extension, with a swap after the first unit (a seam in time, not a stand-in)."""

        def __getattr__(self, name):
            return getattr(native, name)

        def hash_range(self, *args):
            got = real(*args)
            units.append(args[-2])
            if len(units) == 1:
                swap(root, outside)
            return got

    monkeypatch.setattr(engine, "native", Between())
    # SHA-256: mapped on every tier, so this runs under the CI's masks too
    (digest,) = engine.hash_files(files, SHA, 1024, jobs=1)
    assert units, "the first unit went through the mapping"
    assert digest.error is not None and words in digest.error.message
    assert digest.root == b""
