"""Bad and hostile input: one clear line naming the file, the documented exit
code, no traceback, no hang, nothing half-written."""

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from support.cli import assert_one_line_error, statuses

import merkle
from merkle.errors import FormatError, PathError, UnsupportedError
from merkle.hashing.engine import hash_files
from merkle.source.walk import walk
from merkle.tree.hasher import tree_hasher


@pytest.fixture
def manifest_doc(model_dir, tmp_path):
    m = tmp_path / "good.json"
    merkle.build(model_dir, chunk_size=4096).save(m)
    return json.loads(m.read_text())


def _mutations(doc):
    """(name, expected message, raw manifest bytes): each breaks one rule."""

    def dump(d):
        return json.dumps(d).encode()

    def with_files(fn):
        d = json.loads(json.dumps(doc))
        fn(d["files"])
        return dump(d)

    def with_top(key, value):
        d = dict(doc)
        d[key] = value
        return dump(d)

    def set_path(p):
        return with_files(lambda fs: fs[0].__setitem__("path", p))

    raw = dump(doc)
    yield "duplicate-key", "duplicate key", raw[:-1] + b', "root": "' + doc["root"].encode() + b'"}'
    yield "nan-size", "NaN", raw.replace(f'"size": {doc["files"][0]["size"]}'.encode(), b'"size": NaN', 1)
    yield "float-size", "non-integer", raw.replace(f'"size": {doc["files"][0]["size"]}'.encode(), b'"size": 1.5', 1)
    yield "infinity", "Infinity", raw.replace(b'"chunk_size": 4096', b'"chunk_size": Infinity')
    yield "not-json", "invalid JSON", b"{not json"
    yield "not-utf8", "not UTF-8", b'{"format": "\xff"}'
    yield "not-object", "not a JSON object", b"[]"
    yield "deep-nesting", "nested too deeply", b"[" * 100000 + b"]" * 100000
    yield "unknown-format", "unsupported manifest format", with_top("format", "merkle-manifest-v3")
    yield "unknown-algorithm", "unsupported algorithm", with_top("algorithm", "md5")
    yield "unknown-key", "unknown key", with_top("comment", "hi")
    yield "chunk-not-power-of-two", "power of two", with_top("chunk_size", 4095)
    yield "chunk-bool", "power of two", with_top("chunk_size", True)
    yield "upper-hex-root", "lower-case hex", with_top("root", doc["root"].upper())
    yield "short-root", "lower-case hex", with_top("root", doc["root"][:-2])
    yield "root-mismatch", "does not match", with_top("root", "0" * 64)
    yield "path-dotdot", "'..' component", set_path("../etc/passwd")
    yield "path-absolute", "absolute path", set_path("/etc/passwd")
    yield "path-backslash", "backslash", set_path("a\\b")
    yield "path-nul", "control character", set_path("a\x00b")
    yield "path-empty-part", "empty path component", set_path("a//b")
    yield "path-dot", "'.' or '..' component", set_path("./a")
    yield "path-empty", "empty path", set_path("")
    yield "path-nfd", "NFC", set_path("vocabula\u0301rio.txt")
    yield "path-zero-width-space", "invisible or formatting character (U+200B)", set_path("config.json\u200b")
    yield "path-left-to-right-mark", "invisible or formatting character (U+200E)", set_path("\u200econfig.json")
    yield "path-soft-hyphen", "invisible or formatting character (U+00AD)", set_path("con\u00adfig.json")
    yield "path-variation-selector", "invisible or formatting character (U+FE0F)", set_path("a\u2764\ufe0f.json")
    yield "path-hangul-filler", "invisible or formatting character (U+3164)", set_path("\u3164.json")
    yield "path-tag", "invisible or formatting character (U+E0041)", set_path("a\U000e0041.json")
    yield "path-line-separator", "invisible or formatting character (U+2028)", set_path("a\u2028b")
    yield "path-not-string", "not a string", set_path(7)
    yield "negative-size", "not a byte count", with_files(lambda fs: fs[0].__setitem__("size", -1))
    yield "bool-size", "not a byte count", with_files(lambda fs: fs[0].__setitem__("size", True))
    yield "duplicate-path", "duplicate path", with_files(lambda fs: fs.insert(1, dict(fs[0])))
    yield "unsorted", "not in sorted order", with_files(lambda fs: fs.reverse())
    yield (
        "case-collision",
        "differ only in case",
        with_files(
            lambda fs: (fs.append({**fs[-1], "path": fs[-1]["path"].upper()}), fs.sort(key=lambda f: f["path"]))
        ),
    )
    yield "entry-unknown-key", "unknown key 'mode'", with_files(lambda fs: fs[0].__setitem__("mode", 420))
    yield "entry-missing-key", "missing key 'root'", with_files(lambda fs: fs[0].pop("root"))
    # v2 fields (origin, hub) are refused in a v1 manifest, and checked in a v2 one (rules M6-M8).
    sha = "ab" * 32
    origin = {"type": "huggingface", "repo": "org/name", "repo_type": "model", "revision": "0" * 40}

    def v2(fn=None, top=None):
        d = json.loads(json.dumps(doc))
        d = {"format": "merkle-manifest-v2", **{k: v for k, v in d.items() if k != "format"}}
        d = (
            {k: d[k] for k in ("format", "algorithm", "chunk_size", "exclude")}
            | {"origin": origin}
            | {"root": d["root"], "files": d["files"]}
        )
        for k, v in (top or {}).items():
            d[k] = v
        if fn:
            fn(d["files"])
        return dump(d)

    yield "v1-with-origin", "unknown key 'origin'", with_top("origin", origin)
    yield "v1-with-hub", "unknown key 'hub'", with_files(lambda fs: fs[0].__setitem__("hub", {"sha256": sha}))
    yield "v2-missing-origin", "missing key 'origin'", v2(top={"origin": None}).replace(b'"origin": null, ', b"")
    yield "v2-nothing-new", "without an origin, a zarr layout or any hub", v2(top={"origin": None})
    yield "v2-origin-type", "unsupported origin type", v2(top={"origin": {**origin, "type": "git"}})
    yield "v2-origin-revision", "commit hash", v2(top={"origin": {**origin, "revision": "main"}})
    yield "v2-origin-repo", "repository id", v2(top={"origin": {**origin, "repo": "../../etc"}})
    yield "v2-origin-repo-type", "repo_type", v2(top={"origin": {**origin, "repo_type": "bucket"}})
    yield "v2-origin-extra", "unknown key 'url'", v2(top={"origin": {**origin, "url": "x"}})
    yield "v2-hub-kind", "unknown hub identity 'md5'", v2(lambda fs: fs[0].__setitem__("hub", {"md5": sha[:32]}))
    yield "v2-hub-two", "one of", v2(lambda fs: fs[0].__setitem__("hub", {"sha256": sha, "gitBlob": sha[:40]}))
    yield "v2-hub-short", "64 lower-case hex", v2(lambda fs: fs[0].__setitem__("hub", {"sha256": sha[:40]}))
    yield "v2-hub-upper", "40 lower-case hex", v2(lambda fs: fs[0].__setitem__("hub", {"gitBlob": "AB" * 20}))


_SHAPE = {
    "format": "",
    "algorithm": "",
    "chunk_size": 4096,
    "exclude": [],
    "root": "",
    "files": [{"path": "a", "size": 1, "root": ""}],
}
MUTATIONS = [name for name, _, _ in _mutations(_SHAPE)]


@pytest.mark.parametrize("name", MUTATIONS)
def test_hostile_manifest_is_refused(cli, model_dir, tmp_path, manifest_doc, name):
    ((message, raw),) = [(m, raw) for n, m, raw in _mutations(manifest_doc) if n == name]
    bad = tmp_path / f"{name}.json"
    bad.write_bytes(raw)
    with pytest.raises(FormatError, match=re.escape(message)):
        merkle.Manifest.load(bad)
    r = cli("verify", str(model_dir), str(bad))
    assert r.returncode == 2, (name, r.stdout, r.stderr)
    assert_one_line_error(r, str(bad), message)


def test_unknown_version_and_algorithm_are_unsupported(manifest_doc):
    for key, value in (("format", "merkle-manifest-v9"), ("algorithm", "sha1")):
        with pytest.raises(UnsupportedError):
            merkle.Manifest.from_json(json.dumps({**manifest_doc, key: value}).encode())


def test_escaping_paths_are_path_errors(manifest_doc):
    doc = json.loads(json.dumps(manifest_doc))
    doc["files"][0]["path"] = "../x"
    with pytest.raises(FormatError, match=r"'\.' or '\.\.' component"):
        merkle.Manifest.from_json(json.dumps(doc).encode())
    with pytest.raises(PathError):
        merkle.format.paths.check_path("../x")


def test_oversized_manifest_is_refused_before_parsing(tmp_path, monkeypatch):
    big = tmp_path / "big.json"
    big.write_bytes(b" " * 2048)
    monkeypatch.setattr(merkle.format.manifest, "MAX_MANIFEST_BYTES", 1024)
    with pytest.raises(FormatError, match="limit"):
        merkle.Manifest.load(big)


def test_tampered_sidecar_is_ignored_with_a_warning(cli, model_dir, tmp_path):
    """S3: the sidecar is derived data; one that does not authenticate is
    ignored (with a one-line warning), and the content check still runs."""
    m = tmp_path / "m.json"
    merkle.build(model_dir, chunk_size=4096).save(m)
    side = tmp_path / "m.json.leaves"
    data = bytearray(side.read_bytes())
    data[-1] ^= 1
    side.write_bytes(bytes(data))
    with pytest.warns(merkle.errors.SidecarWarning, match="does not match its root"):
        assert merkle.Manifest.load(m).layers is None
    r = cli("verify", str(model_dir), str(m))
    assert r.returncode == 0, r.stderr
    warning = [line for line in r.stderr.splitlines() if "warning" in line]
    assert len(warning) == 1 and "m.json.leaves" in warning[0] and "(ignored)" in warning[0]
    side.write_bytes(bytes(data[:-32]))
    (model_dir / "config.json").write_text("tampered")
    r = cli("verify", str(model_dir), str(m))
    assert r.returncode == 1 and "* config.json  (size 8, expected 21)" in r.stdout


def test_stale_sidecar_after_rebuild_to_stdout(cli, model_dir, tmp_path):
    m = tmp_path / "m.json"
    merkle.build(model_dir, chunk_size=4096).save(m)
    (model_dir / "model.safetensors").write_bytes(os.urandom(5 * 4096))
    r = cli("build", str(model_dir), "--chunk-size", "4K", "-q")
    m.write_text(r.stdout)
    r = cli("verify", str(model_dir), str(m))
    assert r.returncode == 0 and "(ignored)" in r.stderr


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


def test_read_error_keeps_its_cause(tmp_path):
    with pytest.raises(merkle.SourceError) as info:
        merkle.hash_file(tmp_path / "absent")
    assert "absent" in str(info.value)


def test_directory_as_manifest(cli, model_dir):
    r = cli("verify", str(model_dir), str(model_dir))
    assert r.returncode == 2
    assert_one_line_error(r, "a directory")


def test_empty_dir_of_walk_is_fine(tmp_path: Path):
    d = tmp_path / "empty"
    d.mkdir()
    m = merkle.build(d)
    assert m.files == () and merkle.verify(d, m)


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
