"""safetensors files, read through verification: the header and one named
tensor, touching only the chunks that hold them.

Layout (the safetensors file format): u64 little-endian N, N bytes of JSON header
`{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}`,
then the data; offsets count from byte 8 + N.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, BinaryIO

from merkle.errors import FormatError, UsageError
from merkle.format import strictjson

MAX_HEADER = 100 << 20  # the safetensors format's own limit


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str
    shape: tuple[int, ...]
    start: int
    end: int
    """Absolute byte offsets in the file, half-open."""


def read_header(f: BinaryIO, file_size: int, where: str) -> tuple[int, dict[str, Any]]:
    """(header length N, parsed header) from a (verified) binary file."""
    f.seek(0)
    raw = f.read(8)
    if len(raw) != 8:
        raise FormatError("not a safetensors file (shorter than 8 bytes)", where)
    (n,) = struct.unpack("<Q", raw)
    if n > MAX_HEADER or 8 + n > file_size:
        raise FormatError(f"not a safetensors file (header length {n})", where)
    header = strictjson.loads(f.read(n), where, MAX_HEADER) if n else None
    if not isinstance(header, dict):
        raise FormatError("safetensors header is not a JSON object", where)
    return n, header


def tensor_info(header_len: int, header: dict[str, Any], name: str, file_size: int, where: str) -> TensorInfo:
    entry = header.get(name)
    if name == "__metadata__" or not isinstance(entry, dict):
        known = sorted(k for k in header if k != "__metadata__")
        hint = f" (it has {len(known)}: {', '.join(known[:5])}{', ...' if len(known) > 5 else ''})"
        # A question the (verified) header cannot answer, not a damaged file.
        raise UsageError(f"no tensor {name!r} in the safetensors header{hint}", where)
    offsets, shape, dtype = entry.get("data_offsets"), entry.get("shape"), entry.get("dtype")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) for o in offsets)
        or not isinstance(shape, list)
        or not all(isinstance(d, int) and d >= 0 for d in shape)
        or not isinstance(dtype, str)
    ):
        raise FormatError(f"tensor {name!r} has a malformed header entry", where)
    base = 8 + header_len
    start, end = base + offsets[0], base + offsets[1]
    if not base <= start <= end <= file_size:
        raise FormatError(f"tensor {name!r} lies outside the file", where)
    return TensorInfo(name, dtype, tuple(shape), start, end)


def find_tensor(f: BinaryIO, name: str, file_size: int, where: str = "safetensors") -> TensorInfo:
    """Where tensor `name` lies, from the header read through `f` (which verifies)."""
    n, header = read_header(f, file_size, where)
    return tensor_info(n, header, name, file_size, where)


def read_tensor(f: BinaryIO, name: str, file_size: int, where: str = "safetensors") -> tuple[TensorInfo, bytes]:
    """The raw bytes of tensor `name` (read through `f`, which verifies)."""
    info = find_tensor(f, name, file_size, where)
    f.seek(info.start)
    return info, f.read(info.end - info.start)
