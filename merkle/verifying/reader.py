"""`merkle.open`: a read-only file object that verifies every chunk before
any of its bytes reach the caller.

A chunk is read whole, hashed, and checked against the file's authenticated
leaf hash; only then are its bytes copied out (or, for reads that cover whole
chunks, left in the caller's buffer, which is wiped if the check fails).  The
last good chunk is cached, so small sequential reads cost one check per
chunk.  A mismatch raises ChunkError naming the file and the chunk.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from merkle.errors import ChunkError, IntegrityError
from merkle.format.manifest import Manifest
from merkle.source.readers import Reader, open_file
from merkle.verifying.ranges import FileAuth

if TYPE_CHECKING:
    from merkle.signing.attestations import StoreChoice
    from merkle.signing.trust import TrustPolicy


class VerifiedReader(io.RawIOBase):
    def __init__(self, source: Reader, auth: FileAuth) -> None:
        super().__init__()
        size = source.size()
        if size != auth.entry.size:
            source.close()
            raise IntegrityError(f"file is {size} bytes, signed {auth.entry.size}", auth.name)
        self._source = source
        self._auth = auth
        self._pos = 0
        self._cached = -1
        self._chunk = bytearray(auth.chunk_size if auth.chunks > 0 else 0)
        self.name = auth.name

    # -- io.RawIOBase -------------------------------------------------------

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._auth.entry.size}.get(whence)
        if base is None:
            raise ValueError(f"invalid whence {whence}")
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: Any) -> int:
        self._check_open()
        out = memoryview(buffer).cast("B")
        size = self._auth.entry.size
        cs = self._auth.chunk_size
        done = 0
        while done < len(out) and self._pos < size:
            index, within = divmod(self._pos, cs)
            start, end = self._auth.chunk_span(index)
            want = min(len(out) - done, end - self._pos)
            try:
                if within == 0 and want == end - start and index != self._cached:
                    self._verified_into(index, out[done : done + want])  # straight into the caller's buffer
                else:
                    self._load(index)
                    out[done : done + want] = self._chunk[within : within + want]
            except IntegrityError:
                if done:  # hand out the good bytes; the bad chunk raises on the next read
                    return done
                raise
            done += want
            self._pos += want
        return done

    def readall(self) -> bytes:
        chunks: list[bytes] = []
        while True:
            part = self.read(max(self._auth.chunk_size, 1 << 20))
            if not part:
                return b"".join(chunks)
            chunks.append(part)

    def close(self) -> None:
        if not self.closed:
            self._source.close()
        super().close()

    # -- verification -------------------------------------------------------

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed file")

    def _verified_into(self, index: int, view: memoryview) -> None:
        start, _ = self._auth.chunk_span(index)
        got = self._source.read_into(start, view)
        try:
            if got != len(view):
                raise ChunkError(f"chunk {index} is short: the file ends before its signed size", self.name, index)
            self._auth.check_leaves(index, [self._auth.hasher.leaf(view)])
        except IntegrityError:
            view[:] = bytes(len(view))  # no unverified byte stays with the caller
            raise

    def _load(self, index: int) -> None:
        if index == self._cached:
            return
        self._cached = -1
        start, end = self._auth.chunk_span(index)
        self._verified_into(index, memoryview(self._chunk)[: end - start])
        self._cached = index


def open(  # noqa: A001 - the name users expect, like io.open
    path_or_url: str | os.PathLike[str],
    source: Manifest | str | os.PathLike[str],
    *,
    name: str,
    keys: Sequence[str | os.PathLike[str]] = (),
    cas: Sequence[str | os.PathLike[str]] = (),
    policy: TrustPolicy | None = None,
    attestations: StoreChoice = True,
    storage_options: dict[str, Any] | None = None,
    follow_symlinks: bool = False,
) -> io.BufferedReader:
    """Open file `name` of a signed (or plain) manifest for verified reading.

    `path_or_url` is the file itself (a local path, opened as named, or an
    fsspec URL), or a local directory: the tree that holds `name`, which is
    then opened below it under the link policy (no symbolic link followed,
    unless `follow_symlinks` allows links that stay inside the tree;
    SourceError otherwise).
    `source` is a Manifest, a manifest file, or a bundle file; a bundle needs
    `keys` (public key files), `cas` (CA certificate files) or a `policy`,
    and is opened through the one trust path (merkle.verifying.signed.open_signed:
    signatures, expiry, and rollback against the `attestations` store, as the CLI does)
    before anything else.  The leaf sidecar beside the manifest or bundle
    must authenticate for files of more than one chunk."""
    from merkle.verifying.signed import (
        chosen_policy,
        trusted_manifest,
    )  # cryptography is loaded only where signatures are

    manifest = trusted_manifest(source, chosen_policy(keys, cas, policy), attestations)
    auth = FileAuth.of(manifest, name)
    raw = VerifiedReader(open_file(os.fspath(path_or_url), name, follow_symlinks, storage_options), auth)
    return io.BufferedReader(raw, buffer_size=max(io.DEFAULT_BUFFER_SIZE, min(auth.chunk_size, 1 << 20)))
