"""Names and checks the Hugging Face tests share: the repository's files, `merkle hf verify` in a child
process, readers of its report, fresh layouts and the edits tests make to them, and the identities the Hub
gives a file computed from its bytes alone (hashlib, huggingface_hub's `git_hash`), never by merkle."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
from pathlib import Path

from huggingface_hub import scan_cache_dir
from huggingface_hub.utils.sha import git_hash

from support import hf_layout as hl
from support.cli import run_cli

REPO_ID = "sentence-transformers/all-MiniLM-L6-v2"
LFS = "model.safetensors"
README = "README.md"
NESTED = "1_Pooling/config.json"
SPARSE = ("config.json", NESTED, "modules.json", README)


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
