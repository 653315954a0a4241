"""Pure: the Hugging Face Hub's own file identities.

A Hub file is named by one of two content addresses (docs/hf.md, rule HF1):
an LFS file by the SHA-256 of its content (the LFS object id), any other file
by its git blob id, the SHA-1 of `b"blob %d\\0" % size` followed by the
content.  In a tree listing an LFS file's `blob_id` is the git blob id of its
pointer file, which is fully determined by the object id and the size, so the
listing can be checked against itself without reading a byte.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

from merkle.tree.hasher import Hasher

SHA256: Final = "sha256"
GIT_BLOB: Final = "gitBlob"
HubId = tuple[str, str]
"""(kind, lower-case hex): ("sha256", 64 hex) or ("gitBlob", 40 hex)."""

LFS_VERSION: Final = b"version https://git-lfs.github.com/spec/v1\n"
MAX_POINTER_SIZE: Final = 1024  # git-lfs: "Pointer files must be less than 1024 bytes in size"
_POINTER: Final = re.compile(
    rb"version https://git-lfs\.github\.com/spec/v1\n"
    rb"(?:ext-[0-9]-[a-z0-9.-]+ sha256:[0-9a-f]{64}\n)*"
    rb"oid sha256:(?P<oid>[0-9a-f]{64})\n"
    rb"size (?P<size>0|[1-9][0-9]{0,18})\n"
)
_ETAG: Final = re.compile("[0-9a-f]{64}|[0-9a-f]{40}")


def hub_id_of_etag(etag: str) -> HubId | None:
    """What a cache blob name or local_dir etag claims: 64 hex digits are an
    LFS object id, 40 a git blob id; anything else is not a content address."""
    if not _ETAG.fullmatch(etag):
        return None
    return (SHA256, etag) if len(etag) == 64 else (GIT_BLOB, etag)


def git_blob_hasher(size: int) -> Hasher:
    """A hasher that, fed exactly `size` bytes, gives their git blob id."""
    h = hashlib.sha1(usedforsecurity=False)
    h.update(b"blob %d\0" % size)
    return h


def new_hasher(kind: str, size: int) -> Hasher:
    return hashlib.sha256() if kind == SHA256 else git_blob_hasher(size)


def git_blob_id(data: bytes) -> str:
    h = git_blob_hasher(len(data))
    h.update(data)
    return h.digest().hex()


def lfs_pointer(oid: str, size: int) -> bytes:
    """The canonical pointer file git-lfs writes for content `oid` of `size` bytes."""
    return LFS_VERSION + b"oid sha256:%s\nsize %d\n" % (oid.encode("ascii"), size)


def parse_lfs_pointer(data: bytes) -> tuple[str, int] | None:
    """(object id, size) when `data` is a git-lfs pointer file, else None."""
    if len(data) >= MAX_POINTER_SIZE or not data.startswith(LFS_VERSION):
        return None
    m = _POINTER.fullmatch(data)
    if m is None:
        return None
    return m["oid"].decode("ascii"), int(m["size"])
