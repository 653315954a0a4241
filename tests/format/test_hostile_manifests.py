"""Hostile manifests and leaf sidecars: every broken rule refused with one clear line and the
documented exit code, before anything is hashed; a bad sidecar ignored with a warning."""

import json
import os
import re

import pytest
from support.cli import assert_one_line_error

import merkle
from merkle.errors import FormatError, PathError, UnsupportedError


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
    yield "v2-origin-type", "unsupported origin type", v2(top={"origin": {**origin, "type": "svn"}})
    git = {"type": "git", "url": "https://example.com/r.git", "revision": "ab" * 20, "dirty": False}
    yield "v2-git-origin-hub-keys", "origin", v2(top={"origin": {**origin, "type": "git"}})
    yield "v2-git-origin-revision", "commit hash", v2(top={"origin": {**git, "revision": "main"}})
    yield "v2-git-origin-url", "url", v2(top={"origin": {**git, "url": "https://x/\n"}})
    yield "v2-git-origin-dirty", "dirty", v2(top={"origin": {**git, "dirty": "no"}})
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


def _claiming(tmp_path, sizes):
    """An unsigned manifest whose files claim `sizes` (4 KiB chunks), saved
    as claims.json: nothing on disk backs the claims."""
    from merkle.format.manifest import FileEntry, Manifest

    files = [FileEntry(f"f{i}.bin", size, bytes([i]) * 32) for i, size in enumerate(sizes)]
    m = tmp_path / "claims.json"
    Manifest.create(files, chunk_size=4096).save(m)
    return m


def test_a_manifest_claiming_an_exabyte_file_does_not_make_its_sidecar_read(tmp_path):
    """A sidecar's length comes from the manifest, which need not be signed:
    a claim of 2**60 bytes (8 TiB of leaf hashes) beside a sparse sidecar
    must be refused before a byte of it is read, not read into memory."""
    m = _claiming(tmp_path, [1 << 60])
    side = tmp_path / "claims.json.leaves"
    with open(side, "wb") as f:
        f.truncate(5 << 30)  # sparse: costs no disk, would cost 5 GiB of reads
    with pytest.warns(merkle.errors.SidecarWarning, match=r"over the \d+-byte limit \(ignored\)"):
        assert merkle.Manifest.load(m).layers is None


def test_a_wrong_first_layer_ends_the_sidecar_read(tmp_path, monkeypatch):
    """Layers are checked as they are read: a sidecar whose first layer does
    not rebuild its root is refused without reading the rest."""
    from merkle.format import leaves

    m = _claiming(tmp_path, [3 * 4096, 64 << 20])
    side = tmp_path / "claims.json.leaves"
    want = leaves.HEADER_SIZE + 32 * (3 + (64 << 20) // 4096)
    loaded = merkle.Manifest.load(m, layers=False)
    with open(side, "wb") as f:
        f.write(leaves.LeafLayers._header(loaded))
        f.truncate(want)
    asked = []
    real = leaves._read_exactly
    monkeypatch.setattr(leaves, "_read_exactly", lambda fd, n: asked.append(n) or real(fd, n))
    with pytest.warns(merkle.errors.SidecarWarning, match="leaf layer of 'f0.bin' does not match its root"):
        assert merkle.Manifest.load(m).layers is None
    assert asked == [leaves.HEADER_SIZE, 3 * 32]
