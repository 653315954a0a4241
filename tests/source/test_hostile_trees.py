"""Hostile trees: special files, links, names that are no canonical path, files changed or
replaced under the walk: each an error naming the file, never a hang or a silent skip."""

import os
import socket
from pathlib import Path

import pytest
from support.cli import assert_one_line_error

import merkle
from merkle.hashing.engine import hash_files
from merkle.source.walk import walk
from merkle.tree.hasher import tree_hasher


def test_fifo_in_tree_fails_build_without_hanging_or_writing(cli, model_dir, tmp_path):
    os.mkfifo(model_dir / "pipe")
    m = tmp_path / "m.json"
    r = cli("build", str(model_dir), "-o", str(m), timeout=20)
    assert r.returncode == 2
    assert_one_line_error(r, "pipe", "FIFO")
    assert sorted(os.listdir(tmp_path)) == ["model"]


def test_fifo_in_place_of_a_listed_file_is_an_error_not_a_hang(cli, model_dir, tmp_path):
    m = tmp_path / "m.json"
    merkle.build(model_dir).save(m)
    (model_dir / "config.json").unlink()
    os.mkfifo(model_dir / "config.json")
    r = cli("verify", str(model_dir), str(m), timeout=20)
    assert r.returncode == 2
    assert "! config.json  (a FIFO, not a regular file)" in r.stdout.splitlines()


def test_socket_and_device_are_refused(model_dir):
    s = socket.socket(socket.AF_UNIX)
    try:
        s.bind(str(model_dir / "sock"))
        listing = walk(model_dir)
        assert [(p.path, p.reason) for p in listing.problems] == [("sock", "a socket, not a regular file")]
    finally:
        s.close()
    r = merkle.hash_paths(["/dev/null"])
    assert r[0].error is not None and "character device" in r[0].error.message


def test_symlinks_refused_by_default_and_never_followed_out(cli, model_dir, tmp_path):
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    (model_dir / "inside-link").symlink_to(model_dir / "config.json")
    m = tmp_path / "m.json"
    r = cli("build", str(model_dir), "-o", str(m))
    assert r.returncode == 2
    assert_one_line_error(r, "inside-link", "symbolic link refused")
    r = cli("build", str(model_dir), "-o", str(m), "--follow-symlinks")
    assert r.returncode == 0, r.stderr
    assert '"inside-link"' in m.read_text()
    (model_dir / "escape").symlink_to(outside)
    r = cli("build", str(model_dir), "-o", str(tmp_path / "m2.json"), "--follow-symlinks")
    assert r.returncode == 2
    assert_one_line_error(r, "escape", "outside the root")


def test_directory_symlink_loop_is_reported(model_dir):
    (model_dir / "loop").symlink_to(model_dir)
    listing = walk(model_dir, follow_symlinks=True)
    assert any(p.path == "loop" for p in listing.problems)


def test_file_changed_after_listing_is_an_error(model_dir):
    listing = walk(model_dir)
    target = model_dir / "model.safetensors"
    with open(target, "ab") as f:
        f.write(b"more")
    digests = hash_files(listing.files, tree_hasher("blake3"), 4096)
    bad = [d for d in digests if d.error is not None]
    assert [d.path for d in bad] == ["model.safetensors"]
    assert "changed" in bad[0].error.message


def test_file_replaced_after_listing_is_an_error(model_dir):
    listing = walk(model_dir)
    target = model_dir / "config.json"
    target.unlink()
    target.write_text('{"hidden_size": 384}\n')  # same content, new inode
    digests = hash_files(listing.files, tree_hasher("blake3"), 4096)
    assert [d.path for d in digests if d.error is not None] == ["config.json"]


def test_unsupported_names_are_reported_not_skipped(model_dir):
    (model_dir / "back\\slash").write_text("x")
    (model_dir / "new\nline").write_text("x")
    nfd = "cafe\u0301"
    (model_dir / nfd).write_text("x")
    listing = walk(model_dir)
    reasons = sorted(p.reason for p in listing.problems)
    assert len(reasons) == 3
    assert all(r.startswith("unsupported file name") for r in reasons)
    with pytest.raises(merkle.SourceError, match="unsupported file name"):
        merkle.build(model_dir)


def test_non_utf8_name_is_reported(model_dir):
    os.close(os.open(os.path.join(os.fsencode(model_dir), b"bad\xffname"), os.O_CREAT | os.O_WRONLY))
    listing = walk(model_dir)
    assert [p.reason for p in listing.problems] == ["unsupported file name: not valid UTF-8"]


def test_case_collision_refused_at_build(model_dir):
    (model_dir / "CONFIG.json").write_text("{}")
    with pytest.raises(merkle.SourceError, match="differ only in case"):
        merkle.build(model_dir)


def test_read_error_keeps_its_cause(tmp_path):
    with pytest.raises(merkle.SourceError) as info:
        merkle.hash_file(tmp_path / "absent")
    assert "absent" in str(info.value)


def test_empty_dir_of_walk_is_fine(tmp_path: Path):
    d = tmp_path / "empty"
    d.mkdir()
    m = merkle.build(d)
    assert m.files == () and merkle.verify(d, m)


@pytest.mark.parametrize(
    "char", ["\u200b", "\u200e", "\u00ad", "\ufeff", "\u2060", "\ufe0f", "\u3164", "\U000e0041", "\u2028", "\u061c"]
)
def test_invisible_characters_in_names_are_refused_by_build(cli, model_dir, tmp_path, char):
    """P7: two names that print alike cannot both be listed; the build stops
    with one line naming the file, escaped, and writes nothing."""
    (model_dir / f"config{char}.json").write_text("{}")
    out = tmp_path / "m.json"
    r = cli("build", str(model_dir), "-o", str(out))
    assert r.returncode == 2, r.stdout + r.stderr
    assert_one_line_error(r, "config" + ascii(char)[1:-1] + ".json", "invisible or formatting character")
    assert r.stderr.isascii() and not out.exists()
    with pytest.raises(merkle.SourceError, match="invisible"):
        merkle.build(model_dir)


def test_file_with_bytes_past_its_listed_size_is_an_error():
    # procfs reports size 0 for files that have content.
    (d,) = merkle.hash_paths(["/proc/self/status"])
    assert d.error is not None and "past its listed size" in d.error.message


def test_bidi_and_c1_control_names_are_refused(model_dir):
    (model_dir / "evil\u202etxt.exe").write_text("x")
    (model_dir / "c1\u0085name").write_text("x")
    reasons = sorted(p.reason for p in walk(model_dir).problems)
    assert reasons == ["unsupported file name: contains a control or bidirectional formatting character"] * 2


def test_build_error_names_the_file_under_the_root(model_dir, tmp_path):
    listing_root = str(model_dir)
    os.mkfifo(model_dir / "late")  # walk sees it: the message must name model/late
    with pytest.raises(merkle.SourceError) as info:
        merkle.build(listing_root)
    assert str(info.value).startswith(os.path.join(listing_root, "late"))
