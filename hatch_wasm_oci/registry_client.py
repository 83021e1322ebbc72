"""HTTP transport to one OCI registry: TLS, auth challenges (basic and bearer), retries.

Challenge parsing and basic-auth encoding come from oras-py (``oras.auth.utils``). Requests are
sent here rather than through ``oras.provider.Registry.do_request`` because uploads stream from
files that must be reopened on a retry, bearer scopes differ per repository (cross-repository
mounts need two), and a 401 in the middle of a push must trigger exactly one re-authentication.
"""

from __future__ import annotations

import email.utils
import os
import random
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from hatch_wasm_oci.docker_auth import Credentials
from hatch_wasm_oci.errors import RegistryError
from hatch_wasm_oci.registry_errors import http_error

if TYPE_CHECKING:
    import requests

RETRY_SECONDS_ENV = "HATCH_WASM_OCI_MAX_RETRY_SECONDS"
RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
USER_AGENT = "hatch-wasm-oci"
READ_SIZE = 1024 * 1024


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
    def from_env(cls, environ: dict[str, str] | None = None) -> RetryPolicy:
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
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class FileSlice:
    """A file-like body reading ``length`` bytes of ``path`` from ``offset`` in 1 MiB blocks."""

    def __init__(
        self,
        path: Path,
        offset: int,
        length: int,
        on_read: Callable[[int], None] | None = None,
    ) -> None:
        self._file: IO[bytes] = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._file.seek(offset)
        self._left = length
        self._length = length
        self._on_read = on_read

    def __len__(self) -> int:
        return self._length

    def read(self, size: int = -1) -> bytes:
        """Read up to ``max(size, 1 MiB)`` bytes (large blocks keep uploads fast)."""
        if self._left <= 0:
            return b""
        want = self._left if size is None or size < 0 else max(size, READ_SIZE)
        data = self._file.read(min(want, self._left))
        self._left -= len(data)
        if self._on_read is not None and data:
            self._on_read(len(data))
        return data

    def close(self) -> None:
        """Close the file."""
        self._file.close()


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


def _describe_connection_error(exc: BaseException) -> str:
    text = str(exc)
    if "Connection refused" in text or "ConnectionRefused" in text:
        return "connection refused"
    if (
        "Name or service not known" in text
        or "nodename nor servname" in text
        or "NameResolution" in text
    ):
        return "host name not found"
    if "timed out" in text.lower() or "Timeout" in type(exc).__name__:
        return "timed out"
    if "reset" in text.lower():
        return "connection reset"
    if "RemoteDisconnected" in text or "aborted" in text.lower():
        return "connection closed by the server"
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
        import requests
        import requests.utils

        self.host = host
        self.credentials = credentials
        self.plain_http = plain_http
        self.base = f"{'http' if plain_http else 'https'}://{host}"
        self.retry = retry or RetryPolicy.from_env()
        self.verify: bool | str = True
        if ca_file is not None:
            if not Path(ca_file).is_file():
                raise RegistryError(f"CA file {ca_file} does not exist")
            self.verify = str(ca_file)
        self.session = requests.Session()
        # No ~/.netrc or REQUESTS_CA_BUNDLE surprises; proxies from the environment still apply.
        self.session.trust_env = False
        self.session.proxies.update(requests.utils.get_environ_proxies(self.base))
        self.session.headers["User-Agent"] = USER_AGENT
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
            from oras.auth.utils import get_basic_auth

            return {
                "Authorization": f"Basic {get_basic_auth(creds.username or '', creds.password)}"
            }
        return {}

    def _authenticate(self, response: requests.Response, repository: str) -> bool:
        """Answer a 401 challenge; False if there is nothing (more) to try."""
        from oras.auth.utils import parse_auth_header

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
        parsed = parse_auth_header(challenge)
        if not parsed.realm:
            return False
        scopes = set((parsed.scope or "").split())
        actions = self._wanted.get(repository)
        if actions:
            scopes.add(f"repository:{repository}:{','.join(sorted(actions))}")
        token = self._fetch_token(parsed.realm, parsed.service, sorted(scopes))
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
        if creds.identity_token:
            form = dict(params)
            form.update(
                grant_type="refresh_token", refresh_token=creds.identity_token, client_id=USER_AGENT
            )
            form.pop("scope", None)
            data = "&".join(
                f"{k}={_quote(v)}" for k, v in [*form.items(), *(("scope", s) for s in scopes)]
            )
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
                from oras.auth.utils import get_basic_auth

                headers["Authorization"] = (
                    f"Basic {get_basic_auth(creds.username or '', creds.password)}"
                )
            response = self._send("GET", realm, action=action, headers=headers, params=params)
        if response.status_code in (401, 403):
            if creds.anonymous:
                raise RegistryError(
                    f"{action} failed: HTTP {response.status_code} — hint: the registry needs "
                    "credentials and none were found; set HATCH_WASM_OCI_USERNAME/"
                    "HATCH_WASM_OCI_PASSWORD (or HATCH_WASM_OCI_TOKEN) or log in with docker"
                )
            raise RegistryError(
                f"{action} failed: HTTP {response.status_code} — hint: the credentials from "
                f"{creds.source} were rejected"
            )
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
        stream: bool = False,
        retry: bool = True,
    ) -> requests.Response:
        """Send with retries on connection errors and 429/502/503/504 (if ``retry``)."""
        import requests

        backoff = Backoff(self.retry)
        while True:
            data = body() if body is not None else None
            try:
                response = self.session.request(
                    method,
                    url,
                    data=data,
                    headers=headers,
                    params=list(params) if params else None,
                    stream=stream,
                    verify=self.verify,
                    timeout=(15, 300),
                    allow_redirects=method in ("GET", "HEAD"),
                )
            except requests.exceptions.SSLError as exc:
                raise self._tls_error(exc, action) from None
            except (
                requests.exceptions.ConnectionError,
                requests.exceptions.Timeout,
                requests.exceptions.ChunkedEncodingError,
            ) as exc:
                description = _describe_connection_error(exc)
                if not retry:
                    raise TransientError(description) from None
                try:
                    backoff.wait_or_raise(description, None, action)
                except RegistryError as err:
                    raise RegistryError(f"{err}{self._connection_hint(description)}") from None
                continue
            except requests.exceptions.RequestException as exc:
                raise RegistryError(f"{action} failed: {type(exc).__name__}") from None
            finally:
                close = getattr(data, "close", None)
                if close is not None:
                    close()
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

    def _tls_error(self, exc: BaseException, action: str) -> RegistryError:
        text = str(exc)
        if "WRONG_VERSION_NUMBER" in text or "wrong version number" in text:
            return RegistryError(
                f"{action} failed: TLS handshake with {self.host} failed (it does not speak TLS) "
                "— hint: pass --plain-http (-o plain-http=true) for a registry without TLS"
            )
        reason = "certificate not trusted" if "CERTIFICATE_VERIFY_FAILED" in text else "TLS error"
        if "hostname mismatch" in text.lower() or "doesn't match" in text:
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
        stream: bool = False,
        retry: bool = True,
    ) -> requests.Response:
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
                stream=stream,
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
            probe = self.session.get(f"{self.base}/v2/", timeout=5)
        except Exception:
            return False
        return _plain_http_rejected(probe.text)

    def error(
        self, response: requests.Response, *, action: str, repository: str, what: str
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


def _plain_http_rejected(text: str) -> bool:
    return "HTTP request to an HTTPS server" in text


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")
