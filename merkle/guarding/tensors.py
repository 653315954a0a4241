"""A sealed safetensors file as numpy arrays over its own memory: the header
parsed strictly (merkle.format.tensors), each tensor a read-only view of a
read-only mapping of the sealed copy, so the weights exist once."""

from __future__ import annotations

import math
import mmap
from typing import Any, Final

from merkle.errors import FormatError, UnsupportedError
from merkle.format.tensors import read_header, tensor_info
from merkle.guarding.holding import Held

NUMPY_DTYPES: Final = {
    "BOOL": "bool",
    "U8": "uint8",
    "I8": "int8",
    "U16": "<u2",
    "I16": "<i2",
    "F16": "<f2",
    "U32": "<u4",
    "I32": "<i4",
    "F32": "<f4",
    "U64": "<u8",
    "I64": "<i8",
    "F64": "<f8",
}
"""safetensors dtypes numpy has (little-endian, as the format stores them)."""


def arrays(held: Held, np: Any) -> dict[str, Any]:
    """Every tensor of the sealed file `held`, by name."""
    if held.size == 0:
        raise UnsupportedError("not a safetensors file (empty)", held.path)
    mapped = mmap.mmap(held.fd, held.size, access=mmap.ACCESS_READ)  # sealed: these pages never change
    view = memoryview(mapped)

    class _Reader:  # what read_header reads through: the mapping itself
        pos = 0

        def seek(self, pos: int) -> None:
            self.pos = pos

        def read(self, n: int) -> bytes:
            data = bytes(view[self.pos : self.pos + n])
            self.pos += len(data)
            return data

    header_len, header = read_header(_Reader(), held.size, held.path)  # type: ignore[arg-type]
    out: dict[str, Any] = {}
    for name in header:
        if name == "__metadata__":
            continue
        info = tensor_info(header_len, header, name, held.size, held.path)
        dtype = NUMPY_DTYPES.get(info.dtype)
        if dtype is None:
            raise UnsupportedError(f"tensor {name!r} has dtype {info.dtype}, which numpy does not have", held.path)
        count = math.prod(info.shape)
        if count * np.dtype(dtype).itemsize != info.end - info.start:
            raise FormatError(f"tensor {name!r} holds {info.end - info.start} bytes, not its shape's", held.path)
        out[name] = np.frombuffer(view[info.start : info.end], dtype=dtype).reshape(info.shape)
    return out
