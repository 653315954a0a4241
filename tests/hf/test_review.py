"""Review findings of the Hugging Face support: bookkeeping that is a link, stale leftovers of retried
downloads, manifests of the raw folder, claims (a revision, a repository id) without evidence."""

from __future__ import annotations

import base64
import json
import shutil

import pytest
from huggingface_hub._local_folder import write_download_metadata
from support import hf_layout as hl
from support.cli import assert_one_line_error, run_cli, statuses
from support.hf import (
    LFS,
    README,
    REPO_ID,
    SPARSE,
    all_ok,
    details,
    error_lines,
    fresh_cache,
    fresh_local,
    hf,
    jstatuses,
)

import merkle
from merkle.format.manifest import Manifest

# --------------------------------------------------------------------------------------------------------------------
# Review findings: bookkeeping that is a link, stale leftovers, raw-folder manifests, claims without evidence


@pytest.mark.parametrize("folder", ["download", "trees"])
def test_local_dir_bookkeeping_links_are_not_followed(tmp_path, repo, folder):
    """A `.cache/huggingface/download` or `trees` that is a symbolic link is never read (HF4): nothing outside the
    checkout can feed it metadata or a listing."""
    layout = fresh_local(tmp_path, repo, files=SPARSE)
    outside = tmp_path / "outside"
    shutil.copytree(layout.local_dir / ".cache" / "huggingface" / folder, outside)
    (outside / "passwords.metadata").write_text(f"{repo.commit}\n{'a' * 40}\n1.0\n")
    shutil.rmtree(layout.local_dir / ".cache" / "huggingface" / folder)
    (layout.local_dir / ".cache" / "huggingface" / folder).symlink_to(outside)
    r = hf(layout.local_dir)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "passwords" not in r.stdout
    assert {p for p, s in statuses(r.stdout).items() if s == "="} == set(SPARSE)


def test_local_dir_whose_cache_folder_is_a_link_is_a_plain_tree(tmp_path, repo):
    layout = fresh_local(tmp_path, repo, files=SPARSE)
    moved = tmp_path / "elsewhere"
    shutil.move(layout.local_dir / ".cache", moved)
    (layout.local_dir / ".cache").symlink_to(moved)
    r = hf(layout.local_dir)
    assert r.returncode == 2
    assert_one_line_error(r, str(layout.local_dir), "not a Hugging Face")


def test_snapshot_folder_that_is_a_link_is_refused(tmp_path, repo):
    """HF3: a `snapshots/<commit>` that is a link would let any directory pass for the snapshot."""
    layout = fresh_cache(tmp_path, repo)
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "config.json").write_bytes(hl.FileInfo.read_bytes(repo.files["config.json"]))
    shutil.rmtree(layout.snapshot)
    layout.snapshot.symlink_to(fake)
    r = hf(layout.repo_folder)
    assert r.returncode == 2
    assert_one_line_error(r, str(layout.repo_folder), "symbolic link")


def test_leftover_of_a_retried_download_is_not_partial(tmp_path, repo):
    """A killed attempt leaves `<etag>.<8 hex>.incomplete` behind; once a retry completed the file it is not a
    partial download (cache without a listing, and local_dir)."""
    layout = fresh_cache(tmp_path, repo, tree=False)
    blob = layout.blob_path("config.json")
    (blob.parent / f"{blob.name}.0123abcd.incomplete").write_bytes(blob.read_bytes()[:100])
    r = hf(layout.repo_folder)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "%" not in statuses(r.stdout).values()
    local = fresh_local(tmp_path, repo, files=SPARSE)
    hl.add_local_incomplete(local, "config.json", 50)  # huggingface_hub deletes the file first ...
    shutil.copy(repo.files["config.json"].content_path, local.file_path("config.json"))  # ... the retry restores it
    r = hf(local.local_dir)
    assert r.returncode == 0, r.stdout + r.stderr


def test_broken_link_of_an_excluded_file_is_ignored(tmp_path, repo, cache_manifest):
    layout = fresh_cache(tmp_path, repo)
    layout.blob_path("vocab.txt").unlink()
    out = tmp_path / "m.json"
    r = run_cli("build", str(layout.repo_folder), "--exclude", "vocab.txt", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert "vocab.txt" not in {f["path"] for f in json.loads(out.read_text())["files"]}


def test_partial_and_broken_link_give_one_verdict(tmp_path, repo):
    layout = fresh_cache(tmp_path, repo)
    blob = layout.blob_path("config.json")
    (blob.parent / f"{blob.name}.0123abcd.incomplete").write_bytes(blob.read_bytes()[:100])
    blob.unlink()
    r = hf(layout.repo_folder, "--json")
    paths = [f["path"] for f in json.loads(r.stdout)["files"]]
    assert paths.count("config.json") == 1 and jstatuses(r)["config.json"] == "error"


def test_manifest_of_the_raw_folder_still_verifies(tmp_path, repo):
    """A manifest that lists `.cache/huggingface/...` (an older merkle, or a plain copy) is checked against the raw
    folder, not the checkout, so it keeps verifying."""
    layout = fresh_local(tmp_path, repo, files=SPARSE)
    entries = [
        merkle.format.manifest.FileEntry(str(p.relative_to(layout.local_dir)), p.stat().st_size, merkle.hash_file(p))
        for p in layout.local_dir.rglob("*")
        if p.is_file()
    ]
    raw = Manifest.create(entries)
    assert any(e.path.startswith(".cache/huggingface/") for e in raw.files)
    assert merkle.verify(layout.local_dir, raw).ok


def test_local_dir_build_records_the_bookkeeping_exclusion(tmp_path, repo):
    layout = fresh_local(tmp_path, repo, files=SPARSE)
    m = merkle.build(layout.local_dir)
    assert ".cache/huggingface" in m.exclude
    plain = tmp_path / "plain"
    shutil.copytree(layout.local_dir, plain, symlinks=True)
    shutil.rmtree(plain / ".cache" / "huggingface" / "download")  # no longer a local_dir's full bookkeeping ...
    assert merkle.verify(plain, m).ok  # ... and still only the repository's files count


def test_follow_symlinks_is_honoured_in_a_local_dir(tmp_path, repo):
    layout = fresh_local(tmp_path, repo, files=SPARSE)
    (layout.local_dir / "alias.json").symlink_to("config.json")
    assert run_cli("build", str(layout.local_dir), "-o", str(tmp_path / "a.json")).returncode == 2
    r = run_cli("build", str(layout.local_dir), "--follow-symlinks", "-o", str(tmp_path / "b.json"))
    assert r.returncode == 0, r.stderr


def test_revision_without_evidence_is_refused(tmp_path, repo):
    layout = fresh_local(tmp_path, repo, files=SPARSE)
    r = run_cli("build", str(layout.local_dir), "--revision", "2" * 40, "-o", str(tmp_path / "m.json"))
    assert r.returncode == 2
    assert_one_line_error(r, str(layout.local_dir), "no download metadata or tree listing")
    assert not (tmp_path / "m.json").exists()


def test_repo_id_needs_a_revision_and_a_valid_name(tmp_path, repo):
    layout = fresh_local(tmp_path, repo, files=SPARSE, metadata=False, tree=False)
    (layout.local_dir / ".cache" / "huggingface").mkdir(parents=True, exist_ok=True)
    r = run_cli("build", str(layout.local_dir), "--repo-id", "org/name", "-o", str(tmp_path / "m.json"))
    assert r.returncode == 2
    assert_one_line_error(r, str(layout.local_dir), "revision is unknown")
    r = run_cli(
        "build",
        str(fresh_local(tmp_path, repo, "ld2", files=SPARSE).local_dir),
        "--repo-id",
        "../etc",
        "-o",
        str(tmp_path / "m.json"),
    )
    assert r.returncode == 2 and "repo-id" in error_lines(r)[0]


def test_local_dir_repo_type_is_recorded(tmp_path, repo):
    layout = fresh_local(tmp_path, repo, files=SPARSE)
    out = tmp_path / "m.json"
    r = run_cli("build", str(layout.local_dir), "--repo-id", "org/data", "--repo-type", "dataset", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert json.loads(out.read_text())["origin"] == {
        "type": "huggingface",
        "repo": "org/data",
        "repo_type": "dataset",
        "revision": repo.commit,
    }


def test_file_from_another_revision_is_named_as_such(tmp_path, repo, card_repos):
    """HF4: with --revision R, a file downloaded at another commit with other content is not R's file."""
    later = card_repos("other")
    layout = fresh_local(tmp_path, repo, files=SPARSE)
    write_download_metadata(layout.local_dir, README, later.commit, later.files[README].etag)
    shutil.copy(later.files[README].content_path, layout.file_path(README))
    write_download_metadata(layout.local_dir, README, later.commit, later.files[README].etag)
    r = hf(layout.local_dir, "--revision", repo.commit)
    assert r.returncode == 1
    status, detail = details(r.stdout)[README]
    assert status == "*" and later.commit in detail


def test_tree_listing_ignored_when_checking_against_a_manifest(tmp_path, repo, cache_manifest):
    """A manifest does not need the Hub's listing: an unreadable one does not stop `merkle verify` (HF5)."""
    layout = fresh_cache(tmp_path, repo)
    layout.tree_path.write_text("{not json")
    hl.forget_tree_cache()
    r = run_cli("verify", str(layout.repo_folder), str(cache_manifest))
    assert r.returncode == 0, r.stdout + r.stderr
    assert hf(layout.repo_folder).returncode == 2


def test_oms_bundle_of_a_local_dir_leaves_bookkeeping_out(tmp_path, repo, key):
    layout = fresh_local(tmp_path, repo, files=SPARSE)
    out = tmp_path / "oms.bundle"
    r = run_cli("build", str(layout.local_dir), "--sign", str(key), "--format", "oms", "-o", str(out))
    assert r.returncode == 0, r.stderr
    predicate = json.loads(base64.b64decode(json.loads(out.read_text())["dsseEnvelope"]["payload"]))["predicate"]
    names = {res["name"] for res in predicate["resources"]}
    assert names == set(SPARSE) and ".cache/huggingface" in predicate["serialization"]["ignore_paths"]
    r = run_cli("verify", str(layout.local_dir), str(out), "--key", f"{key}.pub", "--allow-license", "apache-2.0")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "license apache-2.0 allowed" in r.stderr


def test_single_file_and_range_of_a_cache_folder(tmp_path, repo, cache, bundle, key):
    """`--file` and `--range` find the file through the snapshot link, as the tree check does."""
    r = run_cli("verify", str(cache.repo_folder), str(bundle), "--key", f"{key}.pub", "--file", LFS, "--range", "0:1M")
    assert r.returncode == 0, r.stdout + r.stderr
    layout = fresh_cache(tmp_path, repo)
    hl.corrupt(layout.blob_path(LFS), 100)
    r = run_cli("verify", str(layout.repo_folder), str(bundle), "--key", f"{key}.pub", "--file", LFS, "--range", "0:1M")
    assert r.returncode == 1


def test_repository_id_is_found_in_the_cache(tmp_path, repo, cache, monkeypatch):
    """`merkle hf verify ORG/NAME` looks in $HF_HUB_CACHE (as huggingface_hub does), and says where it looked."""
    monkeypatch.setenv("HF_HUB_CACHE", str(cache.cache_dir))
    r = hf(REPO_ID)
    assert r.returncode == 0, r.stdout + r.stderr
    assert statuses(r.stdout) == all_ok(repo)
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "nowhere"))
    r = hf(REPO_ID)
    assert r.returncode == 2
    assert_one_line_error(r, REPO_ID, "not in the Hugging Face cache", str(tmp_path / "nowhere" / "hub"))
    r = hf(REPO_ID, "--cache-dir", cache.cache_dir)
    assert r.returncode == 0, r.stdout + r.stderr
    r = hf(REPO_ID, "--cache-dir", cache.cache_dir, "--repo-type", "dataset")
    assert r.returncode == 2 and "datasets--" in error_lines(r)[0]
