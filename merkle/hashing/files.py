"""Roots of single files and streams, for `merkle hash` and its `--check`.

Sums lines look like b3sum's: `ROOT  PATH`.  A path holding a backslash or a
newline is escaped the same way b3sum does it: the line starts with a
backslash, and `\\` and `\n` stand for the two characters (docs/cli.md).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from typing import BinaryIO

from merkle.errors import FormatError, SourceError
from merkle.format.parameters import DEFAULT_CHUNK_SIZE, check_chunk_size
from merkle.hashing.engine import MAX_BUFFER, FileDigest, hash_files
from merkle.report import Progress
from merkle.source.local import kind_of
from merkle.source.walk import WalkedFile, identity
from merkle.tree import rfc6962
from merkle.tree.hasher import DEFAULT_ALGORITHM, DIGEST_SIZE, Algorithm, tree_hasher


def hash_paths(
    paths: Sequence[str],
    algorithm: Algorithm = DEFAULT_ALGORITHM,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    jobs: int | None = None,
    progress: Progress | None = None,
) -> list[FileDigest]:
    """Root of each named file (symlinks followed, as a user naming a file
    expects); problems come back per file, in FileDigest.error."""
    check_chunk_size(chunk_size)
    hasher = tree_hasher(algorithm)
    results: dict[int, FileDigest] = {}
    listed: list[tuple[int, WalkedFile]] = []
    for i, p in enumerate(paths):
        try:
            st = os.stat(p)
        except OSError as e:
            results[i] = FileDigest(p, 0, error=SourceError(e.strerror or str(e), p))
            continue
        if not stat.S_ISREG(st.st_mode):
            results[i] = FileDigest(p, 0, error=SourceError(f"{kind_of(st.st_mode)}, not a regular file", p))
            continue
        listed.append((i, WalkedFile(p, p, st.st_size, identity(st))))
    digests = hash_files([w for _, w in listed], hasher, chunk_size, jobs, progress, follow_symlinks=True)
    for (i, _), d in zip(listed, digests, strict=True):
        results[i] = d
    return [results[i] for i in range(len(paths))]


def hash_file(
    path: str | os.PathLike[str], algorithm: Algorithm = DEFAULT_ALGORITHM, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> bytes:
    """The Merkle root of one file; raises SourceError if it cannot be read."""
    (digest,) = hash_paths([os.fspath(path)], algorithm, chunk_size)
    if digest.error is not None:
        raise digest.error
    return digest.root


def hash_stream(
    stream: BinaryIO, algorithm: Algorithm = DEFAULT_ALGORITHM, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> bytes:
    """The Merkle root of everything `stream` yields (one pass, one chunk of memory)."""
    check_chunk_size(chunk_size)
    hasher = tree_hasher(algorithm)
    builder = rfc6962.RootBuilder(hasher)
    view = memoryview(bytearray(min(chunk_size, MAX_BUFFER)))
    while True:
        h = hasher.leaf_hasher()
        filled = 0
        while filled < chunk_size:
            got = stream.readinto(view[: min(len(view), chunk_size - filled)])  # type: ignore[attr-defined]
            if not got:
                break
            h.update(view[:got])
            filled += got
        if filled:
            builder.add(h.digest())
        if filled < chunk_size:
            return builder.root()


def escape_path(path: str) -> tuple[str, bool]:
    if "\\" in path or "\n" in path:
        return path.replace("\\", "\\\\").replace("\n", "\\n"), True
    return path, False


def unescape_path(path: str) -> str:
    out = []
    i = 0
    while i < len(path):
        c = path[i]
        if c == "\\":
            nxt = path[i + 1 : i + 2]
            if nxt == "\\":
                out.append("\\")
            elif nxt == "n":
                out.append("\n")
            else:
                raise FormatError(f"bad escape {path[i : i + 2]!r} in path")
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def format_sum(root: bytes, path: str) -> str:
    escaped, flag = escape_path(path)
    return ("\\" if flag else "") + f"{root.hex()}  {escaped}"


def parse_sums(text: str, source: str) -> list[tuple[bytes, str]]:
    """Parse `ROOT  PATH` lines; FormatError naming the line on any problem."""
    out = []
    # Only '\n' ends a line: splitlines() would also split names holding '\r'
    # or U+2028, which `hash` writes unescaped (b3sum does the same).
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        escaped = line.startswith("\\")
        body = line[1:] if escaped else line
        digest, sep, name = body.partition("  ")
        if not sep or len(digest) != 2 * DIGEST_SIZE or digest.strip("0123456789abcdef") or not name:
            raise FormatError(f"line {number}: expected 'ROOT  PATH' with a {2 * DIGEST_SIZE}-digit hex root", source)
        try:
            out.append((bytes.fromhex(digest), unescape_path(name) if escaped else name))
        except FormatError as e:
            raise FormatError(f"line {number}: {e.message}", source) from e
    return out
