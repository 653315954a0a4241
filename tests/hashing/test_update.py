"""`build --update OLD`: files unchanged since a build of the tree on this
machine are taken from the user's authenticated identity records; the result
is always byte-identical to a full build, and nothing but this user's own
records, for this tree and these parameters, is ever reused."""

import json
import os
import time
from pathlib import Path

import pytest
from support.cli import assert_one_line_error, run_cli

from merkle.building import BuildOptions, build_with
from merkle.cli.commands import _old_manifest
from merkle.errors import CheckpointWarning, UsageError
from merkle.format.manifest import Manifest
from merkle.hashing import identities
from merkle.hashing.options import HashOptions
from merkle.report import Progress
from merkle.source.listing import WalkOptions
from merkle.verifying.tree import verify

OTHER_UID = 12345  # tests run as root: os.chown hands a file to "another user"
BIG = 3 * 65536 + 17  # several chunks: its leaves go to the sidecar


@pytest.fixture(autouse=True)
def short_racy_window(monkeypatch):
    """Rule 5 with a window the tests can wait out: 50 ms, far more than a
    timestamp tick; `tree` waits longer than that after writing."""
    monkeypatch.setattr(identities, "RACY_NS", 50_000_000)


def tree(d: Path) -> Path:
    d.mkdir()
    (d / "big.bin").write_bytes(os.urandom(BIG))
    (d / "small.bin").write_bytes(os.urandom(4000))
    (d / "README").write_text("hello\n")
    (d / "empty").write_bytes(b"")
    time.sleep(0.1)
    return d


OPTIONS = BuildOptions(chunk_size=65536)


def full(d: Path, out: Path, options: BuildOptions = OPTIONS) -> Manifest:
    manifest = build_with(d, options)
    manifest.save(out)
    return manifest


def update(d: Path, old: Manifest, out: Path, options: BuildOptions = OPTIONS) -> Progress:
    progress = Progress()
    build_with(d, options, WalkOptions(), HashOptions(progress=progress), update=old).save(out)
    return progress


def same_as_full(d: Path, tmp: Path, old: Manifest, options: BuildOptions = OPTIONS) -> Progress:
    progress = update(d, old, tmp / "new.json", options)
    full(d, tmp / "full.json", options)
    assert (tmp / "new.json").read_bytes() == (tmp / "full.json").read_bytes()
    assert (tmp / "new.json.leaves").read_bytes() == (tmp / "full.json.leaves").read_bytes()
    return progress


def edit_byte(d: Path) -> str:
    with open(d / "big.bin", "r+b") as f:
        f.seek(70000)
        byte = f.read(1)
        f.seek(70000)
        f.write(bytes([byte[0] ^ 1]))
    return "big.bin"


def append(d: Path) -> str:
    with open(d / "big.bin", "ab") as f:
        f.write(b"x")
    return "big.bin"


def truncate(d: Path) -> str:
    os.truncate(d / "big.bin", 70000)
    return "big.bin"


def rename(d: Path) -> str:
    os.rename(d / "small.bin", d / "moved.bin")
    return "small.bin"


def replace_same_size(d: Path) -> str:
    """Same size, mtime restored: only the ctime says it changed."""
    st = os.stat(d / "big.bin")
    (d / "big.bin").write_bytes(os.urandom(BIG))
    os.utime(d / "big.bin", ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(d / "big.bin").st_ctime_ns != st.st_ctime_ns
    return "big.bin"


def touch(d: Path) -> str:
    os.utime(d / "big.bin")
    return "big.bin"


@pytest.mark.parametrize("change", [edit_byte, append, truncate, rename, replace_same_size, touch])
def test_each_change_equals_a_full_build_and_reuses_the_rest(tmp_path, change):
    d = tree(tmp_path / "t")
    old = full(d, tmp_path / "old.json")
    changed = change(d)
    progress = same_as_full(d, tmp_path, old)
    kept = [f for f in old.files if f.path != changed]
    assert progress.updated_files == len(kept)
    assert progress.updated_bytes == sum(f.size for f in kept)


def test_nothing_changed_reuses_everything_and_the_records_carry_on(tmp_path):
    d = tree(tmp_path / "t")
    old = full(d, tmp_path / "old.json")
    assert same_as_full(d, tmp_path, old).updated_files == 4
    (d / "README").write_text("edited\n")
    time.sleep(0.1)
    assert update(d, old, tmp_path / "second.json").updated_files == 3  # the new README is not in OLD


def test_a_file_changed_just_before_the_build_is_not_recorded(tmp_path, monkeypatch):
    """Rule 5: a same-size rewrite in the same timestamp tick as the read
    would keep the identity; such a file is hashed next time too."""
    d = tree(tmp_path / "t")
    monkeypatch.setattr(identities, "RACY_NS", 10**12)
    old = full(d, tmp_path / "old.json")
    assert same_as_full(d, tmp_path, old).updated_files == 0


def records(directory: str) -> list[Path]:
    return [p for p in Path(directory).iterdir() if p.name.endswith(".checkpoint")]


@pytest.mark.parametrize("damage", ["flip", "plant"])
def test_a_damaged_or_planted_record_is_refused(tmp_path, damage):
    d = tree(tmp_path / "t")
    old = full(d, tmp_path / "old.json")
    replace_same_size(d)
    (state,) = records(os.environ["MERKLE_IDENTITIES"])
    lines = state.read_bytes().split(b"\n")
    mac, _, body = lines[1].partition(b" ")
    entries = json.loads(body)
    big = next(e for e in entries if e[0] == "big.bin")
    st = os.stat(d / "big.bin")
    big[1] = [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]  # the new bytes' identity, old root
    forged = json.dumps(entries).encode()
    if damage == "flip":  # the MAC of another body
        lines[1] = mac + b" " + forged
    else:  # a MAC of the right shape under a key the planter guessed
        lines[1] = b"0" * 64 + b" " + forged
    state.write_bytes(b"\n".join(lines))
    progress = same_as_full(d, tmp_path, old)
    assert progress.updated_files == 0  # the whole line is refused: everything hashed, nothing wrong


def test_records_another_user_could_write_are_not_used(tmp_path):
    d = tree(tmp_path / "t")
    old = full(d, tmp_path / "old.json")
    (state,) = records(os.environ["MERKLE_IDENTITIES"])
    os.chown(state, OTHER_UID, OTHER_UID)
    with pytest.warns(CheckpointWarning):
        assert same_as_full(d, tmp_path, old).updated_files == 0


def test_old_of_another_algorithm_or_chunk_size_is_a_usage_error(tmp_path):
    d = tree(tmp_path / "t")
    old = full(d, tmp_path / "old.json")
    with pytest.raises(UsageError, match="OLD was built with"):
        update(d, old, tmp_path / "x.json", BuildOptions(chunk_size=131072))
    with pytest.raises(UsageError, match="OLD was built with"):
        update(d, old, tmp_path / "x.json", BuildOptions(algorithm="sha256", chunk_size=65536))


def test_old_of_another_tree_reuses_only_what_both_agree_on(tmp_path):
    d = tree(tmp_path / "t")
    other = tree(tmp_path / "other")
    full(d, tmp_path / "mine.json")
    old = full(other, tmp_path / "old.json")
    # This tree's records, the other tree's roots: they agree only where the bytes are the same (README, empty).
    assert same_as_full(d, tmp_path, old).updated_files == 2


def test_a_signed_bundle_as_old(tmp_path):
    import merkle

    d = tree(tmp_path / "t")
    old = full(d, tmp_path / "old.json")
    assert run_cli("keygen", "-o", str(tmp_path / "key")).returncode == 0
    merkle.sign(old, str(tmp_path / "key"), tmp_path / "old.bundle", name="m", attestations=False)
    append(d)
    assert same_as_full(d, tmp_path, _old_manifest(str(tmp_path / "old.bundle"))).updated_files == 3


def test_verify_never_reads_the_records(tmp_path, monkeypatch):
    d = tree(tmp_path / "t")
    full(d, tmp_path / "old.json")
    replace_same_size(d)

    def poisoned(*args, **kwargs):
        raise AssertionError("verify read identity records")

    monkeypatch.setattr(identities.Identities, "reusable", poisoned)
    report = verify(d, Manifest.load(tmp_path / "old.json"))
    assert not report


def test_cli_update_says_what_it_reused(tmp_path):
    d = tree(tmp_path / "t")
    time.sleep(2.1)  # the CLI's racy window (rule 5) is the real one
    assert run_cli("build", str(d), "-o", str(tmp_path / "old.json")).returncode == 0
    (d / "README").write_text("edited\n")
    r = run_cli("build", str(d), "-o", str(tmp_path / "new.json"), "--update", str(tmp_path / "old.json"))
    assert r.returncode == 0, r.stderr
    assert "merkle: --update: reused 3 files (0.00 GB) of 4" in r.stderr
    r = run_cli("build", str(d), "-o", str(tmp_path / "j.json"), "--update", str(tmp_path / "old.json"), "--json")
    assert json.loads(r.stdout)["reused"] == {"files": 3, "bytes": BIG + 4000}
    r = run_cli("build", str(d), "--update", str(tmp_path / "old.json"), "--algorithm", "sha256")
    assert_one_line_error(r, "OLD was built with")


def test_a_verify_that_passed_refreshes_the_records_of_a_tree_built_here(tmp_path):
    d = tree(tmp_path / "t")
    old = full(d, tmp_path / "old.json")
    time.sleep(0.06)  # past the (shortened) racy window
    for p in sorted(d.rglob("*")):
        if p.is_file():
            os.utime(p)  # touched: the build's records no longer match any file
    time.sleep(0.06)
    assert verify(d, old)
    assert same_as_full(d, tmp_path, old).updated_files == 4  # the verify's records
    edit_byte(d)
    before = {p: p.read_bytes() for p in records(os.environ["MERKLE_IDENTITIES"])}
    assert not verify(d, old)  # a verify that failed records nothing
    assert {p: p.read_bytes() for p in records(os.environ["MERKLE_IDENTITIES"])} == before


def test_a_verify_of_a_tree_never_built_here_writes_nothing(tmp_path):
    """Records cost a verify of many small files a quarter of its time: only a tree this machine built gets them."""
    d = tree(tmp_path / "t")
    old = full(d, tmp_path / "old.json")
    for state in records(os.environ["MERKLE_IDENTITIES"]):
        state.unlink()
    assert verify(d, old)
    assert records(os.environ["MERKLE_IDENTITIES"]) == []


def test_a_verify_says_nothing_of_records_it_may_not_use(tmp_path):
    """Records another user could write are refused, and a build --update
    warns of them; a verify, which never reads records, passes in silence
    (it only skips refreshing them), while the next build still warns."""
    import warnings

    d = tree(tmp_path / "t")
    old = full(d, tmp_path / "old.json")
    (state,) = records(os.environ["MERKLE_IDENTITIES"])
    os.chown(state, OTHER_UID, OTHER_UID)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert verify(d, old)
    with pytest.warns(CheckpointWarning):
        assert same_as_full(d, tmp_path, old).updated_files == 0


def test_a_file_changed_while_the_update_runs_is_an_error_not_its_old_root(tmp_path, monkeypatch):
    """A reused file is not read: its root is the record's, true when it was
    listed.  A writer that edits it after the listing, before the build
    ends (here: at the last moment, just before the build checks), must
    not leave a manifest claiming the old root: one error naming the file,
    and nothing written.  The writer is injected at that moment by wrapping
    the check, which then runs as it always does."""
    from merkle.errors import SourceError

    d = tree(tmp_path / "t")
    old = full(d, tmp_path / "old.json")
    real = identities.Identities.check_unchanged

    def writer_then_check(self):
        with open(d / "big.bin", "r+b") as f:  # same size; ctime moves
            f.write(b"edited while the build ran")
        return real(self)

    monkeypatch.setattr(identities.Identities, "check_unchanged", writer_then_check)
    with pytest.raises(SourceError, match="changed while the build ran") as caught:
        update(d, old, tmp_path / "new.json")
    assert caught.value.path == "big.bin"
    assert not (tmp_path / "new.json").exists()
