"""An HTTP proxy of the tests' own between s3fs and moto's S3 server that
spoils the requests a test names: 500 InternalError and 503 SlowDown
answers, slow answers, connections reset mid-body, bodies cut short (a
correct Content-Length and an early close, a shortened but matching
Content-Length, or no length at all), and hooks that run before or after a
request (to delete or overwrite an object behind the client's back)."""

from __future__ import annotations

import http.client
import http.server
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit


@dataclass(frozen=True)
class Request:
    method: str
    key: str
    """bucket/key as requested (no query)."""
    query: str
    range: str | None


def object_get(req: Request) -> bool:
    """A ranged read of an object (what RemoteReader.read_into sends)."""
    return req.method == "GET" and req.range is not None


def listing(req: Request) -> bool:
    return req.method == "GET" and "list-type" in req.query


def get_of(key: str, first_byte: int | None = None) -> Callable[[Request], bool]:
    def match(req: Request) -> bool:
        if not object_get(req) or not req.key.endswith("/" + key):
            return False
        return first_byte is None or (req.range or "").startswith(f"bytes={first_byte}-")

    return match


def head_of(key: str) -> Callable[[Request], bool]:
    return lambda req: req.method == "HEAD" and req.key.endswith("/" + key)


@dataclass
class Rule:
    action: str
    match: Callable[[Request], bool]
    times: int | None
    """How many matching requests to spoil; None: all of them."""
    arg: Any = None
    hits: int = 0


@dataclass
class FaultProxy:
    upstream: str
    rules: list[Rule] = field(default_factory=list)
    log: list[tuple[Request, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    """The proxy's own failures: a test whose proxy broke proves nothing."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        parts = urlsplit(self.upstream)
        self.host, self.port = parts.hostname, parts.port
        handler = type("Handler", (_Handler,), {"proxy": self})
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.server.handle_error = self._handler_failed
        self.thread = threading.Thread(target=self.server.serve_forever, name="fault-proxy", daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def add(
        self, action: str, match: Callable[[Request], bool] = object_get, times: int | None = None, arg: Any = None
    ) -> Rule:
        rule = Rule(action, match, times, arg)
        with self.lock:
            self.rules.append(rule)
        return rule

    def reset(self) -> None:
        with self.lock:
            self.rules.clear()
            self.log.clear()
            self.errors.clear()

    def _handler_failed(self, request: Any, address: Any) -> None:
        import traceback

        self.errors.append(traceback.format_exc())

    def pick(self, req: Request) -> Rule | None:
        with self.lock:
            for rule in self.rules:
                if rule.match(req) and (rule.times is None or rule.hits < rule.times):
                    rule.hits += 1
                    self.log.append((req, rule.action))
                    return rule
            self.log.append((req, "pass"))
        return None

    def injected(self, action: str) -> int:
        with self.lock:
            return sum(1 for _, a in self.log if a == action)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "upgrade", "trailer"}


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as aiohttp expects
    proxy: FaultProxy

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        try:
            self._relay()
        except OSError:  # the client gave up (a timeout we provoked): drop the connection
            self.close_connection = True

    do_HEAD = do_PUT = do_POST = do_DELETE = do_GET

    def _relay(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        req = Request(self.command, unquote(parts.path.lstrip("/")), parts.query, self.headers.get("Range"))
        rule = self.proxy.pick(req)
        action = rule.action if rule else "pass"
        if action == "500":
            return self._error(500, "InternalError", "We encountered an internal error. Please try again.")
        if action == "503":
            return self._error(503, "SlowDown", "Please reduce your request rate.")
        if action == "delay":
            time.sleep(rule.arg)
        if action == "before":
            rule.arg(req)
        status, headers, payload = self._forward(body)
        head = self.command == "HEAD"
        if action == "reset" and not head:
            # headers promise the whole body; half of it, then a TCP RST
            self._head(status, headers, len(payload))
            self.wfile.write(payload[: len(payload) // 2])
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return
        if action == "close-early" and not head:
            # a correct Content-Length, fewer bytes, then FIN
            self._head(status, headers, len(payload))
            self.wfile.write(payload[: len(payload) // 2])
            self.close_connection = True
            return
        if action == "short" and not head and status == 206:
            # fewer bytes (half, rounded up: never none), with a Content-Length
            # and Content-Range that match what is sent: nothing on the wire
            # says anything is missing
            payload = payload[: -(-len(payload) // 2)]
            span, _, total = headers["content-range"].removeprefix("bytes ").partition("/")
            first = int(span.partition("-")[0])
            if payload:
                headers["content-range"] = f"bytes {first}-{first + len(payload) - 1}/{total}"
        if action == "empty" and not head and status == 206:
            payload = b""  # a 206 with Content-Length: 0
        if action == "unframed" and not head:
            # no Content-Length: the body ends where the connection does
            self.send_response_only(status)
            for k, v in headers.items():
                if k != "content-length":
                    self.send_header(k, v)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(payload[: -(-len(payload) // 2)])  # half, rounded up
            self.close_connection = True
            return
        self._head(status, headers, None if head else len(payload))
        if not head:
            self.wfile.write(payload)
        if action == "after":
            rule.arg(req)

    def _forward(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection(self.proxy.host, self.proxy.port, timeout=30)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            conn.request(self.command, self.path, body=body or None, headers=headers)
            resp = conn.getresponse()
            payload = resp.read()
            out = {k.lower(): v for k, v in resp.getheaders() if k.lower() not in HOP_BY_HOP}
            return resp.status, out, payload
        finally:
            conn.close()

    def _head(self, status: int, headers: dict[str, str], length: int | None) -> None:
        self.send_response_only(status)
        for k, v in headers.items():
            if length is None or k != "content-length":
                self.send_header(k, v)
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.end_headers()

    def _error(self, status: int, code: str, message: str) -> None:
        xml = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
            f"<RequestId>injected</RequestId></Error>"
        ).encode()
        self.send_response_only(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", "0" if self.command == "HEAD" else str(len(xml)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(xml)
