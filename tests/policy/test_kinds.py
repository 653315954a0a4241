"""What a file is, from its bytes (merkle.policy.kinds): real files made by
the libraries that make them (pickle, numpy, safetensors, zipfile) and real
executables, named so that a name would mislead."""

from __future__ import annotations

import io
import pickle
import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save as save_safetensors
from support import hf_layout

from merkle.policy.kinds import classify, sniff, zip_members


def kind(data: bytes) -> str:
    return classify(len(data), lambda offset, length: data[offset : offset + length])


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_pickles_of_every_protocol(protocol):
    data = pickle.dumps({"weights": [1, 2, 3], "name": "x"}, protocol=protocol)
    assert kind(data) == "pickle"


def test_a_torch_style_zip_holding_data_pkl_is_pickle_whatever_its_name():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("pytorch_model/data.pkl", pickle.dumps({"a": 1}, protocol=2))
        z.writestr("pytorch_model/byteorder", "little")
        z.writestr("pytorch_model/data/0", b"\x00" * 64)
    data = buf.getvalue()
    assert zip_members(len(data), lambda o, n: data[o : o + n])[0] == "pytorch_model/data.pkl"
    assert kind(data) == "pickle"


def test_a_plain_zip_is_zip():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("notes.txt", "hello")
    assert kind(buf.getvalue()) == "zip"


def test_numpy_object_arrays_are_pickle_plain_arrays_are_not():
    plain, objects = io.BytesIO(), io.BytesIO()
    np.save(plain, np.arange(10))
    np.save(objects, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    assert kind(plain.getvalue()) == "other"
    assert kind(objects.getvalue()) == "pickle"


def test_safetensors_even_when_its_header_length_starts_like_a_pickle():
    data = save_safetensors({"w": np.zeros((4, 4), dtype=np.float32)})
    assert kind(data) == "safetensors"
    # A header of 0x0280 bytes: the file starts 80 02, a pickle's protocol-2 opening.
    padded = save_safetensors({"w" + "x" * 600: np.zeros((1,), dtype=np.uint8)})
    length = int.from_bytes(padded[:8], "little")
    header = padded[8 : 8 + length].rstrip(b" ") + b" " * (0x0280 - len(padded[8 : 8 + length].rstrip(b" ")))
    crafted = (0x0280).to_bytes(8, "little") + header + padded[8 + length :]
    assert crafted[:2] == b"\x80\x02"
    assert kind(crafted) == "safetensors"


def test_executables():
    elf = Path(sys.executable).resolve().read_bytes()[:4096]
    assert kind(elf) == "executable"
    assert kind(b"#!/bin/sh\necho hi\n") == "executable"
    sh = shutil.which("sh")
    assert sh is not None and kind(Path(sh).resolve().read_bytes()[:64]) == "executable"


@pytest.mark.parametrize("data", [b"", b"x", b"hello world.", b'{"a": 1}\n', b"PK", bytes(100)])
def test_other(data):
    assert kind(data) in ("other",)


def test_the_real_models_safetensors():
    data = (hf_layout.model_dir() / "model.safetensors").read_bytes()
    assert kind(data) == "safetensors"
    assert sniff(data[:4096], len(data)) == "safetensors"


def test_random_bytes_are_not_pickles_even_when_they_start_like_one():
    """A pickle has no magic number: bytes that merely open with 0x80 0x02 or
    `(` and end with `.` (about 1 in 8,000 random files did, before the
    opcodes were read) are not pickles."""
    import random

    rng = random.Random(17)
    for _ in range(20000):
        data = bytes(rng.getrandbits(8) for _ in range(rng.randint(16, 64)))
        assert kind(data) != "pickle", data
    for opener in (b"\x80\x02", b"\x80\x04", b"(", b"]", b"}"):
        data = opener + bytes(rng.getrandbits(8) for _ in range(200)) + b"."
        assert kind(data) != "pickle", data


def test_a_large_pickle_is_told_from_its_first_bytes():
    data = pickle.dumps([list(range(1000)) for _ in range(50)], protocol=2)
    assert len(data) > 4096 and kind(data) == "pickle"
    assert kind(pickle.dumps("x" * 10000, protocol=0)) == "pickle"


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("true",))


def _evil(protocol: int) -> bytes:
    return pickle.dumps(_Evil(), protocol=protocol)


def _npy(descr: str) -> bytes:
    header = repr({"descr": descr, "fortran_order": False, "shape": (1,)}).encode()
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + _evil(2)


def _zip(members: dict[str, bytes], before: bytes = b"") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return before + buf.getvalue()


_HIDDEN = [
    ("a trailing byte after STOP", _evil(2) + b"\n", "pickle"),
    ("padding after STOP", _evil(2) + bytes(10000), "pickle"),
    ("protocol 0 with trailing text", _evil(0) + b"trailing", "pickle"),
    ("protocol 4 starting with FRAME, no PROTO", _evil(4)[2:], "pickle"),
    (
        "a pickle dressed as a safetensors header",
        b"X\x05\x00\x00\x00{}0\x94" + _evil(0)[:0] + b"." * 0 + _evil(2)[2:] + bytes(1400),
        None,
    ),  # fmt: skip
    ("a .npy of dtype 'object' (lower case)", _npy("object"), "pickle"),
    ("a structured .npy", _npy("[('a', '<f4')]"), "pickle"),
    ("an .npz holding an object array", _zip({"a.npy": _npy("|O")}), "archive"),
    ("a zip with bytes before it", _zip({"w/data.pkl": _evil(2)}, before=bytes(16)), "pickle"),
    ("a zip inside a zip", _zip({"inner.zip": _zip({"w/data.pkl": _evil(2)})}), "archive"),
    ("gzip", __import__("gzip").compress(_evil(2), mtime=0), "archive"),
    ("a plain .npy", _npy("<f4")[: -len(_evil(2))] + bytes(4), "other"),
]


@pytest.mark.parametrize(("case", "data", "want"), _HIDDEN, ids=[c[0] for c in _HIDDEN])
def test_what_a_review_found_hidden(case, data, want):
    got = kind(data)
    if want is None:  # whatever else it is, a pickle that loads must not pass for safetensors
        assert got != "safetensors", case
    else:
        assert got == want, case


def test_a_few_plain_opcodes_are_not_called_a_pickle_but_a_call_is():
    """Random bytes make short valid pickles of plain values (`M` BININT2,
    TUPLE1, STOP: an int in a tuple; one in 10,000 files of 16-64 random
    bytes in the benchmark's data): those run nothing and are not called
    pickles; three opcodes that call something are."""
    assert kind(b"M\xf8:\x85." + bytes(40)) == "other"
    assert kind(b"cos\nsystem\n(S'true'\ntR.") == "pickle"
    assert kind(_evil(2)) == "pickle" and kind(_evil(0)) == "pickle"
