"""A small OCI registry on 127.0.0.1 that misbehaves on demand and logs every request (tests only).

It stores what is pushed (blobs, manifests by tag and digest) and serves it back, with optional
basic or bearer auth (``/token`` on itself). A ``misbehave`` hook sees each request first and may
answer it its own way: redirects, foreign ``Location``s, endless or slow bodies, lying
``Content-Length``, huge or deeply nested JSON. With ``tls`` it speaks TLS and, with
``plain_too``, plain HTTP on the same port (the first byte of a connection decides), so an
``https→http`` redirect to the same host and port can be observed. ``log`` holds every request's
scheme, method, path and headers, for asserting that no secret went where it must not.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

_PATH = re.compile(r"/v2/(?P<name>.+?)/(?P<kind>manifests|blobs)/(?P<ref>[^/?]+)")
_UPLOAD = re.compile(r"/v2/(?P<name>.+?)/blobs/uploads/(?P<id>[^/?]*)")
_REFERRERS = re.compile(r"/v2/(?P<name>.+?)/referrers/(?P<digest>sha256:[0-9a-f]{64})")


@dataclass
class Logged:
    """One request the fake registry received."""

    scheme: str
    method: str
    path: str
    headers: dict[str, str]
    body_bytes: int = 0


@dataclass
class Reply:
    """A hook's answer: status, headers, and a body given as bytes or as an iterable of chunks
    (sent with ``delay`` seconds between them; ``length`` overrides ``Content-Length``, and
    None with an iterable sends no length at all, closing the connection at the end).
    ``drain=False`` answers without reading the request body (an early reply); status 0
    means the hook wrote its answer itself."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | Iterable[bytes] = b""
    delay: float = 0.0
    length: int | None = -1
    drain: bool = True


Hook = Callable[["Request"], "Reply | None"]


@dataclass
class Request:
    """What a hook sees: the scheme, method, path (with query), headers, and the handler."""

    scheme: str
    method: str
    path: str
    headers: dict[str, str]
    handler: BaseHTTPRequestHandler


class FakeRegistry:
    """Serve until ``stop()``; ``address`` is ``127.0.0.1:PORT``."""

    def __init__(
        self,
        *,
        tls: tuple[Path, Path] | None = None,
        plain_too: bool = False,
        auth: str | None = None,
        user: tuple[str, str] = ("ada", "s3cret-fake-Pa55"),
        token: str = "tok-FAKE-bearer-0123456789",
        misbehave: Hook | None = None,
        referrers_api: bool = False,
    ) -> None:
        self.auth = auth  # None, "basic" or "bearer"
        #: Serve ``GET /v2/<name>/referrers/<digest>`` (distribution-spec 1.1) and answer a
        #: manifest PUT with ``subject`` with ``OCI-Subject``; else 404 there, as 2.8 does.
        self.referrers_api = referrers_api
        self.user = user
        self.token = token
        self.misbehave = misbehave
        self.log: list[Logged] = []
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[tuple[str, str], tuple[bytes, str]] = {}
        self.uploads: dict[str, bytearray] = {}
        self._lock = threading.Lock()
        context = None
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
        self._server = _Server(("127.0.0.1", 0), self._handler(), context, plain_too)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.address = f"127.0.0.1:{self.port}"
        self.scheme = "https" if tls else "http"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeRegistry:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        """``SCHEME://127.0.0.1:PORT``."""
        return f"{self.scheme}://{self.address}"

    def seen(self, text: str) -> list[Logged]:
        """Requests whose headers or path contain ``text`` (e.g. a password or its base64)."""
        return [r for r in self.log if text in r.path or any(text in v for v in r.headers.values())]

    @staticmethod
    def subject_of(manifest: bytes) -> str | None:
        """The ``subject`` digest a manifest names, if any."""
        try:
            doc = json.loads(manifest)
            return str(doc["subject"]["digest"])
        except (ValueError, KeyError, TypeError):
            return None

    def referrers_answer(self, name: str, digest: str) -> Reply:
        """The referrers API's image index of the manifests in ``name`` whose subject is
        ``digest``."""
        entries = []
        seen = set()
        for (repo, _ref), (body, media) in list(self.manifests.items()):
            found = hashlib.sha256(body).hexdigest()
            if repo != name or found in seen or self.subject_of(body) != digest:
                continue
            seen.add(found)
            doc = json.loads(body)
            entry = {"mediaType": media, "digest": f"sha256:{found}", "size": len(body)}
            if "artifactType" in doc:
                entry["artifactType"] = doc["artifactType"]
            entries.append(entry)
        index = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": entries,
        }
        return Reply(
            200,
            {"Content-Type": "application/vnd.oci.image.index.v1+json"},
            json.dumps(index).encode(),
        )

    def basic_value(self) -> str:
        """The base64 of ``user:password`` (what a leaked basic header carries)."""
        return base64.b64encode(f"{self.user[0]}:{self.user[1]}".encode()).decode()

    def _authorized(self, header: str | None) -> bool:
        if self.auth is None:
            return True
        if self.auth == "basic":
            return header == f"Basic {self.basic_value()}"
        return header == f"Bearer {self.token}"

    def _challenge(self, scheme: str) -> str:
        if self.auth == "basic":
            return 'Basic realm="fake"'
        return f'Bearer realm="{scheme}://{self.address}/token",service="fake"'

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _scheme(self) -> str:
                return "https" if isinstance(self.connection, ssl.SSLSocket) else "http"

            def _body(self) -> bytes:
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def reply(self, answer: Reply) -> None:
                """Send ``answer`` (also used by hooks)."""
                self.send_response(answer.status)
                for key, value in answer.headers.items():
                    self.send_header(key, value)
                chunks = [answer.body] if isinstance(answer.body, bytes) else answer.body
                if answer.length == -1 and isinstance(answer.body, bytes):
                    self.send_header("Content-Length", str(len(answer.body)))
                elif answer.length is not None and answer.length >= 0:
                    self.send_header("Content-Length", str(answer.length))
                else:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                if self.command == "HEAD":
                    return
                try:
                    for chunk in chunks:
                        self.wfile.write(chunk)
                        self.wfile.flush()
                        if answer.delay:
                            time.sleep(answer.delay)
                except OSError:
                    self.close_connection = True

            def _json(self, status: int, text: str, **headers: str) -> None:
                self.reply(
                    Reply(status, {"Content-Type": "application/json", **headers}, text.encode())
                )

            def _handle(self) -> None:
                scheme = self._scheme()
                headers = {k: v for k, v in self.headers.items()}
                body = b""
                hook = (
                    fake.misbehave(Request(scheme, self.command, self.path, headers, self))
                    if fake.misbehave
                    else None
                )
                if hook is not None:
                    with fake._lock:
                        fake.log.append(Logged(scheme, self.command, self.path, headers))
                    if self.command in ("PUT", "POST", "PATCH") and hook.status and hook.drain:
                        self._body()
                    elif not hook.drain:
                        self.close_connection = True
                    if hook.status:
                        self.reply(hook)
                    return
                body = self._body()
                with fake._lock:
                    fake.log.append(Logged(scheme, self.command, self.path, headers, len(body)))
                if self.path.startswith("/token"):
                    if fake.auth == "bearer" and headers.get("Authorization") == (
                        f"Basic {fake.basic_value()}"
                    ):
                        self._json(200, f'{{"token":"{fake.token}"}}')
                    else:
                        self._json(401, '{"errors":[{"code":"UNAUTHORIZED"}]}')
                    return
                if self.path == "/v2/" or not fake._authorized(headers.get("Authorization")):
                    status = 200 if fake._authorized(headers.get("Authorization")) else 401
                    self._json(
                        status,
                        '{"errors":[{"code":"UNAUTHORIZED","message":"log in"}]}',
                        **{"WWW-Authenticate": fake._challenge(scheme)},
                    )
                    return
                self._registry(body)

            def _registry(self, body: bytes) -> None:
                path = self.path.partition("?")[0]
                upload = _UPLOAD.fullmatch(path)
                if upload and self.command == "POST":
                    uid = uuid.uuid4().hex
                    fake.uploads[uid] = bytearray()
                    location = f"/v2/{upload['name']}/blobs/uploads/{uid}"
                    self.reply(Reply(202, {"Location": location}))
                    return
                if upload and self.command in ("PATCH", "PUT"):
                    data = fake.uploads.setdefault(upload["id"], bytearray())
                    data += body
                    if self.command == "PATCH":
                        self.reply(Reply(202, {"Location": path}))
                        return
                    digest = "sha256:" + hashlib.sha256(data).hexdigest()
                    fake.blobs[digest] = bytes(data)
                    self.reply(Reply(201, {"Docker-Content-Digest": digest}))
                    return
                referrers = _REFERRERS.fullmatch(path)
                if referrers and fake.referrers_api and self.command == "GET":
                    self.reply(fake.referrers_answer(referrers["name"], referrers["digest"]))
                    return
                match = _PATH.fullmatch(path)
                if not match:
                    self._json(404, '{"errors":[{"code":"NOT_FOUND"}]}')
                    return
                name, kind, ref = match["name"], match["kind"], match["ref"]
                if kind == "blobs":
                    stored = fake.blobs.get(ref)
                    if stored is None:
                        self._json(404, '{"errors":[{"code":"BLOB_UNKNOWN"}]}')
                    else:
                        self.reply(Reply(200, {"Docker-Content-Digest": ref}, stored))
                    return
                if self.command == "PUT":
                    digest = "sha256:" + hashlib.sha256(body).hexdigest()
                    media = self.headers.get("Content-Type", "")
                    fake.manifests[(name, ref)] = (body, media)
                    fake.manifests[(name, digest)] = (body, media)
                    answer = {"Docker-Content-Digest": digest}
                    subject = fake.subject_of(body)
                    if fake.referrers_api and subject:
                        answer["OCI-Subject"] = subject
                    self.reply(Reply(201, answer))
                    return
                found = fake.manifests.get((name, ref))
                if found is None:
                    self._json(404, '{"errors":[{"code":"MANIFEST_UNKNOWN"}]}')
                    return
                manifest, media = found
                digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
                self.reply(
                    Reply(200, {"Content-Type": media, "Docker-Content-Digest": digest}, manifest)
                )

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _handle

        return Handler


class _Server(ThreadingHTTPServer):
    """Wraps a connection in TLS when its first byte is a TLS handshake (0x16)."""

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        context: ssl.SSLContext | None,
        plain_too: bool,
    ) -> None:
        super().__init__(address, handler)
        self.context = context
        self.plain_too = plain_too

    def finish_request(self, request: Any, client_address: Any) -> None:
        # Runs in the request's own thread: a slow client never blocks accept().
        if self.context is not None:
            request.settimeout(10)
            try:
                first = request.recv(1, socket.MSG_PEEK)
                if first == b"\x16" or not self.plain_too:
                    request = self.context.wrap_socket(request, server_side=True)
            except (OSError, ssl.SSLError):
                return
            request.settimeout(None)
        super().finish_request(request, client_address)


def endless(chunk: bytes = b"x" * 65536) -> Iterable[bytes]:
    """An endless body."""
    while True:
        yield chunk
