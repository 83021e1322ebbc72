"""The HTTP transport: ``urllib3`` 2.x behind a small interface (``Transport``, ``Response``).

urllib3 does connection pooling, TLS, proxies (``CONNECT`` tunnels, ``https://`` proxies over
TLS) and early replies (a 413 sent while an upload is still going out stays readable). This
module adds what it lacks for a registry client that must not hang or bloat:

- a total deadline per request (a watchdog shuts the socket down when it passes), on top of
  the per-read timeout, so a server trickling one byte per second is cut off;
- every body read is capped (``Response.read(limit)``);
- a blob body streamed from disk (``FileBody``) whose file shrinks or fails to read raises
  ``LocalFileError``, never a network error;
- every failure becomes a ``TransportError`` with a short description (no host, no secret).

It follows no redirects and retries nothing: the client decides both (``client.py``).
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import threading
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import HTTPError as Urllib3Error

from hatch_wasm_oci.errors import LayoutError, RegistryError
from hatch_wasm_oci.registry.retry import HOST_NOT_FOUND
from hatch_wasm_oci.registry.urls import split_url

CONNECT_TIMEOUT = 15.0
READ_TIMEOUT = 300.0
BLOCK = 1 << 20
DRAIN_LIMIT = 64 << 10


class TransportError(RegistryError):
    """A request that failed on the way (refused, reset, timed out, TLS): ``description`` is a
    short phrase without host or secret (the message may add what was being done); ``tls``
    holds the ``ssl.SSLError`` of a handshake or certificate failure."""

    def __init__(
        self, description: str, tls: ssl.SSLError | None = None, action: str | None = None
    ) -> None:
        super().__init__(f"{action} failed: {description}" if action else description)
        self.description = description
        self.tls = tls


class LocalFileError(LayoutError):
    """A blob file could not be read while it was being sent (it shrank, or the disk failed)."""


TRANSPORT_ERRORS = (TransportError,)
"""What a broken connection raises (kept as a tuple for ``except`` clauses)."""


def origin(url: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of ``url``, the unit credentials are bound to."""
    parts = split_url(url, "a URL")
    scheme = parts.scheme.lower()
    port = parts.port
    return scheme, (parts.hostname or "").lower(), port or (443 if scheme == "https" else 80)


class Deadline:
    """The total time one request may take; when it passes, the watchdog shuts down the socket
    of the connection in use, so any blocked send or receive returns at once."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._sock: Any = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def watch(self, sock: Any) -> None:
        """Shut ``sock`` down when the deadline passes (at once if it already has)."""
        with self._lock:
            self._sock = sock
            if self.expired:
                _shutdown(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            if self._sock is not None:
                _shutdown(self._sock)

    def cancel(self) -> None:
        """Stop the watchdog (the request is over)."""
        self._timer.cancel()
        with self._lock:
            self._sock = None


def _shutdown(sock: Any) -> None:
    raw = getattr(sock, "socket", sock)  # urllib3's SSLTransport (TLS in TLS) wraps a socket
    with contextlib.suppress(OSError, AttributeError):
        raw.shutdown(socket.SHUT_RDWR)


_current = threading.local()


class _Watched:
    """Connection mixin: hand the socket to the current request's deadline before sending."""

    sock: Any

    def request(self, *args: Any, **kwargs: Any) -> None:
        deadline: Deadline | None = getattr(_current, "deadline", None)
        if deadline is not None and self.sock is not None:
            deadline.watch(self.sock)
        super().request(*args, **kwargs)  # type: ignore[misc]

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        deadline: Deadline | None = getattr(_current, "deadline", None)
        if deadline is not None:
            deadline.watch(self.sock)


class _HTTPConnection(_Watched, HTTPConnection):
    def request(
        self, method: str, url: str, body: Any = None, headers: Any = None, **kw: Any
    ) -> None:
        if isinstance(body, FileBody) and hasattr(os, "sendfile"):
            # Plain HTTP: the headers through urllib3 (Content-Length is set), then the bytes
            # straight from the file with sendfile, not copied through Python.
            super().request(method, url, None, headers, **kw)
            body.send_to(self.sock)
            return
        super().request(method, url, body, headers, **kw)


class _HTTPSConnection(_Watched, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class FileBody:
    """``length`` bytes of the file at ``path`` from ``offset``; ``on_sent`` hears of progress.

    The file is opened when the request is sent; a failure to open or read it, or a file that
    ends early, raises ``LocalFileError`` (a local problem, never retried as a network one).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        offset: int,
        length: int,
        on_sent: Any = None,
    ) -> None:
        self.path = path
        self.offset = offset
        self.length = length
        self.on_sent = on_sent
        self._file: Any = None
        self._left = length

    def open(self) -> None:
        """Open the file at ``offset`` (LocalFileError if it cannot be read)."""
        try:
            self._file = open(self.path, "rb")  # noqa: SIM115 - closed by close()
            self._file.seek(self.offset)
        except OSError as exc:
            raise LocalFileError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        self._left = self.length

    def read(self, size: int = -1) -> bytes:
        """The next block (urllib3 calls this while sending)."""
        want = self._left if size < 0 else min(size, self._left)
        if want <= 0:
            return b""
        try:
            block: bytes = self._file.read(want)
        except OSError as exc:
            raise LocalFileError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        if not block:
            raise LocalFileError(
                f"{self.path} became shorter while it was being uploaded "
                f"({self.length - self._left} of {self.length} bytes sent)"
            )
        self._left -= len(block)
        if self.on_sent is not None:
            self.on_sent(len(block))
        return block

    def send_to(self, sock: socket.socket) -> None:
        """Send the bytes with ``sendfile`` in 1 MiB steps (LocalFileError if the file ends
        early)."""
        done = 0
        while done < self.length:
            step = min(BLOCK, self.length - done)
            sent = sock.sendfile(self._file, self.offset + done, step)
            if sent < step:
                raise LocalFileError(
                    f"{self.path} became shorter while it was being uploaded "
                    f"({done + sent} of {self.length} bytes sent)"
                )
            done += sent
            self._left -= sent
            if self.on_sent is not None:
                self.on_sent(sent)

    def close(self) -> None:
        """Close the file."""
        if self._file is not None:
            self._file.close()
            self._file = None


class BodyTooLarge(RegistryError):
    """An answer's body is larger than the caller allows."""


MAX_BODY = 4 << 20
"""The most ``Response.content`` reads (manifests, indexes and configs are capped at 4 MiB)."""


class Response:
    """The status, headers and (streamed, capped) body of one answer."""

    def __init__(self, raw: Any, deadline: Deadline) -> None:
        self.status_code: int = raw.status
        self.headers: Mapping[str, str] = raw.headers
        self._raw = raw
        self._deadline: Deadline | None = deadline
        self._done = False
        self._head: bytes | None = None
        self.url = ""
        self.action: str | None = None
        """What the request was for; named in errors raised while reading the body."""

    @property
    def content(self) -> bytes:
        """The whole body, at most 4 MiB (``BodyTooLarge`` beyond)."""
        return self.read(MAX_BODY)

    def json(self, limit: int = MAX_BODY) -> Any:
        """The body parsed as JSON with bounded size and depth (ValueError if it is not)."""
        from hatch_wasm_oci.files.json_input import parse_json

        return parse_json(self.read(limit), "the answer", limit)

    def iter_content(self, size: int = BLOCK) -> Iterator[bytes]:
        """The body in blocks of up to ``size`` bytes (TransportError if the connection breaks
        or the request's deadline passes)."""
        deadline = self._deadline
        if deadline is None:
            return
        try:
            while True:
                try:
                    block = self._raw.read1(size) if size else self._raw.read()
                except (Urllib3Error, OSError) as exc:
                    raise self._failure(exc, deadline, self.action) from None
                if deadline.expired:
                    raise self._failure(None, deadline, self.action)
                if not block:
                    break
                yield block
            self._done = True
        finally:
            self.close()

    def read(self, limit: int) -> bytes:
        """The whole body; ``BodyTooLarge`` if it is longer than ``limit`` bytes."""
        if self._head is not None:
            return self._head
        data = bytearray()
        for block in self.iter_content(min(BLOCK, limit + 1)):
            data += block
            if len(data) > limit:
                self.close()
                raise BodyTooLarge(f"the answer is larger than {limit} bytes")
        self._head = bytes(data)
        return self._head

    def head(self, limit: int) -> bytes:
        """Up to ``limit`` bytes of the body (the rest is dropped); b"" if it cannot be read.
        Asked again, it returns the same bytes."""
        if self._head is not None:
            return self._head[:limit]
        if self._deadline is None:
            return b""
        data = bytearray()
        try:
            for block in self.iter_content(min(BLOCK, limit)):
                data += block
                if len(data) >= limit:
                    break
        except TransportError:
            pass
        finally:
            self.close()
        self._head = bytes(data[:limit])
        return self._head

    @staticmethod
    def _failure(
        exc: BaseException | None, deadline: Deadline, action: str | None
    ) -> TransportError:
        if deadline.expired:
            description = f"timed out (no answer within {deadline.seconds:.0f} s)"
        else:
            description = describe(exc).description if exc is not None else "connection error"
        return TransportError(description, action=action)

    def close(self) -> None:
        """Give the connection back for reuse if the body was read whole (or is small), else
        drop it."""
        if self._deadline is None:
            return
        raw, deadline = self._raw, self._deadline
        self._deadline = None
        try:
            if not self._done:
                remaining = raw.length_remaining
                if remaining is not None and remaining <= DRAIN_LIMIT and not deadline.expired:
                    # A 401 challenge, an empty 201, a short error: keep the connection, and
                    # the bytes for an error message.
                    self._head = raw.read()
                    self._done = True
                else:
                    raw.close()
            raw.release_conn()
        except (Urllib3Error, OSError):
            raw.close()
        finally:
            deadline.cancel()


def describe(exc: BaseException) -> TransportError:
    """A TransportError for what urllib3 or the socket raised."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    chain = []
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__ or _reason(cause)
    for item in chain:
        if isinstance(item, ssl.SSLError) and not isinstance(item, _TLS_DROPPED):
            return TransportError("TLS error", tls=item)
    for item in chain:
        if isinstance(item, ConnectionRefusedError):
            return TransportError("connection refused")
        if isinstance(item, socket.gaierror) or type(item).__name__ == "NameResolutionError":
            return TransportError(HOST_NOT_FOUND)
    for item in chain:
        # urllib3's NewConnectionError is a ConnectTimeoutError: the causes come first.
        if isinstance(item, (TimeoutError, urllib3.exceptions.TimeoutError)):
            return TransportError("timed out")
        if isinstance(item, (BrokenPipeError, ConnectionAbortedError)) or (
            type(item).__name__ in ("RemoteDisconnected", "IncompleteRead")
        ):
            return TransportError("connection closed by the server")
        if isinstance(item, (ConnectionResetError, *_TLS_DROPPED)):
            return TransportError("connection reset")
        if isinstance(item, urllib3.exceptions.ProxyError):
            return TransportError("the proxy refused the connection")
    if isinstance(exc, urllib3.exceptions.ProtocolError):
        return TransportError("connection closed by the server")
    return TransportError(f"connection error ({type(exc).__name__})")


def _reason(exc: BaseException) -> BaseException | None:
    reason = getattr(exc, "reason", None)
    if isinstance(reason, BaseException):
        return reason
    args = getattr(exc, "args", ())
    for arg in args:
        if isinstance(arg, BaseException):
            return arg
    return None


_TLS_DROPPED = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError)
"""TLS errors that mean the connection went away (a reset), not a trust problem."""


def proxy_for(url: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The proxy URL from ``http_proxy``/``https_proxy``/``all_proxy`` for ``url``, unless
    ``no_proxy`` names its host."""
    env = os.environ if environ is None else environ
    found: dict[str, str] = {}
    for key, value in env.items():
        name = key.lower()
        # Lowercase names win over uppercase ones, as in curl and urllib.
        if value and name.endswith("_proxy") and (key == name or name not in found):
            found[name] = value
    if not found:
        return None
    import urllib.request

    parts = urlsplit(url)
    proxies = {k[: -len("_proxy")]: v for k, v in found.items()}
    bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
    if bypass(parts.netloc, proxies):
        return None
    proxy = proxies.get(parts.scheme.lower()) or proxies.get("all")
    if proxy and "://" not in proxy:
        proxy = f"http://{proxy}"
    return proxy


_CONTEXTS: dict[tuple[str | None, str | None, str | None], ssl.SSLContext] = {}
_CONTEXTS_LOCK = threading.Lock()


def _new_ssl_context(ca_file: str | None) -> ssl.SSLContext:
    if ca_file:
        return ssl.create_default_context(cafile=ca_file)
    context = ssl.create_default_context()
    try:
        import certifi

        context.load_verify_locations(certifi.where())
    except (ImportError, OSError):
        pass
    return context


class Transport:
    """Kept-alive connections per scheme, host and port (and proxy), reused across requests."""

    def __init__(self, ca_file: str | None = None, environ: Mapping[str, str] | None = None):
        self._ca_file = ca_file
        self._environ = environ
        self._context: ssl.SSLContext | None = None
        self._managers: dict[tuple[str | None, bool], urllib3.PoolManager] = {}

    def ssl_context(self) -> ssl.SSLContext:
        """The TLS context: the ``ca_file`` if given, else the system store plus certifi.

        Loading the trust store costs ~0.1 s, so contexts are shared by every Transport of the
        process that trusts the same files (``SSL_CERT_FILE``/``SSL_CERT_DIR`` included).
        """
        if self._context is None:
            key = (self._ca_file, os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
            with _CONTEXTS_LOCK:
                context = _CONTEXTS.get(key)
                if context is None:
                    context = _CONTEXTS[key] = _new_ssl_context(self._ca_file)
            self._context = context
        return self._context

    def _manager(self, url: str) -> urllib3.PoolManager:
        proxy = proxy_for(url, self._environ)
        # Plain HTTP never loads the trust store (~0.1 s, most of a small push's fixed cost).
        tls = url.lower().startswith("https:") or bool(proxy and proxy.startswith("https:"))
        manager = self._managers.get((proxy, tls))
        if manager is None:
            common: dict[str, Any] = {"blocksize": BLOCK, "maxsize": 4}
            if tls:
                common["ssl_context"] = self.ssl_context()
            if proxy is None:
                manager = urllib3.PoolManager(**common)
            else:
                parts = urlsplit(proxy)
                headers = None
                if parts.username is not None:
                    user = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
                    headers = urllib3.make_headers(proxy_basic_auth=user)
                bare = f"{parts.scheme}://{parts.hostname}" + (
                    f":{parts.port}" if parts.port else ""
                )
                if parts.scheme == "https":
                    common["proxy_ssl_context"] = self.ssl_context()
                manager = urllib3.ProxyManager(bare, proxy_headers=headers, **common)
            manager.pool_classes_by_scheme = _POOLS
            self._managers[(proxy, tls)] = manager
        return manager

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes | FileBody | None = None,
        deadline: float,
    ) -> Response:
        """Send one request within ``deadline`` seconds (total) and read its status and
        headers; the body streams from the returned Response."""
        all_headers = {"Accept-Encoding": "identity", **headers}
        if isinstance(body, FileBody):
            all_headers["Content-Length"] = str(body.length)
            body.open()
        elif body is not None or method in ("POST", "PUT", "PATCH"):
            all_headers["Content-Length"] = str(len(body or b""))
        watchdog = Deadline(deadline)
        _current.deadline = watchdog
        try:
            raw = self._manager(url).urlopen(
                method,
                url,
                body=body,
                headers=all_headers,
                redirect=False,
                retries=False,
                preload_content=False,
                decode_content=False,
                assert_same_host=False,
                timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT, read=READ_TIMEOUT),
            )
        except LocalFileError:
            watchdog.cancel()
            raise
        except (Urllib3Error, OSError) as exc:
            watchdog.cancel()
            if watchdog.expired:
                raise TransportError(f"timed out (no answer within {deadline:.0f} s)") from None
            raise describe(exc) from None
        finally:
            _current.deadline = None
            if isinstance(body, FileBody):
                body.close()
        response = Response(raw, watchdog)
        if method == "HEAD" or raw.length_remaining == 0:
            response.close()  # nothing to read: the connection is free again
        return response

    def close(self) -> None:
        """Close every pooled connection."""
        for manager in self._managers.values():
            manager.clear()
        self._managers.clear()
