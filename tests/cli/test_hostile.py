"""Bad and hostile input on the command line: one clear line naming the file, the documented exit
code, no traceback, no hang, nothing half-written (outputs in the way or inside the tree, missing paths,
sums files, names escaped as `hash` writes them)."""

import json
import os
import subprocess
import sys

import pytest
from support.cli import assert_one_line_error, statuses


def test_build_refuses_to_replace_special_files(cli, model_dir, tmp_path):
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    r = cli("build", str(model_dir), "-o", str(fifo), timeout=20)
    assert r.returncode == 2
    assert_one_line_error(r, "out.fifo", "a FIFO is in the way")
    assert fifo.is_fifo() and not (tmp_path / "out.fifo.leaves").exists()
    link = tmp_path / "link.json"
    link.symlink_to(tmp_path / "elsewhere.json")
    r = cli("build", str(model_dir), "-o", str(link))
    assert_one_line_error(r, "link.json", "symbolic link is in the way")
    assert link.is_symlink()
    (tmp_path / "adir").mkdir()
    r = cli("build", str(model_dir), "-o", str(tmp_path / "adir"))
    assert_one_line_error(r, "adir", "directory is in the way")
    assert not (tmp_path / "adir.leaves").exists()


def test_missing_path_and_missing_manifest(cli, model_dir, tmp_path):
    r = cli("build", str(tmp_path / "nope"), "-o", str(tmp_path / "m.json"))
    assert r.returncode == 2
    assert_one_line_error(r, "nope", "No such file")
    r = cli("verify", str(model_dir), str(tmp_path / "nope.json"))
    assert r.returncode == 2
    assert_one_line_error(r, "nope.json")
    r = cli("build", str(model_dir / "config.json"), "-o", str(tmp_path / "m.json"))
    assert_one_line_error(r, "config.json", "expected a directory")


def test_unwritable_output_leaves_nothing(cli, model_dir, tmp_path):
    r = cli("build", str(model_dir), "-o", str(tmp_path / "no" / "such" / "dir" / "m.json"))
    assert r.returncode == 2
    assert_one_line_error(r, "m.json", "cannot write")


def test_malformed_sums_file(cli, tmp_path):
    sums = tmp_path / "SUMS"
    sums.write_text("deadbeef  file\n")
    r = cli("hash", "--check", str(sums))
    assert r.returncode == 2
    assert_one_line_error(r, "SUMS", "line 1")


def test_hash_missing_file_is_exit_2_and_others_still_print(cli, tmp_path):
    good = tmp_path / "good"
    good.write_bytes(b"data")
    r = cli("hash", str(tmp_path / "missing"), str(good))
    assert r.returncode == 2
    assert r.stdout.strip().endswith(str(good))
    assert "missing: No such file" in r.stderr


def test_directory_as_manifest(cli, model_dir):
    r = cli("verify", str(model_dir), str(model_dir))
    assert r.returncode == 2
    assert_one_line_error(r, "a directory")


def test_manifest_written_inside_the_tree_excludes_itself(cli, model_dir):
    out = model_dir / "MANIFEST.json"
    r = cli("build", str(model_dir), "-o", str(out), "--chunk-size", "4K")
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    assert "MANIFEST.json" not in [f["path"] for f in doc["files"]]
    assert doc["exclude"][-5:] == [
        "/MANIFEST.json",
        "/MANIFEST.json.leaves",
        "/MANIFEST.json.objects.json",
        "/MANIFEST.json.manifest",
        "/MANIFEST.json.checkpoint",
    ]
    r = cli("verify", str(model_dir), str(out))
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize(
    "how", [("--sign", "KEY", "--compact"), ("--sign", "KEY"), ("--sign", "KEY", "--format", "oms"), ()]
)
def test_every_output_written_inside_the_tree_is_excluded(cli, model_dir, tmp_path, how):
    """Issue 14 item 11: `build --sign --compact -o` inside the tree hashed its
    own BUNDLE.manifest on the next run.  Every file a build writes beside its
    output (OUT, .leaves, .objects.json, .manifest, .checkpoint) is excluded,
    so a rebuild gives the same root and the tree verifies."""
    key = tmp_path / "k"
    assert cli("keygen", "-o", str(key)).returncode == 0
    args = [str(key) if a == "KEY" else a for a in how]
    out = model_dir / "B.json"
    for suffix in (".objects.json", ".checkpoint"):  # left by an earlier run
        (model_dir / f"B.json{suffix}").write_text("{}")
    roots = []
    for _ in range(2):
        r = cli("build", str(model_dir), *args, "-o", str(out), "--chunk-size", "4K", "--json")
        assert r.returncode == 0, r.stderr
        roots.append(json.loads(r.stdout)["root"])
    assert roots[0] == roots[1]
    outputs = sorted(p.name for p in model_dir.iterdir() if p.name.startswith("B.json"))
    if how and "oms" not in how:
        assert {"B.json", "B.json.leaves"} <= set(outputs)
    if "--compact" in how:
        listed = [f["path"] for f in json.loads((model_dir / "B.json.manifest").read_text())["files"]]
        assert not [p for p in listed if p.startswith("B.json")], listed
    verify = ["verify", str(model_dir), str(out)] + (["--key", f"{key}.pub"] if how else [])
    r = cli(*verify)
    assert r.returncode == 0, (outputs, r.stdout, r.stderr)
    listed = statuses(r.stdout)
    # An OpenSSF bundle writes only itself: the stale files are signed content there.
    assert [p for p in listed if p.startswith("B.json")] == (
        [] if "oms" not in how else ["B.json.checkpoint", "B.json.objects.json"]
    )


def test_build_json_needs_an_output_file(cli, model_dir):
    r = cli("build", str(model_dir), "--json")
    assert r.returncode == 2
    assert_one_line_error(r, "--json")


def test_sums_names_with_carriage_return_round_trip(cli, tmp_path):
    odd = tmp_path / "a\rb\u2028c"
    odd.write_bytes(b"x")
    sums = tmp_path / "SUMS"
    with open(sums, "wb") as out:  # raw bytes: text-mode capture would turn '\r' into '\n'
        subprocess.run([sys.executable, "-m", "merkle", "hash", str(odd)], stdout=out, check=True)
    r = cli("hash", "-c", str(sums))
    assert r.returncode == 0, r.stdout + r.stderr


def test_check_lines_escape_names_as_hash_writes_them(cli, tmp_path):
    """A name in a sums file (unauthenticated) cannot print a line of its
    own: `--check` escapes it with b3sum's rule, as `hash` does."""
    odd = tmp_path / "a\nforged.bin: OK\nb"
    odd.write_bytes(b"x")
    sums = tmp_path / "SUMS"
    with open(sums, "wb") as out:
        subprocess.run([sys.executable, "-m", "merkle", "hash", str(odd), str(tmp_path / "gone")], stdout=out)
    (tmp_path / "gone").write_bytes(b"y")  # listed, then changed: FAILED
    sums.write_bytes(sums.read_bytes() + ("0" * 64 + f"  {tmp_path}/gone\n").encode())
    r = cli("hash", "-c", str(sums))
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines == [
        "\\" + str(tmp_path).replace("\\", "\\\\") + "/a\\nforged.bin: OK\\nb: OK",
        f"{tmp_path}/gone: FAILED",
    ], lines


def test_an_error_quoting_hostile_input_stays_short(cli, model_dir, tmp_path):
    """A message that quotes what a hostile document says (here a 1 MB
    mediaType) is cut: one line a person can read, not the document."""
    bad = tmp_path / "b.json"
    bad.write_text(
        json.dumps({"mediaType": "\x1b[2K" + "x" * 1_000_000, "verificationMaterial": {}, "dsseEnvelope": {}})
    )
    r = cli("verify", str(model_dir), str(bad))
    assert r.returncode == 1, r.stderr[:300]
    assert_one_line_error(r, str(bad), "unsupported bundle mediaType", "characters)")
    assert len(r.stderr) < 3000 and "\x1b" not in r.stderr


def test_error_messages_stay_on_one_line(cli, tmp_path):
    r = cli("hash", str(tmp_path / "no\nsuch"))
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "no\\nsuch" in r.stderr
