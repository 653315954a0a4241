"""Pure: the Hugging Face Hub's own file identities, as a v2 manifest
records them per file (`hub`, rule M7), and the git-lfs pointer files that
stand in for content not downloaded (rule HF8).

A Hub file is named by one of two content addresses (docs/hf.md, rule HF1):
an LFS file by the SHA-256 of its content (the LFS object id), any other file
by its git blob id, the SHA-1 of `b"blob %d\\0" % size` followed by the
content.  In a tree listing an LFS file's `blob_id` is the git blob id of its
pointer file, which is fully determined by the object id and the size, so the
listing can be checked against itself without reading a byte.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Final

from merkle.errors import FormatError

if TYPE_CHECKING:
    from merkle.tree.hasher import Hasher

SHA256: Final = "sha256"
GIT_BLOB: Final = "gitBlob"
GIT_BLOB_SHA256: Final = "gitBlobSha256"
HUB_KINDS: Final = {SHA256: 64, GIT_BLOB: 40, GIT_BLOB_SHA256: 64}
"""A file's identity on the Hub, by kind: the LFS object id (SHA-256 of the
content) or the git blob id (SHA-1 of "blob N\\0" + content; SHA-256 of
the same in a repository of git's SHA-256 object format, which the Hub does
not use but a git clone may), and its length in hex digits."""
HubId = tuple[str, str]
"""(kind, lower-case hex): ("sha256", 64 hex) or ("gitBlob", 40 hex)."""

LFS_VERSION: Final = b"version https://git-lfs.github.com/spec/v1\n"
MAX_POINTER_SIZE: Final = 1024  # git-lfs: "Pointer files must be less than 1024 bytes in size"
_POINTER: Final = (  # compiled on first use (re's cache): most runs never meet a pointer
    rb"version https://git-lfs\.github\.com/spec/v1\n"
    rb"(?:ext-[0-9]-[a-z0-9.-]+ sha256:[0-9a-f]{64}\n)*"
    rb"oid sha256:(?P<oid>[0-9a-f]{64})\n"
    rb"size (?P<size>0|[1-9][0-9]{0,18})\n"
)


def check_hub(value: Any, where: str) -> HubId:
    """Parse a `hub` identity: an object with exactly one key of HUB_KINDS."""
    if isinstance(value, tuple) and len(value) == 2:
        value = {value[0]: value[1]}
    if not isinstance(value, dict) or len(value) != 1:
        raise FormatError(f"{where}: hub must be an object with one of {', '.join(HUB_KINDS)}")
    ((kind, digest),) = value.items()
    if kind not in HUB_KINDS:
        raise FormatError(f"{where}: unknown hub identity {kind!r}")
    if not isinstance(digest, str) or not re.fullmatch(f"[0-9a-f]{{{HUB_KINDS[kind]}}}", digest):
        raise FormatError(f"{where}: hub {kind} is not {HUB_KINDS[kind]} lower-case hex digits")
    return kind, digest


def git_blob_hasher(size: int, kind: str = GIT_BLOB) -> Hasher:
    """A hasher that, fed exactly `size` bytes, gives their git blob id
    (`kind` GIT_BLOB_SHA256: in git's SHA-256 object format)."""
    import hashlib  # OpenSSL: only Hub identities need it

    h = hashlib.sha256() if kind == GIT_BLOB_SHA256 else hashlib.sha1(usedforsecurity=False)
    h.update(b"blob %d\0" % size)
    return h


def new_hasher(kind: str, size: int) -> Hasher:
    import hashlib

    return hashlib.sha256() if kind == SHA256 else git_blob_hasher(size, kind)


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
    m = re.fullmatch(_POINTER, data)
    if m is None:
        return None
    return m["oid"].decode("ascii"), int(m["size"])
