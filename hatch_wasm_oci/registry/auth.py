"""Answering a registry's 401 challenge: HTTP basic, or a bearer token from its token realm.

Tokens are cached per repository for every repository their scopes name, so one token serves a
push and the cross-repository mounts it asked for. Token replies are capped and parsed with
bounded depth; a token that cannot go in an HTTP header is refused with a message that never
shows it. Credentials go to the token realm over TLS only, unless plain HTTP was asked for.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from hatch_wasm_oci.errors import RegistryError
from hatch_wasm_oci.files.json_input import JsonInputError, parse_json_object
from hatch_wasm_oci.registry.credentials import Credentials
from hatch_wasm_oci.registry.errors import credentials_hint, printable
from hatch_wasm_oci.registry.transport import Response
from hatch_wasm_oci.registry.urls import split_url

TOKEN_REPLY_LIMIT = 1 << 20
CLIENT_ID = "hatch-wasm-oci"
_HEADER_SAFE = re.compile(r"[\x21-\x7e]+")
_CHALLENGE_PARAM = re.compile(r'([A-Za-z][\w-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')


def basic_auth(username: str, password: str) -> str:
    """The ``Authorization`` value for HTTP basic auth."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def bearer(token: str, source: str) -> str:
    """``Bearer TOKEN``, or RegistryError (not showing the token) if it holds anything but
    visible ASCII: a trailing carriage return from a CRLF file, a newline, a space, non-ASCII."""
    if not _HEADER_SAFE.fullmatch(token):
        raise RegistryError(
            f"the token from {source} cannot be sent in an HTTP header: it holds a carriage "
            "return, newline, space or non-ASCII character (check how it was saved)"
        )
    return f"Bearer {token}"


def parse_challenge(header: str) -> dict[str, str]:
    """The parameters of a ``WWW-Authenticate`` challenge (``realm``, ``service``, ``scope``)."""
    _, _, rest = header.strip().partition(" ")
    return {
        m.group(1).lower(): (
            re.sub(r"\\(.)", r"\1", m.group(2)) if m.group(2) is not None else m.group(3)
        )
        for m in _CHALLENGE_PARAM.finditer(rest)
    }


Send = Callable[..., Response]
"""``send(method, url, *, action, headers, auth, body, params)``: the client's sender, which
attaches ``auth`` only to ``url``'s own origin and refuses redirects to plain HTTP."""


@dataclass
class Authenticator:
    """What to send as ``Authorization`` for a repository, and how to answer a challenge."""

    credentials: Credentials
    plain_http: bool
    tokens: dict[str, str] = field(default_factory=dict)
    basic: bool = False
    wanted: dict[str, set[str]] = field(default_factory=dict)

    def want(self, repository: str, *actions: str) -> None:
        """Ask for ``actions`` (pull, push) on ``repository`` whenever a token is requested."""
        self.wanted.setdefault(repository, set()).update(actions)

    def header(self, repository: str) -> str | None:
        """The ``Authorization`` value for a request about ``repository`` (None: anonymous)."""
        creds = self.credentials
        if creds.registry_token:
            return bearer(creds.registry_token, creds.source)
        token = self.tokens.get(repository)
        if token:
            return bearer(token, "the registry's token service")
        if self.basic and creds.password:
            return basic_auth(creds.username or "", creds.password)
        return None

    def forget(self, repository: str) -> None:
        """Drop the token for ``repository`` (it was refused)."""
        self.tokens.pop(repository, None)

    def answer(self, challenge: str, repository: str, send: Send) -> bool:
        """Answer a 401 challenge; False if there is nothing (more) to try."""
        scheme = challenge.split(" ", 1)[0].lower()
        creds = self.credentials
        if creds.registry_token:
            return False
        if scheme == "basic":
            if not creds.password or self.basic:
                return False
            self.basic = True
            return True
        if scheme != "bearer":
            return False
        parsed = parse_challenge(challenge)
        realm = parsed.get("realm")
        if not realm:
            return False
        scopes = set(parsed.get("scope", "").split())
        actions = self.wanted.get(repository)
        if actions:
            scopes.add(f"repository:{repository}:{','.join(sorted(actions))}")
        token = self.fetch_token(send, realm, parsed.get("service"), sorted(scopes))
        for repo in {repository, *_repositories(scopes)}:
            self.tokens[repo] = token
        return True

    def fetch_token(self, send: Send, realm: str, service: str | None, scopes: list[str]) -> str:
        """A bearer token from ``realm`` for ``scopes`` (RegistryError says why not)."""
        creds = self.credentials
        if "://" not in realm:
            realm = f"{'http' if self.plain_http else 'https'}://{realm}"
        parts = split_url(realm, "a token realm")
        realm_host = printable(parts.netloc or realm)
        action = f"getting a token from {realm_host}"
        if parts.scheme.lower() not in ("http", "https"):
            raise RegistryError(f"{action}: the token realm is not an http(s) URL")
        secret = creds.password or creds.identity_token
        if secret and not self.plain_http and parts.scheme.lower() != "https":
            raise RegistryError(
                f"{action}: refused to send credentials from {creds.source} over plain HTTP "
                f"to {printable(realm)} (the registry itself uses HTTPS) — hint: the registry's "
                "token realm must be https://, or name the registry with --plain-http "
                "(-o plain-http=true) if it really is plain HTTP"
            )
        if creds.identity_token:
            # OAuth2 refresh-token grant (distribution's docs/spec/auth/oauth.md), as docker does.
            form = {
                "grant_type": "refresh_token",
                "refresh_token": creds.identity_token,
                "client_id": CLIENT_ID,
                **({"service": service} if service else {}),
                **({"scope": " ".join(scopes)} if scopes else {}),
            }
            data = urlencode(form).encode()
            response = send(
                "POST",
                realm,
                action=action,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                auth=None,
                body=lambda: data,
                params=None,
            )
        else:
            params = ([("service", service)] if service else []) + [("scope", s) for s in scopes]
            auth = basic_auth(creds.username or "", creds.password) if creds.password else None
            response = send(
                "GET", realm, action=action, headers={}, auth=auth, body=None, params=params
            )
        try:
            body = response.read(TOKEN_REPLY_LIMIT)
        except Exception as exc:
            raise RegistryError(f"{action} failed: {exc}") from None
        status = response.status_code
        if status in (401, 403) or _grant_refused(status, body):
            hint = credentials_hint(creds.source, creds.anonymous)
            raise RegistryError(f"{action} failed: HTTP {status} — hint: {hint}")
        if status != 200:
            raise RegistryError(f"{action} failed: HTTP {status}")
        try:
            payload = parse_json_object(body, "the token answer", TOKEN_REPLY_LIMIT)
        except JsonInputError as exc:
            raise RegistryError(f"{action} failed: {exc}") from None
        token = payload.get("token") or payload.get("access_token")
        if not isinstance(token, str) or not token:
            raise RegistryError(f"{action} failed: the answer holds no token")
        bearer(token, f"{realm_host}")  # refuse now, not in the middle of a request
        return token


def _repositories(scopes: Iterable[str]) -> set[str]:
    repos = set()
    for scope in scopes:
        parts = scope.split(":")
        if len(parts) >= 3 and parts[0] == "repository":
            repos.add(":".join(parts[1:-1]))
    return repos


def _grant_refused(status: int, body: bytes) -> bool:
    """An OAuth2 token endpoint's refusal (RFC 6749 5.2: HTTP 400 ``invalid_grant``)."""
    if status != 400:
        return False
    try:
        error: Any = parse_json_object(body, "the token answer", TOKEN_REPLY_LIMIT).get("error")
    except JsonInputError:
        return False
    return error in ("invalid_grant", "invalid_client", "unauthorized_client")
