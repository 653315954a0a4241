"""Tar headers read one way (docs/images.md I9b): a tar that Python's reader
and a container runtime's (Go's archive/tar, in containerd, docker and
umoci) would read differently is refused, for layers and for the docker
archive around them alike.
"""

from __future__ import annotations

import re
import tarfile
from typing import Final


class NotOneTar(tarfile.TarError):
    """A layer whose headers tar readers read differently (a container runtime's Go reader and Python's)."""


MAX_EXTENSION: Final = 1 << 20
"""The largest PAX or GNU long-name header read: names and links are at most 4 KiB on Linux, and a huge one
is work for Python's PAX parser (quadratic in some versions, CVE-2024-6232) and nothing else."""
_NUMERIC: Final = ((100, 108), (108, 116), (116, 124), (124, 136), (136, 148), (148, 156))
_OCTAL: Final = re.compile(rb" *[0-7]*")


def strict_tarinfo() -> type[tarfile.TarInfo]:
    """A TarInfo whose every header block is refused (NotOneTar) where
    Python's reader and Go's (containerd's, docker's) would read it
    differently: a block that is not a valid header before the end of the
    archive (Python would stop there, Go might read on), a number with a NUL
    or another character before its last digit, a ustar prefix under any
    magic but POSIX ustar's, bytes in a ustar header's padding (a STAR
    trailer), a global PAX header, one entry named by both a PAX header and
    a GNU long name, and any sparse entry (GNU type S, PAX GNU.sparse keys).  One class per layer: it keeps
    which extension headers came before the entry."""

    class Strict(tarfile.TarInfo):
        pending: set[str] = set()

        @classmethod
        def frombuf(cls, buf: bytes | bytearray, encoding: str, errors: str) -> Strict:
            if len(buf) == tarfile.BLOCKSIZE and buf.count(0) != tarfile.BLOCKSIZE:
                for start, end in _NUMERIC:
                    field = buf[start:end]
                    if field[:1] not in (b"\x80", b"\xff") and not _OCTAL.fullmatch(field.rstrip(b" \x00")):
                        raise NotOneTar(f"a header whose number at byte {start} tar readers read differently")
                if buf[345:500].strip(b"\x00") and buf[257:265] != b"ustar\x0000":
                    raise NotOneTar("a name prefix outside a POSIX ustar header (tar readers read it differently)")
                if buf[257:265] == b"ustar\x0000" and buf[500:512].strip(b"\x00"):
                    raise NotOneTar("bytes in a ustar header's padding (a STAR trailer: Go reads a shorter prefix)")
                kind = buf[156:157]
                if kind == tarfile.GNUTYPE_SPARSE:
                    raise NotOneTar("a sparse entry (tar readers lay its bytes out differently)")
                if kind == tarfile.XGLTYPE:
                    raise NotOneTar("a global PAX header (container runtimes ignore it, Python applies it)")
                pax = kind in (tarfile.XHDTYPE, tarfile.SOLARIS_XHDTYPE)
                gnu = kind in (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK)
                if (pax or gnu) and tarfile.nti(buf[124:136]) > MAX_EXTENSION:  # type: ignore[attr-defined]
                    raise NotOneTar(f"an extension header of more than {MAX_EXTENSION:,} bytes")
                cls.pending.add("pax" if pax else "gnu" if gnu else "entry")
                if {"pax", "gnu"} <= cls.pending:
                    raise NotOneTar("an entry named by both a PAX header and a GNU long name")
                if "entry" in cls.pending:
                    cls.pending = set()
                try:
                    return super().frombuf(buf, encoding, errors)
                except tarfile.InvalidHeaderError as e:  # type: ignore[attr-defined]  # not in the stubs
                    raise NotOneTar(f"an invalid header before the end of the archive: {e}") from e
            return super().frombuf(buf, encoding, errors)

        def _apply_pax_info(self, pax_headers: dict[str, str], encoding: str, errors: str) -> None:
            # Python applies GNU.sparse.name, .size and .realsize to any entry, Go only to one it reads as sparse.
            if any(key.startswith("GNU.sparse.") for key in pax_headers):
                raise NotOneTar("a PAX header with GNU.sparse keys (tar readers read its name and size differently)")
            super()._apply_pax_info(pax_headers, encoding, errors)  # type: ignore[misc]

    return Strict
