"""An interrupted build resumes from its checkpoint without re-hashing what
was finished, and never reuses a digest for an object that changed."""

import json
import os

import merkle
from merkle.checkpoint import hash_resumable
from merkle.engine import Progress
from merkle.hashing import tree_hasher
from merkle.walk import walk


def make(d, count=6):
    d.mkdir()
    for i in range(count):
        (d / f"f{i}.bin").write_bytes(os.urandom(5000 + i))
    return d


def test_resume_hashes_only_what_was_not_finished(tmp_path):
    d = make(tmp_path / "d")
    cp = str(tmp_path / "m.checkpoint")
    h = tree_hasher("blake3")
    files = walk(d).files
    first, state = hash_resumable(files[:4], h, 4096, cp)  # "interrupted" after four files
    state.close(finished=False)
    lines = open(cp).read().splitlines()
    assert json.loads(lines[0])["format"] == "merkle-checkpoint-v1" and len(lines) == 5
    progress = Progress()
    digests, state = hash_resumable(files, h, 4096, cp, progress=progress)
    assert progress.bytes == sum(f.size for f in files[4:])  # only the two unfinished files were read
    assert [d.root for d in digests] == [d.root for d in hash_resumable(files, h, 4096, None)[0]]
    state.close(finished=True)
    assert not os.path.exists(cp)


def test_changed_file_is_not_reused(tmp_path):
    d = make(tmp_path / "d")
    cp = str(tmp_path / "m.checkpoint")
    h = tree_hasher("sha256")
    _, state = hash_resumable(walk(d).files, h, 4096, cp)
    state.close(finished=False)
    (d / "f2.bin").write_bytes(b"changed since the checkpoint")
    progress = Progress()
    digests, _ = hash_resumable(walk(d).files, h, 4096, cp, progress=progress)
    assert progress.bytes == len(b"changed since the checkpoint")
    assert digests[2].root == merkle.hash_file(d / "f2.bin", "sha256", 4096)


def test_checkpoint_for_other_parameters_or_torn_lines_is_handled(tmp_path):
    d = make(tmp_path / "d")
    cp = str(tmp_path / "m.checkpoint")
    files = walk(d).files
    _, state = hash_resumable(files, tree_hasher("blake3"), 4096, cp)
    state.close(finished=False)
    progress = Progress()
    hash_resumable(files, tree_hasher("blake3"), 8192, cp, progress=progress)  # other chunk size: ignored
    assert progress.bytes == sum(f.size for f in files)
    _, state = hash_resumable(files, tree_hasher("blake3"), 4096, cp)
    state.close(finished=False)
    with open(cp, "a") as f:
        f.write('{"path": "f0.bin", "ident')  # killed mid-write
    progress = Progress()
    digests, _ = hash_resumable(files, tree_hasher("blake3"), 4096, cp, progress=progress)
    assert progress.bytes == 0 and all(dg.error is None for dg in digests)


def test_cli_build_resumes_after_a_failure(cli, tmp_path):
    d = make(tmp_path / "d", 8)
    os.mkfifo(d / "zz-pipe")
    m = tmp_path / "m.json"
    r = cli("build", str(d), "-o", str(m), "--chunk-size", "4K", timeout=30)
    assert r.returncode == 2 and not m.exists()
    # the walk refused the FIFO before hashing: nothing to resume yet
    os.unlink(d / "zz-pipe")
    (d / "late.bin").write_bytes(b"x" * 10)
    r = cli("build", str(d), "-o", str(m), "--chunk-size", "4K")
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / "m.json.checkpoint").exists()
    assert json.loads(m.read_text())["root"] == merkle.build(d, chunk_size=4096).root.hex()
