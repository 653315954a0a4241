"""`verify --files NAME...` looks the names up instead of walking the tree
(issue 17, goal 3): the lookup must list exactly what the walk would have
listed for those names, under the same link policy and exclusions, and stay
as confined as the walk whatever the tree holds or does meanwhile.

Who attacks: whoever can write in the tree puts a link where a named file or
one of its directories is (to a copy of the signed bytes outside the root),
a FIFO, a name the walk would have pruned, or swaps a directory between the
lookup and the read.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import merkle
from merkle.hashing import engine
from merkle.source.walk import blocked_by, walk, walk_named
from merkle.tree.hasher import tree_hasher
from merkle.verifying.tree import CheckOptions, verify_with

CHUNK = 4096


@pytest.fixture
def hostile(tmp_path: Path) -> tuple[Path, list[str]]:
    """A tree with every kind of name the lookup meets, and the names to look up."""
    root = tmp_path / "tree"
    for d in ("a/b", "store/v1", "skip", ".git", "real"):
        (root / d).mkdir(parents=True)
    (root / "top.bin").write_bytes(os.urandom(5000))
    (root / "a" / "b" / "deep.bin").write_bytes(os.urandom(100))
    (root / "store" / "v1" / "x.bin").write_bytes(os.urandom(9000))
    (root / "skip" / "s.bin").write_bytes(b"pruned by --exclude skip")
    (root / ".git" / "config").write_text("pruned by default")
    (root / "real" / "r.bin").write_bytes(b"r")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "o.bin").write_bytes(b"outside the root")
    (root / "link-in.bin").symlink_to("top.bin")  # a file link inside the root
    (root / "dirlink").symlink_to(Path("store") / "v1")  # a directory link inside the root
    (root / "out").symlink_to(tmp_path / "outside")  # a directory link out of it
    (root / "out-file.bin").symlink_to(tmp_path / "outside" / "o.bin")
    (root / "dangling.bin").symlink_to("nowhere.bin")
    os.mkfifo(root / "pipe")
    names = [
        "top.bin",
        "a/b/deep.bin",
        "store/v1/x.bin",
        "skip/s.bin",
        ".git/config",
        "real/r.bin",
        "link-in.bin",
        "dirlink/x.bin",
        "out/o.bin",
        "out-file.bin",
        "dangling.bin",
        "pipe",
        "pipe/below.bin",
        "missing.bin",
        "a/missing/deep.bin",
        "a/b",  # a directory
        "top.bin/inside",  # a file where a directory should be
    ]
    return root, names


@pytest.mark.parametrize("follow", [False, True], ids=["links-refused", "links-followed"])
def test_lookup_lists_what_the_walk_lists(hostile, follow):
    root, names = hostile
    exclude = (".git", "skip", "store")  # dirlink/ then reaches store/v1 once, as the walk requires
    walked = walk(root, exclude, follow_symlinks=follow)
    named = walk_named(root, names, exclude, follow_symlinks=follow)
    files = {f.path: f for f in walked.files}
    problems = {p.path: p for p in walked.problems}
    expected_files = {n: files[n] for n in names if n in files}
    assert {f.path: f for f in named.files} == expected_files  # path, size, identity, base and target alike
    # A name the walk met a problem at, or below one, is a problem here too; every other name is left out.
    expected_problems = {n for n in names if n not in files and (n in problems or blocked_by(n, problems))}
    assert {p.path for p in named.problems} == expected_problems
    assert expected_problems >= {"pipe", "pipe/below.bin", "out/o.bin", "out-file.bin"}
    assert [f.path for f in named.files] == sorted(f.path for f in named.files)


def test_lookup_never_lists_a_directory(hostile, monkeypatch):
    """Checking named files of a big tree reads only what it names: no directory is listed."""
    root, _ = hostile
    (root / "pipe").unlink()
    for link in ("out", "out-file.bin", "dangling.bin", "link-in.bin", "dirlink"):
        (root / link).unlink()
    m = merkle.build(root, chunk_size=CHUNK)

    def no_listing(*args: object, **kwargs: object) -> None:
        raise AssertionError("a directory was listed")

    monkeypatch.setattr(os, "scandir", no_listing)
    monkeypatch.setattr(os, "listdir", no_listing)
    report = verify_with(root, m, CheckOptions(only=("a/b/deep.bin", "store/v1/x.bin")))
    assert report.ok and [o.path for o in report.outcomes] == ["a/b/deep.bin", "store/v1/x.bin"]
    (root / "a" / "b" / "deep.bin").write_bytes(os.urandom(100))
    report = verify_with(root, m, CheckOptions(only=("a/b/deep.bin",)))
    assert not report.ok and report.outcomes[0].status is merkle.Status.MISMATCH


@pytest.mark.parametrize("follow", [[], ["--follow-symlinks"]], ids=["links-refused", "links-followed"])
def test_named_file_behind_a_link_out_of_the_root_never_verifies(cli, tmp_path, follow):
    """The directory of the named file is swapped for a link to a copy of the signed bytes outside the root."""
    root = tmp_path / "tree"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "w.bin").write_bytes(os.urandom(3 * CHUNK))
    m = tmp_path / "m.json"
    merkle.build(root, chunk_size=CHUNK).save(m)
    shutil.copytree(root / "sub", tmp_path / "copy")
    shutil.rmtree(root / "sub")
    (root / "sub").symlink_to(tmp_path / "copy")
    r = cli("verify", str(root), str(m), "--files", "sub/w.bin", *follow)
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stdout.startswith("! sub/w.bin"), r.stdout
    assert ("outside the root" if follow else "symbolic link refused") in r.stdout


def test_directory_swapped_between_lookup_and_read(tmp_path):
    """Looked up, then sub/ becomes a link to a directory holding hard links of the very same files (same inodes,
    same bytes): the read descends from the root again and refuses the link."""
    root = tmp_path / "tree"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "w.bin").write_bytes(os.urandom(3 * CHUNK))
    named = walk_named(root, ["sub/w.bin"], ())
    (tmp_path / "elsewhere").mkdir()
    os.link(root / "sub" / "w.bin", tmp_path / "elsewhere" / "w.bin")
    (root / "sub").rename(tmp_path / "aside")
    (root / "sub").symlink_to(tmp_path / "elsewhere")
    (digest,) = engine.hash_files(named.files, tree_hasher("blake3"), CHUNK, jobs=1)
    assert digest.error is not None and digest.error.message == "sub: symbolic link refused"


@pytest.mark.parametrize(
    "patterns, literal",
    [((".git",), True), ((".git", "node_modules"), True), (("*.tmp",), False), (("a/b",), False), (("[ab]",), False)],
)
def test_plain_exclusions_are_one_set_lookup_with_the_same_answers(patterns, literal):
    """The walk tests plain-name exclusions (the default, .git) with a set lookup: it must answer as the patterns do."""
    from merkle.source.walk import Excluder

    excluder = Excluder(patterns)
    assert (excluder.literal_names is not None) is literal
    names = [".git", ".GIT", "x.git", ".git2", "node_modules", "a", "b", "a.tmp", ".tmp", "[ab]", "git"]
    for name in names:
        expected = excluder(f"dir/{name}", name)
        if excluder.literal_names is not None:
            assert (name in excluder.literal_names) == expected, name


def test_directory_swapped_between_its_lstat_and_its_open_is_an_error_not_absent(tmp_path, monkeypatch):
    """The race the lookup cannot avoid: d/ is a directory when looked at and a link out of the root when opened.
    The open fails (O_NOFOLLOW); that is an error at the name, as the walk's "replaced while walked", never a file
    absent (which --sparse would let pass)."""
    import merkle.source.local as local

    root = tmp_path / "tree"
    (root / "d").mkdir(parents=True)
    (root / "d" / "a.txt").write_text("signed\n")
    m = merkle.build(root)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "a.txt").write_text("other\n")
    real_open, swapped = os.open, []

    def racing_open(path, flags, *args, dir_fd=None, **kwargs):
        if path == "d" and dir_fd is not None and flags & os.O_DIRECTORY and not swapped:
            swapped.append(True)
            shutil.rmtree(root / "d")
            (root / "d").symlink_to(tmp_path / "outside")
        return real_open(path, flags, *args, dir_fd=dir_fd, **kwargs)

    monkeypatch.setattr(local.os, "open", racing_open)
    report = verify_with(root, m, CheckOptions(sparse=True, only=("d/a.txt",)))
    monkeypatch.undo()
    assert swapped
    (outcome,) = report.outcomes
    assert outcome.status is merkle.Status.ERROR and not report.ok, outcome
