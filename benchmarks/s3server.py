"""moto's S3 server on 127.0.0.1 for the object-store benchmarks
(test_s3.py, test_sync.py), with dummy credentials, and objects kept in
memory and served without a copy of the whole object per ranged GET (see
test_s3.py; MERKLE_BENCH_MOTO_AS_IS=1 turns that off)."""

from __future__ import annotations

import contextlib
import inspect
import io
import logging
import os
from collections.abc import Iterator

import pytest


def _cheap_ranges(mp: pytest.MonkeyPatch) -> None:
    """GET hands out the stored bytes object (BytesIO.getvalue() shares it once
    the buffer is trimmed) instead of a fresh copy of the whole object."""
    from moto.s3.models import FakeKey

    copying: property = inspect.getattr_static(FakeKey, "value")
    assert copying.fget is not None and copying.fset is not None

    def shared(key: FakeKey) -> bytes:
        held = getattr(key._value_buffer, "_file", None)
        if isinstance(held, io.BytesIO):
            with key.lock:
                return held.getvalue()
        assert copying.fget is not None
        copied: bytes = copying.fget(key)
        return copied

    mp.setattr(FakeKey, "value", property(shared, copying.fset))


@contextlib.contextmanager
def running() -> Iterator[str]:
    """The server's endpoint URL while it runs."""
    from moto import server as moto_server

    with pytest.MonkeyPatch.context() as mp:
        for key, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }.items():
            mp.setenv(key, value)
        for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
            mp.delenv(key, raising=False)
        if os.environ.get("MERKLE_BENCH_MOTO_AS_IS", "") in ("", "0"):
            mp.setenv("MOTO_S3_DEFAULT_KEY_BUFFER_SIZE", str(1 << 40))  # objects stay in memory
            _cheap_ranges(mp)
        werkzeug = logging.getLogger("werkzeug")  # logs every request, even with verbose=False
        level = werkzeug.level
        werkzeug.setLevel(logging.ERROR)
        server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            host, port = server.get_host_and_port()
            endpoint = f"http://{host}:{port}"
            yield endpoint
        finally:
            server.stop()
            werkzeug.setLevel(level)
