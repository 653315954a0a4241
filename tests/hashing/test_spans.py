"""Byte ranges of open files hashed by the engine (merkle.hashing.spans): each span's root is the root of its bytes
as a stream would give it, whatever its offset, size or how the engine splits it; a span the file does not hold
whole is an error for that span only."""

import io
import os

import pytest

from merkle.hashing.files import hash_stream
from merkle.hashing.spans import Span, hash_spans

CHUNK = 4096


@pytest.fixture
def two_files(tmp_path):
    data = [os.urandom(200_000), os.urandom(70_000)]
    fds = []
    for i, d in enumerate(data):
        (tmp_path / f"f{i}").write_bytes(d)
        fds.append(os.open(tmp_path / f"f{i}", os.O_RDONLY))
    yield list(zip(fds, data, strict=True))
    for fd in fds:
        os.close(fd)


@pytest.mark.parametrize("algorithm", ["blake3", "sha256"])
def test_each_span_has_the_root_of_its_bytes(two_files, algorithm, monkeypatch):
    from merkle.hashing import engine

    monkeypatch.setattr(engine, "UNIT_BYTES", 3 * CHUNK)  # large spans split across workers, as large files are
    (fd0, d0), (fd1, d1) = two_files
    spans = [(fd0, 0, len(d0)), (fd0, 513, 0), (fd0, 1, CHUNK), (fd0, 7, 150_001), (fd1, 512, 60_000), (fd1, 0, 1)]
    got = hash_spans([Span(f"s{i}", fd, at, n) for i, (fd, at, n) in enumerate(spans)], algorithm, CHUNK, jobs=2)
    for (fd, at, n), d in zip(spans, got, strict=True):
        data = (d0 if fd == fd0 else d1)[at : at + n]
        assert d.error is None and d.size == n
        assert d.root == hash_stream(io.BytesIO(data), algorithm, CHUNK)


def test_a_span_past_the_end_is_a_short_read_of_that_span_only(two_files):
    (fd0, d0), _ = two_files
    good, bad = hash_spans([Span("good", fd0, 0, 10), Span("bad", fd0, len(d0) - 5, 10)], "blake3", CHUNK)
    assert good.error is None
    assert bad.error is not None and "short read" in bad.error.message and bad.error.path == "bad"
