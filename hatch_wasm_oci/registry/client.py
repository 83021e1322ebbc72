"""Requests to one OCI registry: URLs from validated parts, credentials bound to their origin,
redirects, 401 challenges (one re-authentication) and retries.

The security rules of the registry layer are enforced here, once, for every request:

- a URL is either ``/v2/<name>/<kind>/<reference>`` with the name and reference checked
  against the OCI grammar, or a ``Location``/redirect target resolved without collapsing dot
  segments (one with ``.``/``..`` segments, userinfo or a non-http(s) scheme is refused);
- ``Authorization`` is sent only to the origin (scheme, host, port) it belongs to: the registry
  the user named, or the token realm it names; a redirect or ``Location`` that changes any of
  the three drops it, and a token request redirected to plain HTTP is refused;
- only challenges from the registry's own origin are answered;
- every request has a total deadline (``HATCH_WASM_OCI_REQUEST_SECONDS`` plus time for its
  bytes at a floor rate) besides the per-read timeout, and every body read is capped.
"""

from __future__ import annotations

import os
import posixpath
import re
import ssl
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlencode

from hatch_wasm_oci.errors import RegistryError
from hatch_wasm_oci.registry.auth import Authenticator, parse_challenge
from hatch_wasm_oci.registry.credentials import Credentials
from hatch_wasm_oci.registry.errors import ERROR_BODY_LIMIT, http_error, printable
from hatch_wasm_oci.registry.progress import Reporter
from hatch_wasm_oci.registry.retry import (
    RETRY_SECONDS_ENV,
    RETRYABLE_STATUS,
    Backoff,
    RetryPolicy,
    TransientError,
    retry_after,
)
from hatch_wasm_oci.registry.transport import (
    TRANSPORT_ERRORS,
    FileBody,
    Response,
    Transport,
    TransportError,
    origin,
)
from hatch_wasm_oci.registry.urls import split_url

__all__ = [
    "RETRY_SECONDS_ENV",
    "TRANSPORT_ERRORS",
    "Backoff",
    "BodyFactory",
    "RegistryClient",
    "RetryPolicy",
    "TransientError",
    "parse_challenge",
]

REQUEST_SECONDS_ENV = "HATCH_WASM_OCI_REQUEST_SECONDS"
DEFAULT_REQUEST_SECONDS = 300.0
MIN_RATE = 32 << 10
"""Bytes per second a transfer may not fall below on average (its deadline grows with size)."""
REDIRECT_STATUS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 10
USER_AGENT = "hatch-wasm-oci"

BodyFactory = Callable[[], Any]

X509_V_ERR_HOSTNAME_MISMATCH = 62
"""OpenSSL's verify code for a certificate that does not name the host (1.1 and 3.x)."""

_NAME = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*"
_REFERENCE = r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}|sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128}"
_API_PATH = re.compile(
    rf"/v2/(?:|(?P<name>{_NAME})/(?:(?:manifests|blobs)/(?:{_REFERENCE})|blobs/uploads/|tags/list"
    rf"|referrers/sha256:[0-9a-f]{{64}}))"
)


def check_api_path(path: str) -> str:
    """``path`` if it is a registry API path built from valid parts, else RegistryError."""
    if not _API_PATH.fullmatch(path):
        raise RegistryError(
            f"refused to request {printable(path)!r}: not a registry API path made of a valid "
            "repository name and tag or digest"
        )
    return path


def resolve_location(base: str, location: str) -> str:
    """``location`` (absolute, or relative to ``base``) as an absolute URL; dot segments,
    userinfo, fragments and schemes other than http(s) are refused, never resolved."""
    text = location.strip()
    if any(ord(c) < 0x21 or ord(c) > 0x7E for c in text):
        raise RegistryError("the registry sent a Location with characters a URL cannot hold")
    parts = split_url(text, "a Location")
    if parts.scheme:
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise RegistryError(f"the registry sent an unusable Location {printable(text)!r}")
        if parts.username is not None or parts.password is not None:
            raise RegistryError("the registry sent a Location with a user name or password")
        absolute = text
    else:
        head = split_url(base, "a Location")
        if text.startswith("//"):
            raise RegistryError("the registry sent a scheme-relative Location")
        path = parts.path
        if not path.startswith("/"):
            path = posixpath.dirname(head.path) + "/" + path
        absolute = f"{head.scheme}://{head.netloc}{path}"
        if parts.query:
            absolute += f"?{parts.query}"
    segments = unquote(split_url(absolute, "a Location").path).split("/")
    if any(s in (".", "..") for s in segments) or "#" in absolute:
        raise RegistryError(
            f"the registry sent a Location with dot segments {printable(text)!r}; refused"
        )
    return absolute


def request_seconds(environ: Mapping[str, str] | None = None) -> float:
    """The total deadline of a request without a large body, from
    HATCH_WASM_OCI_REQUEST_SECONDS (default 300)."""
    env = os.environ if environ is None else environ
    raw = env.get(REQUEST_SECONDS_ENV)
    if not raw:
        return DEFAULT_REQUEST_SECONDS
    try:
        value = float(raw)
    except ValueError:
        raise RegistryError(f"{REQUEST_SECONDS_ENV} must be a number of seconds") from None
    if value <= 0:
        raise RegistryError(f"{REQUEST_SECONDS_ENV} must be positive")
    return value


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
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.host = host
        self.credentials = credentials
        self.plain_http = plain_http
        self.base = f"{'http' if plain_http else 'https'}://{host}"
        self.origin = origin(self.base)
        self.retry = retry or RetryPolicy.from_env(environ)
        self.seconds = request_seconds(environ)
        if ca_file is not None and not Path(ca_file).is_file():
            raise RegistryError(f"CA file {ca_file} does not exist")
        self.transport = Transport(str(ca_file) if ca_file is not None else None, environ)
        self.auth = Authenticator(credentials, plain_http)
        self.reporter = Reporter()
        """Where blob transfers report progress (stderr by default)."""

    def want(self, repository: str, *actions: str) -> None:
        """Ask for ``actions`` (pull, push) on ``repository`` whenever a token is requested."""
        self.auth.want(repository, *actions)

    # -- URLs -----------------------------------------------------------------------------------

    def url(self, path_or_url: str) -> str:
        """The absolute URL of a ``/v2/...`` API path (checked) or of a Location (resolved
        against the registry, dot segments refused)."""
        if path_or_url.startswith("/v2/"):
            path, mark, query = path_or_url.partition("?")
            if any(ord(c) < 0x21 or ord(c) > 0x7E or c == "#" for c in query):
                raise RegistryError("refused a registry API query holding characters no URL can")
            return self.base + check_api_path(path) + mark + query
        return resolve_location(self.base + "/v2/", path_or_url)

    def location(self, response: Response) -> str | None:
        """The absolute URL the answer's ``Location`` names (None if it has none)."""
        value = response.headers.get("Location")
        if not value:
            return None
        return resolve_location(response.url or self.base + "/v2/", value)

    # -- sending --------------------------------------------------------------------------------

    def _deadline(self, size: int) -> float:
        return self.seconds + size / MIN_RATE

    def _send(
        self,
        method: str,
        url: str,
        *,
        action: str,
        headers: Mapping[str, str] | None = None,
        auth: str | None = None,
        body: BodyFactory | None = None,
        params: Iterable[tuple[str, str]] | None = None,
        retry: bool = True,
        size: int = 0,
        refuse_downgrade: bool = False,
    ) -> Response:
        """Send with retries on connection errors and 429/502/503/504 (if ``retry``).

        ``auth`` (an ``Authorization`` value) belongs to ``url``'s origin and goes nowhere
        else. GET and HEAD follow redirects; with ``refuse_downgrade`` (token requests) a
        redirect of a credentialed request to plain HTTP is refused when the registry is HTTPS.
        """
        backoff = Backoff(self.retry)
        home = origin(url)
        if params:
            query = urlencode(list(params))
            url = f"{url}{'&' if '?' in url else '?'}{query}"
        redirects = 0
        while True:
            all_headers = {"User-Agent": USER_AGENT, **(headers or {})}
            if auth and origin(url) == home:
                all_headers["Authorization"] = auth
            data = body() if body is not None else None
            length = data.length if isinstance(data, FileBody) else len(data or b"")
            if isinstance(data, str):
                data = data.encode()
            try:
                response = self.transport.request(
                    method,
                    url,
                    headers=all_headers,
                    body=data,
                    deadline=self._deadline(max(size, length)),
                )
            except TransportError as exc:
                if exc.tls is not None:
                    raise self._tls_error(exc.tls, action) from None
                if not retry:
                    raise TransientError(exc.description) from None
                try:
                    backoff.wait_or_raise(exc.description, None, action)
                except RegistryError as err:
                    hint = self._connection_hint(exc.description)
                    raise type(err)(f"{err}{hint}") from None
                continue
            response.url, response.action = url, action
            location = response.headers.get("Location")
            if (
                response.status_code in REDIRECT_STATUS
                and method in ("GET", "HEAD")
                and location
                and redirects < MAX_REDIRECTS
            ):
                response.close()
                redirects += 1
                target = resolve_location(url, location)
                downgrade = origin(target)[0] == "http" and not self.plain_http
                if auth and downgrade and refuse_downgrade:
                    host = printable(split_url(target, "a Location").netloc)
                    raise RegistryError(
                        f"{action} failed: refused to follow a redirect to plain HTTP "
                        f"({host}) with credentials from {self.credentials.source}"
                    )
                url = target
                continue
            if response.status_code in RETRYABLE_STATUS:
                description = f"HTTP {response.status_code}"
                after = retry_after(response.headers.get("Retry-After"))
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

    def _token_send(self, method: str, url: str, **kwargs: Any) -> Response:
        return self._send(method, url, refuse_downgrade=True, **kwargs)

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
        size: int = 0,
    ) -> Response:
        """An authenticated request; answers the registry's 401 challenges (and
        re-authenticates once). ``size`` is how many bytes the answer may carry (a blob
        download), which lengthens its deadline."""
        url = self.url(path_or_url)
        param_list = list(params) if params else None
        rounds = 0
        while True:
            own = origin(url) == self.origin
            response = self._send(
                method,
                url,
                action=action,
                headers=headers,
                auth=self.auth.header(repository) if own else None,
                body=body,
                params=param_list,
                retry=retry,
                size=size,
            )
            answered = response.url or url
            if response.status_code != 401 or rounds >= 2 or origin(answered) != self.origin:
                break
            rounds += 1
            self.auth.forget(repository)
            challenge = response.headers.get("WWW-Authenticate", "")
            if not self.auth.answer(challenge, repository, self._token_send):
                break
            response.close()
        if response.status_code == 401:
            raise self.error(response, action=action, repository=repository, what=what)
        return response

    def _speaks_tls(self) -> bool:
        """Whether a plain-HTTP 400 came from a TLS server (Go's answer to plain HTTP)."""
        try:
            probe = self.transport.request(
                "GET", f"{self.base}/v2/", headers={"User-Agent": USER_AGENT}, deadline=10
            )
        except Exception:
            return False
        return _plain_http_rejected(probe.head(4096).decode("utf-8", "replace"))

    def error(
        self, response: Response, *, action: str, repository: str, what: str
    ) -> RegistryError:
        """The RegistryError for an unexpected answer (its body read up to 64 KiB)."""
        body = response.head(ERROR_BODY_LIMIT)
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


def _plain_http_rejected(text: str) -> bool:
    return "HTTP request to an HTTPS server" in text
