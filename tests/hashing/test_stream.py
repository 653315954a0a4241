"""Hashing while walking (engine.hash_stream, walk.walk_stream): the same
files, digests and errors as listing first, and checkpoints that still
resume."""

import json
import os

import pytest

import merkle
from merkle.errors import SourceError
from merkle.hashing import engine
from merkle.hashing.checkpoint import Checkpoint, hash_resumable, job
from merkle.source.walk import walk, walk_stream
from merkle.tree.hasher import tree_hasher


def tree(root, dirs=5, per_dir=7):
    root.mkdir()
    for d in range(dirs):
        sub = root / f"d{d}" / "inner" if d % 2 else root / f"d{d}"
        sub.mkdir(parents=True)
        for i in range(per_dir):
            # sizes around the chunk size: one chunk, several, and empty files
            (sub / f"f{i}.bin").write_bytes(os.urandom((i * 2777) % 13000))
    (root / "top.bin").write_bytes(os.urandom(9000))
    return root


def test_walk_stream_yields_every_file_once_and_ends_as_walk(tmp_path):
    root = tree(tmp_path / "t")
    result, directories = walk_stream(root)
    seen = [f.path for group in directories for f in group]
    whole = walk(root)
    assert sorted(seen) == [f.path for f in whole.files]
    assert len(seen) == len(set(seen)) == 5 * 7 + 1
    assert result.files == whole.files and result.problems == whole.problems


@pytest.mark.parametrize("algorithm", ["blake3", "sha256"])
def test_hash_stream_matches_hash_files(tmp_path, algorithm):
    root = tree(tmp_path / "t")
    h = tree_hasher(algorithm)
    listed = engine.hash_files(walk(root).files, h, 4096)
    _, directories = walk_stream(root)
    progress = engine.Progress()
    streamed = engine.hash_stream(directories, h, 4096, jobs=2, progress=progress)
    assert streamed == listed  # same paths, sizes, roots and leaves, sorted by path
    assert progress.total_files == progress.files == len(listed)
    assert progress.total_bytes == progress.bytes == sum(d.size for d in listed)


def test_hash_stream_reports_a_file_that_changed_after_listing(tmp_path):
    root = tree(tmp_path / "t")
    _, directories = walk_stream(root)

    def groups():
        for i, group in enumerate(directories):
            if i == 0:  # listed, then rewritten before it is hashed
                (root / group[0].path).write_bytes(b"rewritten")
            yield group

    digests = engine.hash_stream(groups(), tree_hasher("blake3"), 4096)
    bad = [d for d in digests if d.error is not None]
    assert len(bad) == 1 and "changed between listing and hashing" in bad[0].error.message


def test_build_fails_on_a_problem_found_late_and_counts_every_problem(tmp_path):
    root = tree(tmp_path / "t")
    os.symlink("/etc/passwd", root / "d3" / "inner" / "link")
    os.mkfifo(root / "d4" / "fifo")
    with pytest.raises(SourceError) as e:
        merkle.build(root)
    assert "d3/inner/link" in str(e.value) and "(and 1 more problem)" in str(e.value)


def _kept() -> list[str]:
    d = os.environ["MERKLE_CHECKPOINTS"]  # tests/conftest.py: a private directory per test
    return sorted(os.path.join(d, n) for n in os.listdir(d) if n.endswith(".checkpoint"))


def _recorded(cp: str) -> set[str]:
    lines = [line.partition(" ")[2] for line in open(cp).read().splitlines() if line]
    assert json.loads(lines[0])["format"] == "merkle-checkpoint-v3"
    return {record[0] for line in lines[1:] for record in json.loads(line)}


def test_a_failed_build_keeps_its_checkpoint_and_the_next_one_resumes(tmp_path):
    root = tree(tmp_path / "t")
    late = root / "d4" / "zz"
    late.mkdir()
    os.symlink("../f0.bin", late / "link")  # refused: the build fails after hashing what it listed first
    with pytest.raises(SourceError, match="symbolic link refused"):
        merkle.build(root, checkpoint=True)
    [cp] = _kept()
    recorded = _recorded(cp)
    assert "top.bin" in recorded  # the root directory is listed, and hashed, first
    os.unlink(late / "link")
    progress = merkle.Progress()
    resumed = merkle.build(root, resume=True, progress=progress)
    assert resumed.root == merkle.build(root).root
    total = sum(f.size for f in walk(root).files)
    reused = sum(os.path.getsize(root / p) for p in recorded)
    assert progress.bytes == total - reused > 0
    assert (progress.resumed_files, progress.resumed_bytes) == (len(recorded), reused)
    assert _kept() == []


def test_checkpoint_records_reach_the_file_when_kept_not_when_discarded(tmp_path):
    root = tree(tmp_path / "t")
    files = walk(root).files
    cp_job = job("test", str(root), None, algorithm="blake3", chunk_size=4096)
    state = Checkpoint.open(cp_job, resume=False)
    hash_resumable(files, tree_hasher("blake3"), 4096, state)
    state.discard()  # a job that succeeded: nothing left to write, nothing kept
    assert _kept() == []
    state = Checkpoint.open(cp_job, resume=False)
    hash_resumable(files, tree_hasher("blake3"), 4096, state)
    state.keep()
    [cp] = _kept()
    assert len(_recorded(cp)) == len(files)
    assert len(open(cp).read().splitlines()) == 2, "one flush: the header and one line of records"
    again = Checkpoint.open(cp_job, resume=True)
    assert all(again.reusable(f) is not None for f in files)
    again.discard()


@pytest.mark.parametrize("pure", [False, True])
def test_the_engine_keeps_each_files_first_bytes_as_hashed(tmp_path, pure, monkeypatch):
    """hash_files(..., head=N): each file's first min(N, size) bytes, the
    bytes hashed (the C batch path for small local files, the read path for
    the rest, and with MERKLE_PURE-like settings the read path for all)."""
    import os

    from merkle.hashing import engine
    from merkle.source.walk import walk
    from merkle.tree.hasher import tree_hasher

    if pure:
        monkeypatch.setattr(engine, "bulk", lambda code: None)
    files = {"small.bin": os.urandom(100), "empty.bin": b"", "big.bin": os.urandom(5 * 1024 + 7), "x.bin": b"x" * 64}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    listing = walk(tmp_path, ())
    digests = engine.hash_files(listing.files, tree_hasher("blake3"), 1024, head=64)
    got = {d.path: d.head for d in digests}
    assert got == {name: data[:64] for name, data in files.items()}
    assert all(d.head is None for d in engine.hash_files(listing.files, tree_hasher("blake3"), 1024))
