"""A loopback HTTP/1.1 proxy in front of a test registry that injects faults (tests only).

Rules fire a bounded number of times (or persistently) on requests matching a method and a path
pattern: answer with a status (503, 429 with Retry-After), reset the connection after part of
the request body, or expire the bearer token in use (401 with the registry's own challenge, and
that token refused from then on). The proxy counts the request-body bytes of blob uploads and
shuts itself down after ``lifetime`` seconds at the latest. It also forwards absolute-form
requests (as an ``http_proxy``) and tunnels ``CONNECT`` (as an ``https_proxy``); with ``tls`` it
is itself spoken to over TLS (an ``https://`` proxy).
"""

from __future__ import annotations

import http.client
import re
import select
import socket
import ssl
import struct
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade"}
UPLOAD_PATH = re.compile(r"/v2/.+/blobs/uploads/")


@dataclass
class Rule:
    """A fault: ``kind`` is "status", "reset" or "expire-token"."""

    kind: str
    method: str = ".*"
    path: str = ".*"
    times: int | None = 1
    status: int = 503
    retry_after: str | None = None
    after_bytes: int = 0
    fired: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.times is not None and self.fired >= self.times:
            return False
        return bool(re.fullmatch(self.method, method) and re.search(self.path, path))


@dataclass
class Seen:
    """One request the proxy handled."""

    method: str
    path: str
    status: int
    fault: str | None = None


@dataclass
class FaultProxy:
    """Serve on 127.0.0.1 and forward to ``upstream`` (``host:port``)."""

    upstream: str
    lifetime: float = 300.0
    rules: list[Rule] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    upload_bytes: int = 0
    connections: int = 0
    tls: tuple[Path, Path] | None = None
    """(certificate, key): speak TLS to clients (an ``https://`` proxy)."""

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._challenge: str | None = None
        self._expired: set[str] = set()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        if self.tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(self.tls[0]), str(self.tls[1]))
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.address = f"127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._timer = threading.Timer(self.lifetime, self.stop)
        self._timer.daemon = True
        self._stopped = False

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop serving (idempotent)."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self._timer.cancel()
        self._server.shutdown()
        self._server.server_close()

    def add(self, rule: Rule) -> Rule:
        """Add a fault rule; returns it (``rule.fired`` counts its firings)."""
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        """Drop every rule, expired token and counter."""
        with self._lock:
            self.rules.clear()
            self._expired.clear()
            self.seen.clear()
            self.upload_bytes = 0
            self.connections = 0

    def _pick(self, method: str, path: str) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.matches(method, path):
                    rule.fired += 1
                    return rule
        return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with proxy._lock:
                    proxy.connections += 1

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _record(self, status: int, fault: str | None = None) -> None:
                with proxy._lock:
                    proxy.seen.append(Seen(self.command, self.path, status, fault))

            def _simple(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
                self._drain()
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _drain(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                while length > 0:
                    chunk = self.rfile.read(min(length, 1 << 20))
                    if not chunk:
                        break
                    length -= len(chunk)

            def _reset(self, after: int) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                left = min(after, length)
                while left > 0:
                    chunk = self.rfile.read(min(left, 1 << 16))
                    if not chunk:
                        break
                    left -= len(chunk)
                self._record(0, "reset")
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.close_connection = True
                self.connection.close()

            def _token_expired(self, challenge: str, fault: str) -> None:
                body = b'{"errors":[{"code":"UNAUTHORIZED","message":"token expired"}]}'
                self._record(401, fault)
                self._simple(401, {"WWW-Authenticate": challenge}, body)

            def _handle(self) -> None:
                auth = self.headers.get("Authorization")
                if auth and auth in proxy._expired and proxy._challenge:
                    self._token_expired(proxy._challenge, "expired")
                    return
                rule = proxy._pick(self.command, self.path)
                if rule is not None:
                    if rule.kind == "reset":
                        self._reset(rule.after_bytes)
                        return
                    if rule.kind == "expire-token" and auth and proxy._challenge:
                        with proxy._lock:
                            proxy._expired.add(auth)
                        self._token_expired(proxy._challenge, "expire-token")
                        return
                    if rule.kind == "status":
                        headers = {"Content-Type": "application/json"}
                        if rule.retry_after is not None:
                            headers["Retry-After"] = rule.retry_after
                        self._record(rule.status, f"status {rule.status}")
                        self._simple(rule.status, headers, b'{"errors":[]}')
                        return
                self._forward()

            def _forward(self) -> None:
                conn = http.client.HTTPConnection(proxy.upstream, timeout=120)
                length = int(self.headers.get("Content-Length") or 0)
                conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for key, value in self.headers.items():
                    if key.lower() not in HOP_HEADERS:
                        conn.putheader(key, value)
                conn.endheaders()
                counting = self.command in ("PUT", "PATCH") and UPLOAD_PATH.search(self.path)
                left = length
                while left > 0:
                    chunk = self.rfile.read(min(left, 1 << 20))
                    if not chunk:
                        break
                    conn.send(chunk)
                    left -= len(chunk)
                    if counting:
                        with proxy._lock:
                            proxy.upload_bytes += len(chunk)
                response = conn.getresponse()
                if response.status == 401 and response.getheader("WWW-Authenticate"):
                    proxy._challenge = response.getheader("WWW-Authenticate")
                body = response.read()
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in HOP_HEADERS and key.lower() != "content-length":
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)
                conn.close()
                self._record(response.status)

            def do_CONNECT(self) -> None:
                host, _, port = self.path.rpartition(":")
                try:
                    upstream = socket.create_connection((host, int(port)), timeout=30)
                except (OSError, ValueError):
                    self._record(502, "connect")
                    self._simple(502, {})
                    return
                self._record(200, "connect")
                self.send_response(200, "Connection established")
                self.end_headers()
                self.close_connection = True
                ends = [self.connection, upstream]
                with upstream:
                    while True:
                        readable, _, _ = select.select(ends, [], [], 30)
                        if not readable:
                            return
                        for end in readable:
                            data = end.recv(1 << 16)
                            if not data:
                                return
                            (upstream if end is self.connection else self.connection).sendall(data)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _handle

        return Handler
