"""HTTP transport to one OCI registry: TLS, auth challenges (basic and bearer), retries.

Requests go through ``registry_http`` (http.client) rather than ``oras.provider.Registry``:
uploads stream from files that must be reopened on a retry, bearer scopes differ per repository
(cross-repository mounts need two), and a 401 in the middle of a push must trigger exactly one
re-authentication.
"""

from __future__ import annotations

import os
import random
import re
import socket
import ssl
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.client import RemoteDisconnected
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from hatch_wasm_oci.errors import RegistryError
from hatch_wasm_oci.registry.credentials import Credentials
from hatch_wasm_oci.registry.errors import credentials_hint, http_error
from hatch_wasm_oci.registry.transport import TRANSPORT_ERRORS, Response, Transport, basic_auth

RETRY_SECONDS_ENV = "HATCH_WASM_OCI_MAX_RETRY_SECONDS"
RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
REDIRECT_STATUS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 10
USER_AGENT = "hatch-wasm-oci"


class TransientError(Exception):
    """A failure worth retrying from the start of a non-idempotent step (e.g. a blob upload)."""

    def __init__(self, description: str, retry_after: float | None = None) -> None:
        super().__init__(description)
        self.description = description
        self.retry_after = retry_after


@dataclass
class RetryPolicy:
    """Exponential backoff with full jitter, bounded by attempts and by seconds per operation."""

    attempts: int = 6
    base: float = 0.5
    cap: float = 20.0
    deadline: float = 120.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RetryPolicy:
        """Defaults, with the time bound taken from HATCH_WASM_OCI_MAX_RETRY_SECONDS if set."""
        env = os.environ if environ is None else environ
        policy = cls()
        raw = env.get(RETRY_SECONDS_ENV)
        if raw:
            try:
                policy.deadline = max(0.0, float(raw))
            except ValueError:
                raise RegistryError(f"{RETRY_SECONDS_ENV} must be a number of seconds") from None
        return policy

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        if retry_after is not None:
            return retry_after
        return random.uniform(self.base / 2, min(self.cap, self.base * 2 ** (attempt - 1)))


@dataclass
class Backoff:
    """The retry state of one operation."""

    policy: RetryPolicy
    started: float = field(default_factory=time.monotonic)
    attempt: int = 0

    def wait_or_raise(self, description: str, retry_after: float | None, action: str) -> None:
        """Sleep before the next attempt, or raise RegistryError when the bound is reached.

        A refused connection is retried twice only: it rarely heals within seconds.
        """
        self.attempt += 1
        limit = 3 if description == "connection refused" else self.policy.attempts
        if self.attempt >= limit:
            raise RegistryError(f"{action} failed after {self.attempt} attempts: {description}")
        delay = self.policy.delay(self.attempt, retry_after)
        elapsed = time.monotonic() - self.started
        if elapsed + delay > self.policy.deadline:
            raise RegistryError(
                f"{action} failed: {description} (gave up after {elapsed:.0f} s and "
                f"{self.attempt} attempts; {RETRY_SECONDS_ENV} sets the limit)"
            )
        time.sleep(delay)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    import email.utils

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class Progress:
    """Bytes and rate of one upload on stderr, only when stderr is a terminal."""

    def __init__(self, label: str, total: int, enabled: bool | None = None) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._start = time.monotonic()
        self._last = 0.0

    def advance(self, count: int) -> None:
        """Record ``count`` more bytes sent."""
        self.done += count
        now = time.monotonic()
        if self.enabled and (now - self._last >= 0.25 or self.done >= self.total):
            self._last = now
            rate = self.done / max(now - self._start, 1e-6) / 2**20
            sys.stderr.write(
                f"\r{self.label} {self.done / 2**20:.1f}/{self.total / 2**20:.1f} MiB "
                f"{rate:.1f} MiB/s"
            )
            sys.stderr.flush()

    def finish(self) -> None:
        """End the progress line."""
        if self.enabled and self._last:
            sys.stderr.write("\n")
            sys.stderr.flush()


BodyFactory = Callable[[], Any]


X509_V_ERR_HOSTNAME_MISMATCH = 62
"""OpenSSL's verify code for a certificate that does not name the host (1.1 and 3.x)."""

_TLS_DROPPED = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError)
"""TLS errors that mean the connection went away (retried like a reset), not a trust problem."""


def _describe_connection_error(exc: BaseException) -> str:
    """A short description of what http.client or the socket raised (no host or secret in it)."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return "host name not found"
    if isinstance(exc, TimeoutError):
        return "timed out"
    # RemoteDisconnected is a ConnectionResetError: the server closed without answering.
    if isinstance(exc, (RemoteDisconnected, BrokenPipeError, ConnectionAbortedError)):
        return "connection closed by the server"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    return f"connection error ({type(exc).__name__})"


class RegistryClient:
    """Requests to one registry host, authenticated per repository, with retries."""

    def __init__(
        self,
        host: str,
        credentials: Credentials,
        *,
        plain_http: bool = False,
        ca_file: Path | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.host = host
        self.credentials = credentials
        self.plain_http = plain_http
        self.base = f"{'http' if plain_http else 'https'}://{host}"
        self.retry = retry or RetryPolicy.from_env()
        if ca_file is not None and not Path(ca_file).is_file():
            raise RegistryError(f"CA file {ca_file} does not exist")
        self.transport = Transport(str(ca_file) if ca_file is not None else None)
        self._tokens: dict[str, str] = {}
        self._basic = False
        self._wanted: dict[str, set[str]] = {}

    # -- auth -----------------------------------------------------------------------------------

    def want(self, repository: str, *actions: str) -> None:
        """Ask for ``actions`` (pull, push) on ``repository`` whenever a token is requested."""
        self._wanted.setdefault(repository, set()).update(actions)

    def _auth_header(self, repository: str) -> dict[str, str]:
        creds = self.credentials
        if creds.registry_token:
            return {"Authorization": f"Bearer {creds.registry_token}"}
        token = self._tokens.get(repository)
        if token:
            return {"Authorization": f"Bearer {token}"}
        if self._basic and creds.password:
            return {"Authorization": basic_auth(creds.username or "", creds.password)}
        return {}

    def _authenticate(self, response: Response, repository: str) -> bool:
        """Answer a 401 challenge; False if there is nothing (more) to try."""
        challenge = response.headers.get("WWW-Authenticate", "")
        scheme = challenge.split(" ", 1)[0].lower()
        creds = self.credentials
        if creds.registry_token:
            return False
        if scheme == "basic":
            if not creds.password or self._basic:
                return False
            self._basic = True
            return True
        if scheme != "bearer":
            return False
        parsed = parse_challenge(challenge)
        realm = parsed.get("realm")
        if not realm:
            return False
        scopes = set(parsed.get("scope", "").split())
        actions = self._wanted.get(repository)
        if actions:
            scopes.add(f"repository:{repository}:{','.join(sorted(actions))}")
        token = self._fetch_token(realm, parsed.get("service"), sorted(scopes))
        repos = {repository}
        for scope in scopes:
            parts = scope.split(":")
            if len(parts) >= 3 and parts[0] == "repository":
                repos.add(":".join(parts[1:-1]))
        for repo in repos:
            self._tokens[repo] = token
        return True

    def _fetch_token(self, realm: str, service: str | None, scopes: list[str]) -> str:
        creds = self.credentials
        params: list[tuple[str, str]] = []
        if service:
            params.append(("service", service))
        params.extend(("scope", s) for s in scopes)
        if "://" not in realm:
            realm = f"{'http' if self.plain_http else 'https'}://{realm}"
        realm_host = urlsplit(realm).netloc or realm
        action = f"getting a token from {realm_host}"
        secret = creds.password or creds.identity_token
        if secret and not self.plain_http and urlsplit(realm).scheme.lower() != "https":
            raise RegistryError(
                f"{action}: refused to send credentials from {creds.source} over plain HTTP "
                f"to {realm} (the registry itself uses HTTPS) — hint: the registry's token "
                "realm must be https://, or name the registry with --plain-http "
                "(-o plain-http=true) if it really is plain HTTP"
            )
        if creds.identity_token:
            # OAuth2 refresh-token grant (distribution's docs/spec/auth/oauth.md), as docker does.
            from urllib.parse import urlencode

            form = {
                "grant_type": "refresh_token",
                "refresh_token": creds.identity_token,
                "client_id": USER_AGENT,
                **({"service": service} if service else {}),
                **({"scope": " ".join(scopes)} if scopes else {}),
            }
            data = urlencode(form)
            response = self._send(
                "POST",
                realm,
                action=action,
                body=lambda: data,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
        else:
            headers: dict[str, str] = {}
            if creds.password:
                headers["Authorization"] = basic_auth(creds.username or "", creds.password)
            response = self._send("GET", realm, action=action, headers=headers, params=params)
        if response.status_code in (401, 403) or _grant_refused(response):
            hint = credentials_hint(creds.source, creds.anonymous)
            raise RegistryError(f"{action} failed: HTTP {response.status_code} — hint: {hint}")
        if response.status_code != 200:
            raise RegistryError(f"{action} failed: HTTP {response.status_code}")
        try:
            payload = response.json()
            token = payload.get("token") or payload.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"{action} failed: the answer holds no token")
        return token

    # -- sending --------------------------------------------------------------------------------

    def url(self, path_or_url: str) -> str:
        """An absolute URL for a ``/v2/...`` path or a (possibly relative) Location header."""
        return urljoin(self.base + "/", path_or_url)

    def _send(
        self,
        method: str,
        url: str,
        *,
        action: str,
        headers: dict[str, str] | None = None,
        body: BodyFactory | None = None,
        params: Iterable[tuple[str, str]] | None = None,
        retry: bool = True,
    ) -> Response:
        """Send with retries on connection errors and 429/502/503/504 (if ``retry``).

        GET and HEAD follow redirects (dropping Authorization when the host changes).
        """
        backoff = Backoff(self.retry)
        param_list = list(params) if params else None
        all_headers = {"User-Agent": USER_AGENT, **(headers or {})}
        redirects = 0
        while True:
            data = body() if body is not None else None
            try:
                response = self.transport.request(
                    method, url, headers=all_headers, body=data, params=param_list
                )
            except ssl.SSLError as exc:
                if not isinstance(exc, _TLS_DROPPED):  # a handshake or certificate failure
                    raise self._tls_error(exc, action) from None
                if not retry:
                    raise TransientError("connection reset") from None
                backoff.wait_or_raise("connection reset", None, action)
                continue
            except TRANSPORT_ERRORS as exc:
                description = _describe_connection_error(exc)
                if not retry:
                    raise TransientError(description) from None
                try:
                    backoff.wait_or_raise(description, None, action)
                except RegistryError as err:
                    raise RegistryError(f"{err}{self._connection_hint(description)}") from None
                continue
            location = response.headers.get("Location")
            if (
                response.status_code in REDIRECT_STATUS
                and method in ("GET", "HEAD")
                and location
                and redirects < MAX_REDIRECTS
            ):
                response.close()
                redirects += 1
                target = urljoin(url, location)
                if urlsplit(target).netloc != urlsplit(url).netloc:
                    all_headers.pop("Authorization", None)
                url, param_list = target, None
                continue
            if response.status_code in RETRYABLE_STATUS:
                description = f"HTTP {response.status_code}"
                after = _retry_after(response.headers.get("Retry-After"))
                response.close()
                if not retry:
                    raise TransientError(description, after)
                backoff.wait_or_raise(description, after, action)
                continue
            return response

    def _connection_hint(self, description: str) -> str:
        if description == "connection refused":
            extra = "" if self.plain_http else "; for a plain-HTTP registry pass --plain-http"
            return f" — hint: is a registry listening at {self.base}?{extra}"
        return ""

    def _tls_error(self, exc: ssl.SSLError, action: str) -> RegistryError:
        if getattr(exc, "reason", None) == "WRONG_VERSION_NUMBER":
            return RegistryError(
                f"{action} failed: TLS handshake with {self.host} failed (it does not speak TLS) "
                "— hint: pass --plain-http (-o plain-http=true) for a registry without TLS"
            )
        reason = "TLS error"
        if isinstance(exc, ssl.SSLCertVerificationError):
            reason = "certificate not trusted"
            if exc.verify_code == X509_V_ERR_HOSTNAME_MISMATCH:
                reason = "certificate does not match the host name"
        return RegistryError(
            f"{action} failed: TLS verification of {self.host} failed ({reason}) — hint: pass "
            "--ca-file PATH (-o ca-file=PATH) for a private CA"
        )

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        repository: str,
        action: str,
        what: str = "blob",
        headers: dict[str, str] | None = None,
        body: BodyFactory | None = None,
        params: Iterable[tuple[str, str]] | None = None,
        retry: bool = True,
    ) -> Response:
        """An authenticated request; answers 401 challenges (and re-authenticates once)."""
        url = self.url(path_or_url)
        param_list = list(params) if params else None
        rounds = 0
        while True:
            merged = dict(headers or {})
            merged.update(self._auth_header(repository))
            response = self._send(
                method,
                url,
                action=action,
                headers=merged,
                body=body,
                params=param_list,
                retry=retry,
            )
            if response.status_code != 401 or rounds >= 2:
                break
            rounds += 1
            self._tokens.pop(repository, None)
            if not self._authenticate(response, repository):
                break
            response.close()
        if response.status_code == 401:
            raise self.error(response, action=action, repository=repository, what=what)
        return response

    def _speaks_tls(self) -> bool:
        """Whether a plain-HTTP 400 came from a TLS server (Go's answer to plain HTTP)."""
        try:
            probe = self.transport.request("GET", f"{self.base}/v2/")
        except Exception:
            return False
        return _plain_http_rejected(probe.text)

    def error(
        self, response: Response, *, action: str, repository: str, what: str
    ) -> RegistryError:
        """The RegistryError for an unexpected answer."""
        try:
            body = response.content[:65536]
        except Exception:  # a broken body must not hide the status
            body = b""
        if self.plain_http and response.status_code == 400 and self._speaks_tls():
            return RegistryError(
                f"{action} failed: {self.host} speaks HTTPS, not plain HTTP — hint: drop "
                "--plain-http (-o plain-http=false); pass --ca-file PATH for a private CA"
            )
        return http_error(
            response.status_code,
            body,
            action=action,
            host=self.host,
            repository=repository,
            what=what,
            credential_source=self.credentials.source,
            anonymous=self.credentials.anonymous,
        )


def _grant_refused(response: Response) -> bool:
    """An OAuth2 token endpoint's refusal (RFC 6749 5.2: HTTP 400 ``invalid_grant``)."""
    if response.status_code != 400:
        return False
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return False
    return error in ("invalid_grant", "invalid_client", "unauthorized_client")


_CHALLENGE_PARAM = re.compile(r'([A-Za-z][\w-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')


def parse_challenge(header: str) -> dict[str, str]:
    """The parameters of a ``WWW-Authenticate`` challenge (``realm``, ``service``, ``scope``)."""
    _, _, rest = header.strip().partition(" ")
    return {
        m.group(1).lower(): (
            re.sub(r"\\(.)", r"\1", m.group(2)) if m.group(2) is not None else m.group(3)
        )
        for m in _CHALLENGE_PARAM.finditer(rest)
    }


def _plain_http_rejected(text: str) -> bool:
    return "HTTP request to an HTTPS server" in text
