"""A small bearer-token server for distribution's ``auth: token`` (tests only).

It checks HTTP basic credentials, grants every scope asked for (pull and push) to a known user
and nothing to anonymous callers, and signs RS256 JWTs whose ``x5c`` header carries the signing
certificate; the registry trusts that certificate through ``rootcertbundle``.

``POST /token`` is distribution's OAuth2 flow (docs/spec/auth/oauth.md): a form with
``grant_type=password`` (``username``, ``password``; ``access_type=offline`` also returns a
``refresh_token``) or ``grant_type=refresh_token`` (``refresh_token``), plus ``service``,
``client_id`` and ``scope`` (space-separated); the answer holds ``access_token``. A wrong
password or unknown refresh token gets HTTP 400 ``invalid_grant`` (RFC 6749 section 5.2).
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

FORM = "application/x-www-form-urlencoded"
GRANT_ERROR = {"error": "invalid_grant"}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """Serve ``GET``/``POST /token`` on 127.0.0.1; ``issued`` counts tokens handed out,
    ``refreshed`` those issued for a refresh token, ``forms`` the POST forms (secrets removed)."""

    def __init__(
        self,
        key_pem: Path,
        cert_pem: Path,
        *,
        service: str,
        issuer: str,
        users: dict[str, str],
        lifetime: int = 300,
    ) -> None:
        key = serialization.load_pem_private_key(key_pem.read_bytes(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        self._key = key
        cert = x509.load_pem_x509_certificate(cert_pem.read_bytes())
        self._x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
        self.service = service
        self.issuer = issuer
        self.users = users
        self.lifetime = lifetime
        #: Users granted ``pull`` only, whatever they ask for.
        self.read_only: set[str] = set()
        self.issued = 0
        self.refreshed = 0
        self.rejected = 0
        self.refresh_tokens: dict[str, str] = {}
        self.forms: list[dict[str, list[str]]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.realm = f"http://127.0.0.1:{self.port}/token"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> TokenServer:
        """Start serving in a daemon thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()

    def sign(self, subject: str, access: list[dict[str, Any]]) -> str:
        """An RS256 JWT for ``access`` that distribution 2.8 accepts."""
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self._x5c]}
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service,
            "exp": now + self.lifetime,
            "nbf": now - 10,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        signing_input = (
            _b64url(json.dumps(header).encode()) + "." + _b64url(json.dumps(claims).encode())
        )
        signature = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + _b64url(signature)

    def issue_refresh_token(self, user: str) -> str:
        """A new refresh token for ``user`` (what ``docker login`` stores as identitytoken)."""
        token = f"refresh-{uuid.uuid4().hex}"
        with self._lock:
            self.refresh_tokens[token] = user
        return token

    def _access(self, user: str | None, scopes: list[str]) -> list[dict[str, Any]]:
        access = []
        if user:
            for scope in scopes:
                for item in scope.split():
                    kind, _, rest = item.partition(":")
                    name, _, actions = rest.rpartition(":")
                    granted = actions.split(",")
                    if user in self.read_only:
                        granted = [action for action in granted if action == "pull"]
                    if kind == "repository" and name:
                        access.append({"type": kind, "name": name, "actions": granted})
        return access

    def _grant(self, form: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        """Answer an OAuth2 token form: (status, JSON payload)."""
        field = {k: v[0] for k, v in form.items() if v}
        grant = field.get("grant_type")
        if field.get("service") != self.service or not field.get("client_id"):
            return 400, {"error": "invalid_request"}
        user: str | None = None
        refresh: str | None = None
        if grant == "password":
            name = field.get("username", "")
            if self.users.get(name) != field.get("password"):
                return 400, GRANT_ERROR
            user = name
            if field.get("access_type") == "offline":
                refresh = self.issue_refresh_token(name)
        elif grant == "refresh_token":
            with self._lock:
                user = self.refresh_tokens.get(field.get("refresh_token", ""))
            if user is None:
                return 400, GRANT_ERROR
        else:
            return 400, {"error": "unsupported_grant_type"}
        scopes = form.get("scope", [])
        token = self.sign(user, self._access(user, scopes))
        with self._lock:
            self.issued += 1
            self.refreshed += grant == "refresh_token"
        payload: dict[str, Any] = {
            "access_token": token,
            "scope": " ".join(scopes),
            "expires_in": self.lifetime,
        }
        if refresh:
            payload["refresh_token"] = refresh
        return 200, payload

    def _authorized_user(self, header: str | None) -> str | Literal[False] | None:
        """The user name, None for anonymous, False for wrong credentials."""
        if not header:
            return None
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except ValueError:
            return False
        return user if self.users.get(user) == password else False

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _reply(self, status: int, payload: dict[str, Any]) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                if parts.path != "/token":
                    self._reply(404, {"error": "not found"})
                    return
                query = parse_qs(parts.query)
                user = server._authorized_user(self.headers.get("Authorization"))
                if user is False:
                    with server._lock:
                        server.rejected += 1
                    self._reply(401, {"errors": [{"code": "UNAUTHORIZED"}]})
                    return
                token = server.sign(
                    str(user or ""), server._access(user or None, query.get("scope", []))
                )
                with server._lock:
                    server.issued += 1
                self._reply(200, {"token": token, "expires_in": server.lifetime})

            def do_POST(self) -> None:
                if urlsplit(self.path).path != "/token":
                    self._reply(404, {"error": "not found"})
                    return
                if self.headers.get("Content-Type", "").split(";")[0] != FORM:
                    self._reply(400, {"error": "invalid_request"})
                    return
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode(), keep_blank_values=True)
                with server._lock:
                    server.forms.append(
                        {k: v for k, v in form.items() if k not in ("password", "refresh_token")}
                    )
                status, payload = server._grant(form)
                if payload is GRANT_ERROR:
                    with server._lock:
                        server.rejected += 1
                self._reply(status, payload)

        return Handler
