"""Links and the trust boundary of a local tree (issue 14, items 3 and 4).

One link policy for every mode (docs/cli.md, "Links"): below the path you
name, no symbolic link is followed unless --follow-symlinks allows it, and
then never out of the root; every descent and open is made relative to an
open directory, so a directory swapped for a link between listing and
reading is refused, never read through.  A listed path behind a refused link
or a special file is an error (`!`), never absent.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
from pathlib import Path

import pytest
from support.cli import assert_one_line_error

import merkle
from merkle.errors import SourceError
from merkle.hashing import engine
from merkle.source.walk import walk, walk_stream
from merkle.tree.hasher import tree_hasher

CHUNK = 4096
B3 = tree_hasher("blake3")


def details(stdout: str) -> dict[str, tuple[str, str]]:
    """{path: (symbol, detail)} from report lines `<sym> <path>  (<detail>)`."""
    out = {}
    for line in stdout.splitlines():
        symbol, _, rest = line.partition(" ")
        path, _, detail = rest.partition("  (")
        out[path] = (symbol, detail[:-1] if detail.endswith(")") else detail)
    return out


def safetensors(tensors: dict[str, bytes]) -> bytes:
    header, offset = {}, 0
    for name, data in tensors.items():
        header[name] = {"dtype": "U8", "shape": [len(data)], "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + b"".join(tensors.values())


@pytest.fixture
def signed(tmp_path: Path):
    """A tree and its manifest (with sidecar): a.txt, sub/b.bin (3 chunks), sub/w.safetensors."""
    root = tmp_path / "tree"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("a\n")
    (root / "sub" / "b.bin").write_bytes(os.urandom(3 * CHUNK - 5))
    (root / "sub" / "w.safetensors").write_bytes(safetensors({"x": os.urandom(5000), "y": os.urandom(9000)}))
    m = tmp_path / "m.json"
    merkle.build(root, chunk_size=CHUNK).save(m)
    return root, m


def swap_for_link(directory: Path, target: Path) -> Path:
    """Move `directory` aside and leave a link to `target` in its place; returns where it went."""
    aside = directory.parent.with_name(f"{directory.parent.name}-{directory.name}.aside")  # outside the root
    directory.rename(aside)
    directory.symlink_to(target)
    return aside


def outside_copy(tmp_path: Path, root: Path, same_bytes: bool) -> Path:
    """A directory outside the root with the names of sub/: the signed bytes, or other bytes."""
    out = tmp_path / "outside"
    shutil.copytree(root / "sub", out)
    if not same_bytes:
        for f in out.iterdir():
            f.write_bytes(os.urandom(f.stat().st_size))
    return out


# -- item 3: a directory swapped for a link hides nothing -------------------------------------------------------------


def test_directory_link_inside_the_root_is_followed_when_allowed(cli, tmp_path):
    """A followed directory link lists the target's files under the link's name and opens them where they are
    (the target lies in an excluded folder, so it is not reached twice)."""
    root = tmp_path / "tree"
    (root / "store" / "v1" / "deep").mkdir(parents=True)
    (root / "store" / "v1" / "x.bin").write_bytes(os.urandom(9000))
    (root / "store" / "v1" / "deep" / "y.bin").write_bytes(os.urandom(100))
    (root / "data").symlink_to(Path("store") / "v1")
    m = tmp_path / "m.json"
    r = cli("build", str(root), "-o", str(m), "--exclude", "store", "--follow-symlinks", "--chunk-size", "4K")
    assert r.returncode == 0, r.stderr
    assert sorted(e.path for e in merkle.Manifest.load(m).files) == ["data/deep/y.bin", "data/x.bin"]
    r = cli("verify", str(root), str(m), "--follow-symlinks")
    assert r.returncode == 0, r.stdout + r.stderr
    r = cli("verify", str(root), str(m), "--follow-symlinks", "--file", "data/deep/y.bin")
    assert r.returncode == 0, r.stdout + r.stderr
    r = cli("verify", str(root), str(m))
    assert r.returncode == 1 and details(r.stdout)["data/x.bin"][0] == "!"  # and `+ data`: extra


@pytest.mark.parametrize(
    "flags",
    [
        ["--sparse"],
        ["--files", "sub/b.bin"],
        ["--sparse", "--exclude", "sub"],
        ["--sparse", "--allow-extra"],
        ["--allow-extra"],
        ["--exclude", "sub"],
        [],
    ],
    ids=lambda f: " ".join(f) or "tree",
)
def test_listed_file_behind_a_refused_link_is_an_error_not_absent(cli, signed, tmp_path, flags):
    root, m = signed
    swap_for_link(root / "sub", outside_copy(tmp_path, root, same_bytes=False))
    r = cli("verify", str(root), str(m), *flags)
    got = details(r.stdout)
    assert got["sub/b.bin"][0] == "!", r.stdout
    assert "sub: symbolic link refused" in got["sub/b.bin"][1]
    assert "~" not in {s for s, _ in got.values()}
    assert r.returncode in (1, 2) and "FAILED" in r.stderr
    assert "1 error" in r.stderr or "2 errors" in r.stderr


def test_link_out_of_the_root_with_follow_symlinks_is_an_error(cli, signed, tmp_path):
    root, m = signed
    swap_for_link(root / "sub", outside_copy(tmp_path, root, same_bytes=True))  # even the signed bytes
    r = cli("verify", str(root), str(m), "--sparse", "--allow-extra", "--follow-symlinks")
    got = details(r.stdout)
    assert got["sub/b.bin"] == ("!", "sub: symbolic link points outside the root")
    assert r.returncode == 2


def link_inside(root: Path) -> None:
    """sub/b.bin becomes a link to a copy of its signed bytes elsewhere in the tree."""
    (root / "sub" / "b.bin").rename(root / "b.real")
    (root / "sub" / "b.bin").symlink_to(Path("..") / "b.real")


def test_link_inside_the_root_is_followed_when_allowed(cli, signed):
    root, m = signed
    link_inside(root)
    r = cli("verify", str(root), str(m), "--allow-extra")
    assert r.returncode == 2 and details(r.stdout)["sub/b.bin"][0] == "!"
    r = cli("verify", str(root), str(m), "--follow-symlinks", "--allow-extra")
    assert r.returncode == 0, r.stdout + r.stderr
    assert details(r.stdout)["sub/b.bin"][0] == "="


def test_listed_file_under_a_special_file_is_an_error(cli, signed):
    root, m = signed
    shutil.rmtree(root / "sub")
    os.mkfifo(root / "sub")
    r = cli("verify", str(root), str(m), "--sparse", "--allow-extra", timeout=30)
    assert details(r.stdout)["sub/b.bin"] == ("!", "sub: a FIFO, not a regular file")
    assert r.returncode == 2


def test_allow_extra_still_reports_refused_links_and_special_files(cli, signed, tmp_path):
    root, m = signed
    (tmp_path / "elsewhere").write_text("x")
    (root / "extra-link").symlink_to(tmp_path / "elsewhere")
    os.mkfifo(root / "pipe")
    r = cli("verify", str(root), str(m), "--allow-extra", timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    got = details(r.stdout)
    assert got["extra-link"] == ("+", "symbolic link refused (use --follow-symlinks)")
    assert got["pipe"] == ("+", "a FIFO, not a regular file")
    assert "2 extra (allowed)" in r.stderr
    report = merkle.verify(root, m, allow_extra=True)
    assert report.ok and report.counts[merkle.Status.EXTRA] == 2


# -- item 4: the walk's descent is confined ---------------------------------------------------------------------------


def test_directory_swapped_for_a_link_between_listing_and_descent(signed, tmp_path):
    """Deterministic: walk_stream yields the root's files after listing the root and before descending into sub/,
    so the swap lands exactly between the two."""
    root, _ = signed
    outside = outside_copy(tmp_path, root, same_bytes=False)
    outside_inodes = {f.stat().st_ino for f in outside.iterdir()}
    for follow in (False, True):
        result, directories = walk_stream(root, (), follow_symlinks=follow)
        first = next(directories)
        assert [f.path for f in first] == ["a.txt"]
        aside = swap_for_link(root / "sub", outside)
        for _ in directories:
            pass
        assert [f.path for f in result.files] == ["a.txt"], result.files
        assert not {f.identity[1] for f in result.files} & outside_inodes
        (problem,) = result.problems
        assert problem.path == "sub" and problem.unreadable_dir and "symbolic link" in problem.reason
        (root / "sub").unlink()
        aside.rename(root / "sub")


def test_directory_replaced_by_another_between_listing_and_descent(signed, tmp_path):
    root, _ = signed
    result, directories = walk_stream(root, ())
    next(directories)
    (root / "sub").rename(tmp_path / "old-sub")
    shutil.copytree(tmp_path / "old-sub", root / "sub")  # a real directory, but not the one listed
    for _ in directories:
        pass
    assert [f.path for f in result.files] == ["a.txt"]
    assert [(p.path, p.unreadable_dir) for p in result.problems] == [("sub", True)]
    assert "changed" in result.problems[0].reason


# -- item 4: every open is confined -----------------------------------------------------------------------------------


@pytest.mark.parametrize("pure", [False, True], ids=["native", "pure"])
def test_hashing_opens_relative_to_the_listed_directory(signed, tmp_path, pure):
    """After listing, sub/ becomes a link to a directory holding a hard link of the very same file: same inode, same
    bytes, but reached through a link, so it is refused (the open walks down from the root, never through a link)."""
    from merkle._native import native

    if not pure and native is None:
        pytest.skip("the C extension is not built")
    root, _ = signed
    listing = walk(root)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for name in ("b.bin", "w.safetensors"):
        os.link(root / "sub" / name, elsewhere / name)
    swap_for_link(root / "sub", elsewhere)
    opener = engine.local_opener(False)
    digests = engine.hash_files(listing.files, B3, CHUNK, jobs=1, opener=(lambda src: opener(src)) if pure else None)
    errors = {d.path: d.error.message for d in digests if d.error is not None}
    assert errors == {"sub/b.bin": "sub: symbolic link refused", "sub/w.safetensors": "sub: symbolic link refused"}


@pytest.mark.parametrize(
    "mode", [[], ["--range", "0:100"], ["--tensor", "y"], ["--repair"]], ids=["file", "range", "tensor", "repair"]
)
def test_single_file_modes_refuse_a_link_out_of_the_tree(cli, signed, tmp_path, mode):
    """The outside copy holds exactly the signed bytes: reading it would verify."""
    root, m = signed
    name = "sub/w.safetensors" if mode[:1] == ["--tensor"] else "sub/b.bin"
    swap_for_link(root / "sub", outside_copy(tmp_path, root, same_bytes=True))
    for follow in ([], ["--follow-symlinks"]):
        r = cli("verify", str(root), str(m), "--file", name, *mode, *follow)
        assert r.returncode == 2, r.stdout + r.stderr
        reason = "symbolic link points outside the root" if follow else "symbolic link refused"
        assert details(r.stdout)[name] == ("!", "sub: " + reason + ("" if follow else " (use --follow-symlinks)"))
        assert_one_line_error(r, name, reason)


def test_single_file_through_a_link_inside_the_tree_when_allowed(cli, signed):
    root, m = signed
    link_inside(root)
    r = cli("verify", str(root), str(m), "--file", "sub/b.bin", "--range", "0:10")
    assert r.returncode == 2 and "symbolic link refused" in r.stderr
    r = cli("verify", str(root), str(m), "--file", "sub/b.bin", "--range", "0:10", "--follow-symlinks")
    assert r.returncode == 0, r.stdout + r.stderr


def test_single_file_named_as_itself_is_opened_as_named(cli, signed, tmp_path):
    """PATH is yours: a file named directly (not a tree) is opened as named, links in PATH included."""
    root, m = signed
    (tmp_path / "shortcut").symlink_to(root / "sub" / "b.bin")
    r = cli("verify", str(tmp_path / "shortcut"), str(m), "--file", "sub/b.bin")
    assert r.returncode == 0, r.stdout + r.stderr


def test_verified_open_below_a_tree_applies_the_policy(signed, tmp_path):
    root, m = signed
    with merkle.open(root, m, name="sub/b.bin") as f:  # a tree and a name in it
        assert f.read() == (root / "sub" / "b.bin").read_bytes()
    swap_for_link(root / "sub", outside_copy(tmp_path, root, same_bytes=True))
    with pytest.raises(SourceError, match="sub: symbolic link refused"):
        merkle.open(root, m, name="sub/b.bin")
    with pytest.raises(SourceError, match="sub: symbolic link points outside the root"):
        merkle.open(root, m, name="sub/b.bin", follow_symlinks=True)


def _git_blob(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def test_hf_snapshot_link_outside_blobs_is_never_opened_by_single_file_modes(cli, tmp_path):
    """HF3: a snapshot file must be a link into the repo folder's blobs/.  The link is made to point at a copy of
    the signed bytes outside the cache: every mode refuses it, `--file` included."""
    folder = tmp_path / "models--org--name"
    commit = "a" * 40
    snapshot = folder / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (folder / "blobs").mkdir()
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(commit)
    data = b'{"hidden_size": 384}\n'
    etag = _git_blob(data)
    (folder / "blobs" / etag).write_bytes(data)
    (snapshot / "config.json").symlink_to(f"../../blobs/{etag}")
    m = tmp_path / "m.json"
    r = cli("build", str(folder), "-o", str(m))
    assert r.returncode == 0, r.stderr
    r = cli("verify", str(folder), str(m), "--file", "config.json")
    assert r.returncode == 0, r.stdout + r.stderr
    (tmp_path / "copy.json").write_bytes(data)
    (snapshot / "config.json").unlink()
    (snapshot / "config.json").symlink_to(tmp_path / "copy.json")
    r = cli("verify", str(folder), str(m))
    assert r.returncode == 2 and details(r.stdout)["config.json"][0] == "!"
    for mode in ([], ["--range", "0:4"]):
        r = cli("verify", str(folder), str(m), "--file", "config.json", *mode)
        assert r.returncode == 2, r.stdout + r.stderr
        assert details(r.stdout)["config.json"][0] == "!"
        assert_one_line_error(r, "config.json", "outside")


def test_hf_verify_of_a_local_dir_reports_files_behind_a_refused_link(cli, tmp_path):
    """`merkle hf verify` on a local_dir checkout: a downloaded directory swapped for a link to other bytes is an
    error for the files its download metadata names, not "not downloaded"."""
    root = tmp_path / "ld"
    commit = "b" * 40
    data = os.urandom(3000)
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "b.bin").write_bytes(data)
    meta = root / ".cache" / "huggingface" / "download" / "sub" / "b.bin.metadata"
    meta.parent.mkdir(parents=True)
    meta.write_text(f"{commit}\n{_git_blob(data)}\n1700000000.0\n")
    r = cli("hf", "verify", str(root))
    assert r.returncode == 0, r.stdout + r.stderr
    other = tmp_path / "other"
    other.mkdir()
    (other / "b.bin").write_bytes(os.urandom(3000))
    swap_for_link(root / "sub", other)
    r = cli("hf", "verify", str(root))
    got = details(r.stdout)
    assert got["sub/b.bin"] == ("!", "sub: symbolic link refused (use --follow-symlinks)"), r.stdout
    assert r.returncode == 2


def test_sampled_audit_of_a_tree_reports_refused_links(cli, signed, tmp_path):
    """`merkle audit DIR --sample` lists the tree like every mode: a listed file behind a refused link is an error,
    and an unlisted link or FIFO is reported, not dropped."""
    root, m = signed
    (root / "extra-link").symlink_to(tmp_path)
    r = cli("audit", str(root), str(m), "--sample", "1", "--seed", "1")
    assert r.returncode == 1, r.stdout + r.stderr
    assert details(r.stdout)["extra-link"] == ("+", "symbolic link refused (use --follow-symlinks)")
    (root / "extra-link").unlink()
    swap_for_link(root / "sub", outside_copy(tmp_path, root, same_bytes=False))
    r = cli("audit", str(root), str(m), "--sample", "1", "--seed", "1")
    got = details(r.stdout)
    assert got["sub/b.bin"] == ("!", "sub: symbolic link refused (use --follow-symlinks)"), r.stdout
    assert r.returncode in (1, 2)
