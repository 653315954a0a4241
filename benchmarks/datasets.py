"""Generated benchmark data, cached between runs and read once before timing.

Content is the BLAKE3 extendable output of a fixed seed, so every run hashes
the same bytes; sizes of the small files come from a seeded random.Random.
Data is written under a temporary name and renamed when complete, so an
interrupted run never leaves a half-written file that looks reusable, then
synced, so writeback of fresh data does not overlap the timed runs.
"""

from __future__ import annotations

import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import blake3

PIECE = 64 << 20


@dataclass(frozen=True)
class BigFile:
    path: Path
    size: int


@dataclass(frozen=True)
class SmallFiles:
    """A directory of files (many small ones, or a model directory)."""

    root: Path  # the directory to hash
    names: Path  # NUL-separated list of every file, for `xargs -0 -a`
    count: int
    size: int  # total bytes


def random_bytes(seed: bytes, length: int, offset: int = 0) -> bytes:
    return blake3.blake3(seed).digest(length=length, seek=offset)


def big_file(data_dir: Path, size: int, seed: bytes) -> BigFile:
    path = data_dir / f"big-{size}.bin"
    if not (path.is_file() and path.stat().st_size == size):
        data_dir.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        with open(partial, "wb") as f:
            for offset in range(0, size, PIECE):
                f.write(random_bytes(seed, min(PIECE, size - offset), offset))
        partial.rename(path)
        os.sync()
    warm([path])
    return BigFile(path, size)


def small_files(data_dir: Path, count: int, low: int, high: int, seed: bytes) -> SmallFiles:
    rng = random.Random(seed)
    sizes = [rng.randint(low, high) for _ in range(count)]
    names = [f"d{i // 100:03d}/f{i:05d}.bin" for i in range(count)]
    root = data_dir / f"files-{count}"
    paths = [root / n for n in names]
    if not _matches(root, paths, sizes):
        shutil.rmtree(root, ignore_errors=True)
        partial = root.with_suffix(".partial")
        shutil.rmtree(partial, ignore_errors=True)
        for name, size in zip(names, sizes, strict=True):
            (partial / name).parent.mkdir(parents=True, exist_ok=True)
            (partial / name).write_bytes(random_bytes(seed + name.encode(), size))
        partial.rename(root)
        os.sync()
    listing = data_dir / f"files-{count}.list0"
    listing.write_bytes(b"".join(os.fsencode(p) + b"\0" for p in paths))
    warm(paths)
    return SmallFiles(root, listing, count, sum(sizes))


def tiny_files(data_dir: Path, count: int, seed: bytes, per_folder: int = 1000) -> SmallFiles:
    """`count` files of 16-64 bytes, `per_folder` to a folder: a dataset whose
    cost is all per file (walk, open, records), none of it bytes.

    Made with os.open/os.write (a million pathlib writes take minutes) and
    checked by count and total size only: checking a million sizes would cost
    as much as the runs it prepares."""
    rng = random.Random(seed + b"tiny")
    sizes = [rng.randint(16, 64) for _ in range(count)]
    names = [f"d{i // per_folder:04d}/f{i:07d}.bin" for i in range(count)]
    root = data_dir / f"tiny-{count}"
    listing = data_dir / f"tiny-{count}.list0"
    stamp = data_dir / f"tiny-{count}.done"
    expected = f"{count} {sum(sizes)}\n"
    if not (root.is_dir() and listing.is_file() and stamp.is_file() and stamp.read_text() == expected):
        stamp.unlink(missing_ok=True)
        shutil.rmtree(root, ignore_errors=True)
        partial = root.with_suffix(".partial")
        shutil.rmtree(partial, ignore_errors=True)
        data_dir.mkdir(parents=True, exist_ok=True)
        pool = random_bytes(seed + b"tiny-pool", 1 << 20)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        for i, (name, size) in enumerate(zip(names, sizes, strict=True)):
            if i % per_folder == 0:
                os.makedirs(partial / name.partition("/")[0])
            fd = os.open(partial / name, flags, 0o644)
            try:
                start = (i * 64) % (len(pool) - 64)
                os.write(fd, pool[start : start + size])
            finally:
                os.close(fd)
        partial.rename(root)
        os.sync()
        listing.write_bytes(b"".join(os.fsencode(root / n) + b"\0" for n in names))
        stamp.write_text(expected)
    return SmallFiles(root, listing, count, sum(sizes))


def one_file_dir(data_dir: Path, big: BigFile) -> Path:
    """A directory holding just `big` as model.bin: a hard link, no copy, for
    tools that sign or build directories (their bytes are the file's)."""
    root = data_dir / f"one-file-{big.size}"
    link = root / "model.bin"
    root.mkdir(parents=True, exist_ok=True)
    if link.exists() and not os.path.samefile(link, big.path):
        link.unlink()  # the big file was regenerated since
    if not link.exists():
        os.link(big.path, link)
    return root


# A model repository's small files (configs, tokenizer, index, card), in bytes,
# beside its weight shards.
MODEL_FILES = {
    "config.json": 1_800,
    "generation_config.json": 1_200,
    "special_tokens_map.json": 2_500,
    "tokenizer_config.json": 50_000,
    "tokenizer.json": 9_000_000,
    "vocab.json": 800_000,
    "merges.txt": 450_000,
    "README.md": 12_000,
    "LICENSE": 7_000,
    "model.safetensors.index.json": 24_000,
}
MODEL_SHARDS = 3


def model_dir(data_dir: Path, shard_size: int, seed: bytes) -> SmallFiles:
    """A model directory: MODEL_FILES plus MODEL_SHARDS safetensors shards of
    `shard_size` bytes each, every file's content from the seed and its name."""
    files = dict(MODEL_FILES)
    files.update({f"model-{i + 1:05d}-of-{MODEL_SHARDS:05d}.safetensors": shard_size for i in range(MODEL_SHARDS)})
    names, sizes = sorted(files), [files[n] for n in sorted(files)]
    root = data_dir / f"model-{shard_size}"
    paths = [root / n for n in names]
    if not _matches(root, paths, sizes):
        shutil.rmtree(root, ignore_errors=True)
        partial = root.with_suffix(".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        for name, size in zip(names, sizes, strict=True):
            with open(partial / name, "wb") as f:
                for offset in range(0, size, PIECE):
                    f.write(random_bytes(seed + name.encode(), min(PIECE, size - offset), offset))
        partial.rename(root)
        os.sync()
    listing = data_dir / f"model-{shard_size}.list0"
    listing.write_bytes(b"".join(os.fsencode(p) + b"\0" for p in paths))
    warm(paths)
    return SmallFiles(root, listing, len(paths), sum(sizes))


def _matches(root: Path, paths: list[Path], sizes: list[int]) -> bool:
    """Reuse the directory only if it holds exactly these files at these sizes."""
    if not root.is_dir() or sum(len(files) for _, _, files in os.walk(root)) != len(paths):
        return False
    try:
        return all(p.stat().st_size == s for p, s in zip(paths, sizes, strict=True))
    except FileNotFoundError:
        return False


def warm(paths: list[Path]) -> None:
    """Evict, then read every byte once, so each run starts from the same hot
    page cache.  Without the eviction a cache filled piecemeal by earlier runs
    made mmap readers (b3sum) 1.6x slower than one filled by a sequential read."""
    buffer = bytearray(8 << 20)
    for p in paths:
        with open(p, "rb", buffering=0) as f:
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            while f.readinto(buffer):
                pass
