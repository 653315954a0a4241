"""Hugging Face-aware `merkle build`/`merkle verify` (docs/hf.md M6-M8): a manifest records the origin and
each file's Hub identity, signed with it; a corrupted blob is refused at build; the identities travel from a
cache to a local_dir and back; what sits beside a compact bundle is not trusted."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from support import hf_layout as hl
from support.cli import assert_one_line_error, run_cli, statuses
from support.hf import (
    LFS,
    NESTED,
    README,
    REPO_ID,
    SPARSE,
    all_ok,
    details,
    fresh_cache,
    fresh_local,
    hub_oracle,
    payload_manifest,
)

import merkle
from merkle.errors import IntegrityError

# --------------------------------------------------------------------------------------------------------------------
# 5. Manifests and signing (M6-M8)


def check_v2(doc: dict, repo: hl.RepoInfo, repo_id: str | None) -> None:
    assert doc["format"] == "merkle-manifest-v2"
    assert doc["origin"] == {"type": "huggingface", "repo": repo_id, "repo_type": "model", "revision": repo.commit}
    files = {f["path"]: f for f in doc["files"]}
    assert set(files) == set(repo.files)
    for path, f in files.items():
        assert f["size"] == len(repo.files[path].read_bytes())
        assert f["hub"] == hub_oracle(repo, path), path
        info = repo.files[path]  # and git agrees
        assert f["hub"] == ({"sha256": info.lfs_sha256} if info.is_lfs else {"gitBlob": info.blob_id})


def test_manifest_records_origin_and_hub(cache_manifest, repo):
    check_v2(json.loads(cache_manifest.read_text()), repo, REPO_ID)


def test_signed_bundle_covers_origin_and_hub(bundle, repo, cache_manifest):
    signed = payload_manifest(bundle)
    check_v2(signed, repo, REPO_ID)
    assert signed["root"] == json.loads(cache_manifest.read_text())["root"]


def test_signed_bundle_verifies_sparse_local_dir(tmp_path, repo, bundle, key):
    layout = fresh_local(tmp_path, repo, files=SPARSE)
    r = run_cli("verify", str(layout.local_dir), str(bundle), "--key", f"{key}.pub", "--sparse")
    assert r.returncode == 0, r.stdout + r.stderr
    assert statuses(r.stdout) == {**dict.fromkeys(repo.files, "~"), **dict.fromkeys(SPARSE, "=")}
    assert "signature ok" in r.stderr

    r = run_cli("verify", str(layout.local_dir), str(bundle), "--key", f"{key}.pub")
    assert r.returncode == 1
    assert {p for p, s in statuses(r.stdout).items() if s == "-"} == set(repo.files) - set(SPARSE)

    hl.corrupt(layout.file_path("modules.json"), 3, keep_mtime=True)
    r = run_cli("verify", str(layout.local_dir), str(bundle), "--key", f"{key}.pub", "--sparse")
    assert r.returncode == 1
    assert statuses(r.stdout)["modules.json"] == "*"


def test_tampered_hub_identity_breaks_the_signature(tmp_path, repo, bundle, key):
    doc = json.loads(bundle.read_text())
    statement = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))
    entry = next(f for f in statement["predicate"]["manifest"]["files"] if f["path"] == LFS)
    entry["hub"] = {"sha256": "0" * 64}
    doc["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    forged = tmp_path / "forged.bundle"
    forged.write_text(json.dumps(doc))
    layout = fresh_local(tmp_path, repo, files=SPARSE)
    r = run_cli("verify", str(layout.local_dir), str(forged), "--key", f"{key}.pub", "--sparse")
    assert r.returncode == 1
    assert r.stdout == ""
    assert_one_line_error(r, "signature")


def test_cache_manifest_verifies_local_dir_and_back(repo, local, cache, cache_manifest, local_manifest):
    r = run_cli("verify", str(local.local_dir), str(cache_manifest))
    assert r.returncode == 0, r.stdout + r.stderr
    assert statuses(r.stdout) == all_ok(repo)
    assert ".cache" not in r.stdout
    r = run_cli("verify", str(cache.repo_folder), str(local_manifest))
    assert r.returncode == 0, r.stdout + r.stderr
    assert statuses(r.stdout) == all_ok(repo)
    a, b = json.loads(cache_manifest.read_text()), json.loads(local_manifest.read_text())
    assert a["origin"] == b["origin"] and a["files"] == b["files"] and a["root"] == b["root"]


@pytest.mark.parametrize("path", ["config.json", LFS])
def test_build_refuses_corrupted_blob(tmp_path, repo, path):
    layout = fresh_cache(tmp_path, repo)
    hl.corrupt(layout.blob_path(path), 1)
    out = tmp_path / "out" / "m.json"
    out.parent.mkdir()
    r = run_cli("build", str(layout.repo_folder), "-o", str(out))
    assert r.returncode == 1
    assert_one_line_error(r, path, "Hub identity")
    assert not out.exists() and not Path(f"{out}.leaves").exists()


def test_refused_build_leaves_nothing_behind(tmp_path, repo):
    """Nothing of a refused build stays in the output directory, not even the resume checkpoint: the build was not
    interrupted, it was refused, and the checkpoint holds digests of content the builder has just rejected.

    KNOWN MERKLE BUG (fails when written): `m.json.checkpoint` is left behind; see merkle/building.py `build`."""
    layout = fresh_cache(tmp_path, repo)
    hl.corrupt(layout.blob_path("config.json"), 1)
    out = tmp_path / "out" / "m.json"
    out.parent.mkdir()
    r = run_cli("build", str(layout.repo_folder), "-o", str(out))
    assert r.returncode == 1
    assert os.listdir(out.parent) == []


def test_build_signed_refuses_corrupted_blob(tmp_path, repo, key):
    layout = fresh_cache(tmp_path, repo)
    hl.corrupt(layout.blob_path(README), 1)
    out = tmp_path / "out" / "b.bundle"
    out.parent.mkdir()
    r = run_cli("build", str(layout.repo_folder), "--sign", str(key), "-o", str(out))
    assert r.returncode == 1
    assert_one_line_error(r, README)
    assert not out.exists() and not Path(f"{out}.leaves").exists()


def test_build_local_dir_user_file_has_no_hub(tmp_path, repo):
    layout = fresh_local(tmp_path, repo)
    (layout.local_dir / "notes.txt").write_text("mine\n")
    out = tmp_path / "m.json"
    r = run_cli("build", str(layout.local_dir), "-o", str(out))
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    assert doc["origin"]["repo"] is None and doc["origin"]["revision"] == repo.commit
    files = {f["path"]: f for f in doc["files"]}
    assert set(files) == set(repo.files) | {"notes.txt"}
    assert "hub" not in files["notes.txt"]
    assert all(files[p]["hub"] == hub_oracle(repo, p) for p in repo.files)


def test_python_build_records_hub_identities(tmp_path, repo, local):
    manifest = merkle.build(local.local_dir, repo_id=REPO_ID)
    assert manifest.origin is not None
    assert (manifest.origin.repo, manifest.origin.revision) == (REPO_ID, repo.commit)
    hub = {f.path: {f.hub[0]: f.hub[1]} for f in manifest.files if f.hub}
    assert hub == {p: hub_oracle(repo, p) for p in repo.files}
    layout = fresh_local(tmp_path, repo, files=SPARSE)
    hl.corrupt(layout.file_path(NESTED), 2, keep_mtime=True)
    with pytest.raises(IntegrityError) as e:
        merkle.build(layout.local_dir)
    assert e.value.path == NESTED


def test_compact_bundle_summary_carries_origin(tmp_path, repo, cache, key):
    out = tmp_path / "compact.bundle"
    r = run_cli("build", str(cache.repo_folder), "--sign", str(key), "--compact", "-o", str(out))
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    summary = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))["predicate"]["summary"]
    assert summary["origin"] == {"type": "huggingface", "repo": REPO_ID, "repo_type": "model", "revision": repo.commit}
    layout = fresh_local(tmp_path, repo, files=SPARSE)
    r = run_cli("verify", str(layout.local_dir), str(out), "--key", f"{key}.pub", "--sparse")
    assert r.returncode == 0, r.stdout + r.stderr
    assert {p for p, s in statuses(r.stdout).items() if s == "="} == set(SPARSE)


def test_hub_beside_a_compact_bundle_is_not_trusted(tmp_path, repo, cache, key, clone):
    """M8: the manifest kept beside a compact bundle is used without its `hub` entries (the signed summary does not
    vouch for them, so a pointer cannot be matched and is missing), whereas an unsigned manifest's own `hub` decides
    whether a pointer is the right one (HF8)."""
    out = tmp_path / "compact.bundle"
    r = run_cli("build", str(cache.repo_folder), "--sign", str(key), "--compact", "-o", str(out))
    assert r.returncode == 0, r.stderr
    beside = Path(f"{out}.manifest")
    doc = json.loads(beside.read_text())
    next(f for f in doc["files"] if f["path"] == LFS)["hub"] = {"sha256": "0" * 64}
    beside.write_text(json.dumps(doc))
    r = run_cli("verify", str(clone), str(out), "--key", f"{key}.pub", "--sparse")
    # The forged hub is dropped, so the pointer's object id cannot be checked: missing, even when sparse (HF8).
    assert r.returncode == 1, r.stdout + r.stderr
    assert details(r.stdout)[LFS][0] == "-" and "cannot be checked" in details(r.stdout)[LFS][1]

    unsigned = tmp_path / "unsigned.json"
    unsigned.write_text(json.dumps(doc))  # the same forged hub, now taken at its word
    r = run_cli("verify", str(clone), str(unsigned), "--sparse")
    assert r.returncode == 1
    assert statuses(r.stdout)[LFS] == "*"


@pytest.mark.parametrize("change", ["v1 with origin", "v1 with hub", "v2 with neither"])
def test_manifest_version_must_match_its_keys(tmp_path, cache, cache_manifest, change):
    doc = json.loads(cache_manifest.read_text())
    if change.startswith("v1"):
        doc["format"] = "merkle-manifest-v1"
        if change == "v1 with hub":
            del doc["origin"]
    else:
        doc["origin"] = None
        for f in doc["files"]:
            del f["hub"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    r = run_cli("verify", str(cache.repo_folder), str(bad))
    assert r.returncode == 2
    assert_one_line_error(r, str(bad))


def test_build_repo_id_must_match_cache(cache, tmp_path):
    r = run_cli("build", str(cache.repo_folder), "--repo-id", "someone/else", "-o", str(tmp_path / "m.json"))
    assert r.returncode == 2
    assert_one_line_error(r, "someone/else")
    assert not (tmp_path / "m.json").exists()
