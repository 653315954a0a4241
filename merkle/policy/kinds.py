"""What a file is, from its bytes, never its name (docs/policy.md, P5).

- `pickle`: Python's pickle, of any protocol: the file's first bytes parse as
  pickle opcodes (`pickletools.genops`, which reads and never runs them) up to
  a STOP after at least one other opcode, or through all of the HEAD bytes
  read (a pickle has no magic number: this is what tells one from other
  bytes that happen to start with 0x80 0x02 or `(`), and the formats that
  wrap it: a zip archive holding a `.pkl` member
  (PyTorch's `torch.save` archives `NAME/data.pkl`, whatever the file is
  called: `.bin`, `.pt`, `.pth`, `.ckpt`), a NumPy `.npy` of object dtype
  (its data is a pickle);
- `safetensors`: an 8-byte little-endian header length, then the header's JSON;
- `zip`: any other zip archive;
- `executable`: ELF, PE (`MZ`), Mach-O, or a script with a `#!` line;
- `other`: anything else.

`classify` reads only through the `read_at` it is given: the caller hands
bytes that were verified against the signed tree, so a kind is a fact about
signed bytes.
"""

from __future__ import annotations

import ast
import functools
import re
import struct
from collections.abc import Callable
from typing import Final

KINDS: Final = ("pickle", "safetensors", "zip", "archive", "executable", "other")
HEAD: Final = 512
"""Bytes of a file's start that `sniff` reads (kept for every file while a tree is
verified for a policy: a few hundred bytes each)."""
MAX_CENTRAL_DIRECTORY: Final = 64 << 20
MAX_SAFETENSORS_HEADER: Final = 100_000_000
"""The largest header the safetensors reader accepts."""
_ARCHIVES: Final = (
    b"\x1f\x8b",
    b"BZh",
    b"\xfd7zXZ\x00",
    b"\x28\xb5\x2f\xfd",
    b"\x04\x22\x4d\x18",
    b"7z\xbc\xaf\x27\x1c",
)
"""gzip, bzip2, xz, zstd, lz4 and 7z: compressed, so their contents (a
joblib dump is a compressed pickle) are not examined: kind `archive`."""
_NESTED: Final = (".npy", ".npz", ".zip", ".pt", ".pth", ".bin", ".ckpt", ".pkl.gz", ".joblib", ".gz", ".tar")
"""Members of a zip that hold what the zip's listing cannot tell: the zip is an `archive`."""
_PLAIN_NPY: Final = re.compile(r"[<>|=]?(?:[biufc?]\d*|[SUV]\d+|[mM]8(?:\[\w+\])?)")
"""A .npy dtype of plain values; anything else (objects, structures) may hold a pickle."""
_RUNS_CODE: Final = frozenset(
    {"GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "REDUCE", "NEWOBJ", "NEWOBJ_EX", "BUILD", "EXT1", "EXT2", "EXT4",
     "PERSID", "BINPERSID"}
)  # fmt: skip
"""Opcodes through which loading a pickle calls code."""
_TRUNCATED: Final = ("not enough data", "no newline found", "exhausted before seeing STOP")
_EXECUTABLE: Final = (
    b"\x7fELF",
    b"MZ",
    b"\xfe\xed\xfa\xce",
    b"\xfe\xed\xfa\xcf",
    b"\xce\xfa\xed\xfe",
    b"\xcf\xfa\xed\xfe",
    b"\xca\xfe\xba\xbe",
    b"#!",
)
_EOCD: Final = b"PK\x05\x06"
_CENTRAL: Final = b"PK\x01\x02"


def sniff(head: bytes, size: int) -> str:
    """The kind told by a file's first bytes (`head`: HEAD of them, or the
    whole file): "zip" and "npy" still need `classify` to look inside."""
    if size >= 2 and is_pickle(head, whole=len(head) >= size):  # first: a pickle may dress as another format
        return "pickle"
    if size >= 10 and head[8:9] == b"{":
        (length,) = struct.unpack_from("<Q", head)
        if 2 <= length <= min(size - 8, MAX_SAFETENSORS_HEADER):
            return "safetensors"
    if head.startswith(_ARCHIVES) or head[257:262] == b"ustar":
        return "archive"
    if head.startswith((b"PK\x03\x04", _EOCD)):
        return "zip"
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head.startswith(_EXECUTABLE):
        return "executable"
    if len(head) >= size and _EOCD in head[-(22 + 0xFFFF) :]:  # a zip with bytes before it: zip readers open it
        return "zip"
    return "other"


def is_pickle(data: bytes, whole: bool) -> bool:
    """Whether `data` (a file's start, or with `whole` all of it) reads as a
    pickle.  A pickle has no magic number, so its opcodes are read
    (`pickletools`, which reads and never runs them): the first must be one
    a pickle starts with; then either a STOP ends the pickle (the file's
    last byte, or, as in PyTorch's legacy files, followed by another pickle)
    with the pickle machine's stack and memo consistent (`pickletools.dis`
    checks them), or, when the file goes on past `data`, nothing is wrong
    before `data` ends."""
    import io
    import pickletools
    import warnings

    if not data or data[0] not in _pickle_first():
        return False
    stop = -1
    count = 0
    runs = False
    with warnings.catch_warnings():  # pickletools decodes STRING arguments with warnings of its own
        warnings.simplefilter("ignore")
        try:
            for opcode, _, pos in pickletools.genops(io.BytesIO(data)):
                count += 1
                runs = runs or opcode.name in _RUNS_CODE
                if opcode.name == "STOP":
                    stop = pos if pos is not None else -1
        except ValueError as e:
            truncated = any(t in str(e) for t in _TRUNCATED)
            # One opcode cut off: only a text argument longer than `data` (a long string pickled by protocol 0)
            enough = count >= 2 or (data[0] in b"VS" and _text(data[1:]))
            return not whole and truncated and enough and _consistent(data, None)
        except Exception:  # noqa: BLE001 - anything else the reader meets is not a pickle it can read
            return False
    # A few opcodes of plain values (an int in a tuple) run nothing, and random bytes make them (1 file in
    # 10,000 of 16-64 random bytes did): a pickle that calls something, one as pickle.dumps writes it
    # (protocol 2 and later open with PROTO), or a long one.
    if stop < 0 or not ((runs or data[0] == 0x80) and count >= 3 or count >= 10):
        return False
    # What follows a STOP, pickle.load never reads; up to it, the pickle machine must end with one object.
    return _consistent(data[: stop + 1], stop) and _one_object(data[: stop + 1])


def _one_object(data: bytes) -> bool:
    """The pickle machine's stack, by each opcode's declared effect, never
    pops what is not there and holds exactly one object at STOP."""
    import io
    import pickletools

    mark = pickletools.markobject
    stack: list[object] = []
    for opcode, _, _ in pickletools.genops(io.BytesIO(data)):
        before = opcode.stack_before
        if mark in before:  # pops everything down to the topmost mark, and the mark
            if mark not in stack:
                return False
            while stack.pop() is not mark:
                pass
            before = before[: before.index(mark)]
        if len(before) > len(stack) or any(x is mark for x in stack[len(stack) - len(before) :]):
            return False
        del stack[len(stack) - len(before) :]
        if opcode.name == "STOP":
            return not stack
        stack.extend(mark if x is mark else object() for x in opcode.stack_after)
    return False


def _text(data: bytes) -> bool:
    """No control character but tab and carriage return: a protocol-0 string argument, not random bytes."""
    return not any(b < 32 and b not in (9, 13) or b == 127 for b in data)


@functools.cache
def _pickle_first() -> frozenset[int]:
    """Opcodes a pickle can start with: those that take nothing from the
    stack (PROTO and FRAME included)."""
    import pickletools

    return frozenset(op.code.encode("latin-1")[0] for op in pickletools.opcodes if not op.stack_before)


def _consistent(data: bytes, stop: int | None) -> bool:
    """`pickletools.dis` finds the stack and memo consistent up to STOP
    (or, with `stop` None, up to where `data` is cut off)."""
    import io
    import pickletools
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            pickletools.dis(io.BytesIO(data), out=io.StringIO())
        except ValueError as e:
            return stop is None and any(t in str(e) for t in _TRUNCATED)
        except Exception:  # noqa: BLE001
            return False
    return True


def classify(size: int, read_at: Callable[[int, int], bytes]) -> str:
    """One of KINDS, reading what it needs with `read_at(offset, length)`."""
    head = read_at(0, min(size, HEAD)) if size else b""
    kind = sniff(head, size)
    if kind == "other" and size > len(head):  # a zip may have anything before it: look for its end record
        tail_len = min(size, 22 + 0xFFFF)
        if _EOCD in read_at(size - tail_len, tail_len):
            kind = "zip"
    if kind == "zip":
        members = zip_members(size, read_at)
        if members is None:
            return "archive"  # a directory that cannot be read (or a zip too large to list here)
        names = [m.lower() for m in members]
        if any(n.endswith((".pkl", ".pickle")) or n.rsplit("/", 1)[-1] == "data.pkl" for n in names):
            return "pickle"
        return "archive" if any(n.endswith(_NESTED) for n in names) else "zip"
    if kind == "npy":
        return "pickle" if _npy_objects(size, read_at) else "other"
    return kind


def zip_members(size: int, read_at: Callable[[int, int], bytes]) -> list[str] | None:
    """The member names of a zip archive's central directory (ZIP64 too);
    None when it cannot be read here (damaged, or larger than
    MAX_CENTRAL_DIRECTORY): the caller fails closed."""
    tail_len = min(size, 22 + 0xFFFF)
    tail = read_at(size - tail_len, tail_len)
    at = tail.rfind(_EOCD)
    if at < 0 or len(tail) - at < 22:
        return None
    count, cd_size, cd_offset = struct.unpack_from("<HII", tail, at + 10)
    if 0xFFFFFFFF in (cd_size, cd_offset) or count == 0xFFFF:
        locator = tail.rfind(b"PK\x06\x07", 0, at)
        if locator < 0 or len(tail) - locator < 20:
            return None
        (eocd64,) = struct.unpack_from("<Q", tail, locator + 8)
        record = read_at(eocd64, 56) if eocd64 + 56 <= size else b""
        if not record.startswith(b"PK\x06\x06"):
            return None
        count, cd_size, cd_offset = struct.unpack_from("<QQQ", record, 32)
    if cd_size > MAX_CENTRAL_DIRECTORY:
        return None
    directory = read_at(cd_offset, cd_size) if cd_offset + cd_size <= size else b""
    if cd_size and not directory.startswith(_CENTRAL):
        # a zip with bytes before it: its offsets count from the zip's start, the directory ends where the
        # end record begins (zip readers find it so)
        start = size - (len(tail) - at) - cd_size
        directory = read_at(start, cd_size) if start >= 0 else b""
        if not directory.startswith(_CENTRAL):
            return None
    names = []
    pos = 0
    while pos + 46 <= len(directory) and directory.startswith(_CENTRAL, pos):
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", directory, pos + 28)
        names.append(directory[pos + 46 : pos + 46 + name_len].decode("utf-8", "replace"))
        pos += 46 + name_len + extra_len + comment_len
    return names


def _npy_objects(size: int, read_at: Callable[[int, int], bytes]) -> bool:
    """Whether a .npy file's dtype holds Python objects (its data is then a pickle)."""
    head = read_at(0, min(size, 12))
    if len(head) < 10:
        return False
    major = head[6]
    if major == 1:
        (length,) = struct.unpack_from("<H", head, 8)
        start = 10
    elif len(head) >= 12:
        (length,) = struct.unpack_from("<I", head, 8)
        start = 12
    else:
        return False
    text = read_at(start, min(length, 1 << 16, max(0, size - start)))
    try:
        header = ast.literal_eval(text.decode("latin-1").strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return True  # a header numpy could not read either: not trusted to be plain
    descr = header.get("descr") if isinstance(header, dict) else None
    return not (isinstance(descr, str) and _PLAIN_NPY.fullmatch(descr))
