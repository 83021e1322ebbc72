"""A small HTTP/1.1 transport on ``http.client``: kept-alive connections, TLS, proxies, sendfile.

``requests`` costs ~70 ms to import, more than the rest of a small push; registry traffic needs
little of it. Bodies that are file slices go out with ``socket.sendfile`` (no copies through
Python); other bodies go out whole. ``TCP_NODELAY`` is set, so headers and body never wait on
Nagle's algorithm and delayed ACKs.
"""

from __future__ import annotations

import http.client
import os
import select
import socket
import ssl
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode, urlsplit

CONNECT_TIMEOUT = 15.0
SEGMENT = 8 << 20
READ_SIZE = 1 << 20
READ_TIMEOUT = 300.0
DRAIN_LIMIT = 64 << 10

TRANSPORT_ERRORS = (OSError, http.client.HTTPException)
"""What a broken connection raises (timeouts and TLS errors are ``OSError`` subclasses)."""


def basic_auth(username: str, password: str) -> str:
    """The ``Authorization`` (or ``Proxy-Authorization``) value for HTTP basic auth."""
    import base64

    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


class FileBody:
    """``length`` bytes of the file at ``path`` from ``offset``; ``on_sent`` hears of progress."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        offset: int,
        length: int,
        on_sent: Callable[[int], None] | None = None,
    ) -> None:
        self.path = path
        self.offset = offset
        self.length = length
        self.on_sent = on_sent

    def send(self, sock: socket.socket) -> None:
        """Write the bytes to ``sock``: ``sendfile`` in 8 MiB segments on plain sockets, 1 MiB
        blocks through TLS or without ``os.sendfile`` (where ``socket.sendfile`` would fall
        back to 8 KiB sends)."""
        copy = isinstance(sock, ssl.SSLSocket) or not hasattr(os, "sendfile")
        with open(self.path, "rb") as file:
            file.seek(self.offset)
            done = 0
            while done < self.length:
                if copy:
                    block = file.read(min(READ_SIZE, self.length - done))
                    sock.sendall(block)
                    sent = len(block)
                else:
                    sent = sock.sendfile(file, self.offset + done, min(SEGMENT, self.length - done))
                if not sent:
                    raise OSError(f"{self.path} is shorter than expected")
                done += sent
                if self.on_sent is not None:
                    self.on_sent(sent)


class Response:
    """The status, headers and (lazily read) body of one answer."""

    def __init__(self, raw: http.client.HTTPResponse, release: Any) -> None:
        self.status_code = raw.status
        self.headers = raw.headers
        self._raw = raw
        self._release = release
        self._content: bytes | None = None

    @property
    def content(self) -> bytes:
        """The whole body (read once)."""
        if self._content is None:
            try:
                self._content = self._raw.read()
            finally:
                self.close()
        return self._content

    @property
    def text(self) -> str:
        """The body as text."""
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body parsed as JSON (ValueError if it is not)."""
        import json

        return json.loads(self.content)

    def iter_content(self, size: int) -> Iterator[bytes]:
        """The body in blocks of up to ``size`` bytes."""
        try:
            while block := self._raw.read(size):
                yield block
        finally:
            self.close()

    def close(self) -> None:
        """Give the connection back for reuse if the body was read whole, else drop it."""
        release, self._release = self._release, None
        if release is None:
            return
        raw = self._raw
        if not raw.isclosed() and raw.length is not None and raw.length <= DRAIN_LIMIT:
            # A small unread body (a 401 challenge, an empty 201): read it and keep the
            # connection (a new TLS handshake costs far more); a large one is not worth it.
            try:
                raw.read()
            except TRANSPORT_ERRORS:
                release(False)
                return
        release(raw.isclosed() and not raw.will_close)


def _proxy_for(scheme: str, host: str) -> str | None:
    """The proxy URL from ``http_proxy``/``https_proxy``/``no_proxy`` for ``host``, if any."""
    if not any(k.lower().endswith("_proxy") for k in os.environ):
        return None
    import urllib.request

    proxies = urllib.request.getproxies_environment()
    bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
    if not proxies or bypass(host, proxies):
        return None
    return proxies.get(scheme) or proxies.get("all")


class Transport:
    """One kept-alive connection per scheme and host, reused across requests."""

    def __init__(self, ca_file: str | None = None) -> None:
        self._ca_file = ca_file
        self._context: Any = None
        self._idle: dict[tuple[str, str], http.client.HTTPConnection] = {}

    def _ssl_context(self) -> Any:
        if self._context is None:
            if self._ca_file:
                self._context = ssl.create_default_context(cafile=self._ca_file)
            else:
                self._context = ssl.create_default_context()
                try:
                    import certifi

                    self._context.load_verify_locations(certifi.where())
                except (ImportError, OSError):
                    pass
        return self._context

    def _connect(self, scheme: str, netloc: str) -> http.client.HTTPConnection:
        proxy = _proxy_for(scheme, netloc.rsplit(":", 1)[0])
        conn: http.client.HTTPConnection
        if proxy:
            parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
            proxy_host = parts.hostname or ""
            headers = {}
            if parts.username is not None:
                from urllib.parse import unquote

                password = unquote(parts.password or "")
                headers["Proxy-Authorization"] = basic_auth(unquote(parts.username), password)
            if scheme == "https":
                conn = http.client.HTTPSConnection(
                    proxy_host,
                    parts.port or 80,
                    timeout=CONNECT_TIMEOUT,
                    context=self._ssl_context(),
                )
                conn.set_tunnel(netloc, headers=headers)
            else:
                conn = http.client.HTTPConnection(
                    proxy_host, parts.port or 80, timeout=CONNECT_TIMEOUT
                )
                conn.proxy_headers = headers  # type: ignore[attr-defined]
        elif scheme == "https":
            conn = http.client.HTTPSConnection(
                netloc, timeout=CONNECT_TIMEOUT, context=self._ssl_context()
            )
        else:
            conn = http.client.HTTPConnection(netloc, timeout=CONNECT_TIMEOUT)
        conn.connect()
        assert conn.sock is not None
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.sock.settimeout(READ_TIMEOUT)
        return conn

    def _take(self, key: tuple[str, str]) -> http.client.HTTPConnection:
        conn = self._idle.pop(key, None)
        if conn is not None and conn.sock is not None:
            # A readable idle socket has been closed by the server (or holds junk): drop it.
            readable, _, _ = select.select([conn.sock], [], [], 0)
            if not readable:
                return conn
        if conn is not None:
            conn.close()
        return self._connect(*key)

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        body: bytes | str | FileBody | None = None,
        params: list[tuple[str, str]] | None = None,
    ) -> Response:
        """Send one request and read the status and headers of its answer."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        key = (scheme, parts.netloc)
        target = parts.path or "/"
        query = parts.query
        if params:
            query = f"{query}&{urlencode(params)}" if query else urlencode(params)
        if query:
            target = f"{target}?{query}"
        conn = self._take(key)
        proxy_headers = getattr(conn, "proxy_headers", None)
        if proxy_headers is not None:
            target = f"{scheme}://{parts.netloc}{target}"
        if isinstance(body, str):
            body = body.encode()
        all_headers = {"Host": parts.netloc, "Accept-Encoding": "identity"}
        all_headers.update(proxy_headers or {})
        all_headers.update(headers or {})
        if isinstance(body, FileBody):
            all_headers["Content-Length"] = str(body.length)
        elif body is not None or method in ("POST", "PUT", "PATCH"):
            all_headers["Content-Length"] = str(len(body or b""))
        try:
            conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            for name, value in all_headers.items():
                conn.putheader(name, value)
            sent_whole = True
            try:
                if isinstance(body, FileBody):
                    conn.endheaders()
                    assert conn.sock is not None
                    body.send(conn.sock)
                else:
                    conn.endheaders(body or None)
            except OSError as exc:
                # The server may have answered early (413, 401) and closed: read that answer.
                sent_whole = False
                try:
                    raw = conn.getresponse()
                except TRANSPORT_ERRORS:
                    raise exc from None
            else:
                raw = conn.getresponse()
        except BaseException:
            conn.close()
            raise

        def release(reusable: bool) -> None:
            if reusable and sent_whole and key not in self._idle:
                self._idle[key] = conn
            else:
                conn.close()

        response = Response(raw, release)
        if raw.length == 0:
            response.close()  # nothing to read: the connection is free again
        return response

    def close(self) -> None:
        """Close every idle connection."""
        for conn in self._idle.values():
            conn.close()
        self._idle.clear()
