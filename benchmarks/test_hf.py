"""`merkle hf verify` against huggingface_hub's own verification, same run.

The data is a Hugging Face cache snapshot laid out as huggingface_hub lays it
out (blobs named by content address, relative snapshot links, refs/main,
trees/<commit>.json written by huggingface_hub): three shards of 1 GiB
(32 MiB in quick mode) and the small files a model repository has.

The reference is huggingface_hub's verification core, offline: the same
`collect_local_files` and `verify_maps` that `hf cache verify` runs, given
the remote listing from the cached tree instead of the network (it hashes
one file after another; LFS files with sha256, the others read whole for
their git blob id).  Goal: merkle at least 2x faster ("x ref" >= 2).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest

from . import datasets
from .settings import SEED, Settings
from .table import HF_SERIAL

CASE = "hf snapshot"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
SMALL = {
    "config.json": 700,
    "generation_config.json": 180,
    "tokenizer_config.json": 50_000,
    "special_tokens_map.json": 400,
    "tokenizer.json": 9_000_000,
    "vocab.txt": 230_000,
    "README.md": 12_000,
    "model.safetensors.index.json": 24_000,
}


@dataclass(frozen=True)
class Snapshot:
    folder: Path
    snapshot: Path
    size: int


def _lfs_pointer(oid: str, size: int) -> bytes:
    return b"version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %d\n" % (oid.encode(), size)


def _write_blob(blobs: Path, data_pieces: Iterable[bytes], lfs: bool) -> tuple[str, int, str]:
    """Write content to blobs/<etag>; (etag, size, git blob id of what the tree lists)."""
    from huggingface_hub.utils.sha import git_hash

    tmp = blobs / "tmp.partial"
    sha = hashlib.sha256()
    size = 0
    content = bytearray()
    with open(tmp, "wb") as f:
        for piece in data_pieces:
            f.write(piece)
            sha.update(piece)
            size += len(piece)
            if not lfs:
                content += piece
    oid = sha.hexdigest()
    etag = oid if lfs else git_hash(bytes(content))
    blob_id = git_hash(_lfs_pointer(oid, size)) if lfs else etag
    tmp.rename(blobs / etag)
    return etag, size, blob_id


def build_snapshot(data_dir: Path, shard_size: int) -> Snapshot:
    from huggingface_hub._tree_cache import TreeCacheEntry, write_tree_cache
    from huggingface_hub.file_download import repo_folder_name

    folder = data_dir / f"hf-cache-{shard_size}" / repo_folder_name(repo_id="bench/model", repo_type="model")
    snapshot = folder / "snapshots" / COMMIT
    done = folder.parent / ".complete"  # beside the cache folder: a foreign entry in it is refused (HF10)
    if not done.exists():
        blobs = folder / "blobs"
        blobs.mkdir(parents=True, exist_ok=True)
        entries = {}
        files = {f"model-0000{i + 1}-of-00003.safetensors": (shard_size, True) for i in range(3)}
        files.update({name: (size, False) for name, size in SMALL.items()})
        for name, (size, lfs) in sorted(files.items()):
            seed = SEED + name.encode()
            pieces = (
                datasets.random_bytes(seed, min(datasets.PIECE, size - o), o) for o in range(0, size, datasets.PIECE)
            )
            etag, size, blob_id = _write_blob(blobs, pieces, lfs)
            entries[name] = TreeCacheEntry(
                size=size, blob_id=blob_id, lfs_sha256=etag if lfs else None, lfs_size=size if lfs else None
            )
            link = snapshot / name
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.is_symlink():
                link.symlink_to(os.path.relpath(blobs / etag, link.parent))
        (folder / "refs").mkdir(exist_ok=True)
        (folder / "refs" / "main").write_text(COMMIT)
        write_tree_cache(str(folder), COMMIT, entries)
        os.sync()
        done.touch()
    paths = sorted(snapshot.iterdir())
    datasets.warm([p.resolve() for p in paths])
    return Snapshot(folder, snapshot, sum(p.resolve().stat().st_size for p in paths))


@pytest.fixture(scope="module")
def hf_snapshot(settings: Settings) -> Snapshot:
    return build_snapshot(settings.data_dir, (32 << 20) if settings.quick else (1 << 30))


def hub_serial_verify(snap: Snapshot) -> None:
    """huggingface_hub's verify path, offline: its local listing, its
    comparison and hashing, with the remote listing from trees/<commit>.json."""
    from huggingface_hub._tree_cache import read_tree_cache
    from huggingface_hub.utils._verification import collect_local_files, verify_maps

    tree = read_tree_cache(str(snap.folder), COMMIT)
    assert tree is not None
    remote = {
        p: SimpleNamespace(path=p, blob_id=e.blob_id, lfs={"sha256": e.lfs_sha256} if e.lfs_sha256 else None)
        for p, e in tree.items()
    }
    result = verify_maps(
        remote_by_path=remote,  # type: ignore[arg-type]  # stand-ins with RepoFile's path, blob_id, lfs
        local_by_path=collect_local_files(snap.snapshot),
        revision=COMMIT,
        verified_path=snap.snapshot,
    )
    assert not result.mismatches and not result.missing_paths and result.checked_count == len(tree)


def test_huggingface_hub_serial(measure: Callable[..., None], hf_snapshot: Snapshot) -> None:
    measure(CASE, HF_SERIAL, lambda: hub_serial_verify(hf_snapshot), hf_snapshot.size)


def test_merkle_hf_verify_api(measure: Callable[..., None], hf_snapshot: Snapshot) -> None:
    from merkle.hf import verify_checkout

    def run() -> None:
        report = verify_checkout(hf_snapshot.folder)
        assert report.ok and report.counts[report.outcomes[0].status] == len(SMALL) + 3

    measure(CASE, "merkle hf verify (API)", run, hf_snapshot.size)


def test_merkle_hf_verify_cli(measure: Callable[..., None], hf_snapshot: Snapshot) -> None:
    command = [sys.executable, "-m", "merkle", "hf", "verify", "-q", str(hf_snapshot.folder)]
    measure(
        CASE, "merkle hf verify", lambda: subprocess.run(command, check=True, capture_output=True), hf_snapshot.size
    )
