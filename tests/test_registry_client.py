"""Fast protocol tests of the registry client with a fake transport object: challenges,
redirects, early replies, retries and where credentials go (no sockets)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from urllib3 import HTTPHeaderDict

from hatch_wasm_oci.errors import RegistryError
from hatch_wasm_oci.registry.client import RegistryClient
from hatch_wasm_oci.registry.credentials import ANONYMOUS, Credentials
from hatch_wasm_oci.registry.retry import RetryPolicy
from hatch_wasm_oci.registry.transport import FileBody, LocalFileError, TransportError

PASSWORD = "pa55-word-for-unit-tests"
USER = Credentials(source="the test", username="ada", password=PASSWORD)
BASIC = "Basic YWRhOnBhNTUtd29yZC1mb3ItdW5pdC10ZXN0cw=="


class FakeResponse:
    """What the client reads of an answer: status, headers and a small body."""

    def __init__(self, status: int, headers: Mapping[str, str] | None = None, body: bytes = b""):
        self.status_code = status
        self.headers = HTTPHeaderDict(dict(headers or {}))
        self.body = body
        self.url = ""
        self.action: str | None = None
        self.closed = False

    def head(self, limit: int) -> bytes:
        return self.body[:limit]

    def read(self, limit: int) -> bytes:
        if len(self.body) > limit:
            raise RegistryError(f"the answer is larger than {limit} bytes")
        return self.body

    def iter_content(self, size: int = 1 << 20) -> Iterator[bytes]:
        yield self.body

    def close(self) -> None:
        self.closed = True


@dataclass
class Sent:
    method: str
    url: str
    headers: dict[str, str]


@dataclass
class FakeTransport:
    """Answers each request with ``answer(method, url, headers)``; records what was sent."""

    answer: Callable[[str, str, dict[str, str]], Any]
    sent: list[Sent] = field(default_factory=list)

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: Any = None,
        deadline: float,
    ) -> FakeResponse:
        self.sent.append(Sent(method, url, dict(headers)))
        if isinstance(body, FileBody):
            body.open()
            try:
                while body.read(1 << 20):
                    pass
            finally:
                body.close()
        result = self.answer(method, url, dict(headers))
        if isinstance(result, BaseException):
            raise result
        assert isinstance(result, FakeResponse)
        return result


def _client(
    answer: Callable[[str, str, dict[str, str]], Any],
    credentials: Credentials = USER,
    plain_http: bool = False,
) -> tuple[RegistryClient, FakeTransport]:
    client = RegistryClient(
        "registry.test",
        credentials,
        plain_http=plain_http,
        retry=RetryPolicy(attempts=4, base=0.001, cap=0.001, deadline=5),
    )
    fake = FakeTransport(answer)
    client.transport = fake  # type: ignore[assignment]
    return client, fake


def _get(client: RegistryClient, path: str = "/v2/acme/app/manifests/1.0") -> FakeResponse:
    response = client.request("GET", path, repository="acme/app", action="test")
    assert isinstance(response, FakeResponse)
    return response


def test_basic_challenge_is_answered_once() -> None:
    def answer(method: str, url: str, headers: dict[str, str]) -> FakeResponse:
        if headers.get("Authorization") == BASIC:
            return FakeResponse(200)
        return FakeResponse(401, {"WWW-Authenticate": 'Basic realm="r"'})

    client, fake = _client(answer)
    assert _get(client).status_code == 200
    assert [s.headers.get("Authorization") for s in fake.sent] == [None, BASIC]
    _get(client)  # basic is remembered: no second challenge
    assert len(fake.sent) == 3


def test_bearer_token_is_fetched_with_scope_and_cached() -> None:
    def answer(method: str, url: str, headers: dict[str, str]) -> FakeResponse:
        if url.startswith("https://auth.test/token"):
            assert headers.get("Authorization") == BASIC
            return FakeResponse(200, body=b'{"token":"T0K"}')
        if headers.get("Authorization") == "Bearer T0K":
            return FakeResponse(200)
        challenge = 'Bearer realm="https://auth.test/token",service="reg",scope="x"'
        return FakeResponse(401, {"WWW-Authenticate": challenge})

    client, fake = _client(answer)
    client.want("acme/app", "pull", "push")
    _get(client)
    _get(client)
    token_calls = [s for s in fake.sent if "auth.test" in s.url]
    assert len(token_calls) == 1
    assert "scope=repository%3Aacme%2Fapp%3Apull%2Cpush" in token_calls[0].url
    assert "service=reg" in token_calls[0].url
    assert [s.headers.get("Authorization") for s in fake.sent if "registry.test" in s.url] == [
        None,
        "Bearer T0K",
        "Bearer T0K",
    ]


@pytest.mark.parametrize(
    ("target", "keeps"),
    [
        ("https://registry.test/v2/acme/app/blobs/x", True),
        ("/v2/acme/app/blobs/y", True),
        ("https://cdn.test/blob", False),
        ("http://registry.test/v2/acme/app/blobs/x", False),
        ("https://registry.test:8443/v2/acme/app/blobs/x", False),
    ],
    ids=["same-origin", "relative", "other-host", "https-to-http", "other-port"],
)
def test_redirects_keep_credentials_only_on_the_same_origin(target: str, keeps: bool) -> None:
    def answer(method: str, url: str, headers: dict[str, str]) -> FakeResponse:
        if url.endswith("/manifests/1.0"):
            return FakeResponse(307, {"Location": target})
        return FakeResponse(200)

    client, fake = _client(answer, Credentials(source="env", registry_token="REGTOKEN"))
    assert _get(client).status_code == 200
    assert fake.sent[0].headers["Authorization"] == "Bearer REGTOKEN"
    assert ("Authorization" in fake.sent[1].headers) is keeps


def test_a_challenge_from_a_foreign_origin_is_not_answered() -> None:
    def answer(method: str, url: str, headers: dict[str, str]) -> FakeResponse:
        if url.startswith("https://registry.test"):
            return FakeResponse(302, {"Location": "https://evil.test/v2/x"})
        return FakeResponse(401, {"WWW-Authenticate": 'Bearer realm="https://evil.test/t"'})

    client, fake = _client(answer)
    with pytest.raises(RegistryError, match="HTTP 401"):
        _get(client)
    assert [s.url for s in fake.sent] == [
        "https://registry.test/v2/acme/app/manifests/1.0",
        "https://evil.test/v2/x",
    ]
    assert all(PASSWORD not in str(s.headers) and BASIC not in str(s.headers) for s in fake.sent)


def test_token_request_redirected_to_plain_http_is_refused() -> None:
    def answer(method: str, url: str, headers: dict[str, str]) -> FakeResponse:
        if url.startswith("https://auth.test"):
            return FakeResponse(302, {"Location": "http://auth.test/token"})
        return FakeResponse(401, {"WWW-Authenticate": 'Bearer realm="https://auth.test/token"'})

    client, fake = _client(answer)
    with pytest.raises(RegistryError, match="refused to follow a redirect to plain HTTP"):
        _get(client)
    assert not [s for s in fake.sent if s.url.startswith("http://")]


def test_plain_http_realm_of_an_https_registry_gets_no_credentials() -> None:
    def answer(method: str, url: str, headers: dict[str, str]) -> FakeResponse:
        return FakeResponse(401, {"WWW-Authenticate": 'Bearer realm="http://auth.test/token"'})

    client, fake = _client(answer)
    with pytest.raises(RegistryError, match="refused to send credentials"):
        _get(client)
    assert len(fake.sent) == 1


def test_put_redirects_are_not_followed() -> None:
    client, fake = _client(lambda m, u, h: FakeResponse(307, {"Location": "https://x.test/"}))
    response = client.request(
        "PUT", "/v2/acme/app/manifests/1.0", repository="acme/app", action="t", body=lambda: b"{}"
    )
    assert response.status_code == 307 and len(fake.sent) == 1


def test_retry_after_and_resets_are_retried_then_bounded() -> None:
    answers: list[Any] = [
        FakeResponse(503, {"Retry-After": "0"}),
        TransportError("connection reset"),
        FakeResponse(429, {"Retry-After": "0"}),
        FakeResponse(200),
    ]
    client, fake = _client(lambda m, u, h: answers.pop(0))
    assert _get(client).status_code == 200 and len(fake.sent) == 4
    client, fake = _client(lambda m, u, h: FakeResponse(502))
    with pytest.raises(RegistryError, match="failed after 4 attempts: HTTP 502"):
        _get(client)


def test_early_413_is_reported_with_the_chunking_hint() -> None:
    client, _ = _client(lambda m, u, h: FakeResponse(413, body=b'{"errors":[]}'), ANONYMOUS)
    response = client.request(
        "PUT",
        "/v2/acme/app/blobs/uploads/",
        repository="acme/app",
        action="uploading",
        body=lambda: b"x" * 100,
    )
    error = client.error(response, action="uploading", repository="acme/app", what="blob")
    assert "HTTP 413" in str(error) and "HATCH_WASM_OCI_CHUNKED_ABOVE" in str(error)


def test_local_file_errors_are_not_retried(tmp_path: Path) -> None:
    blob = tmp_path / "blob"
    blob.write_bytes(b"x" * 10)
    client, fake = _client(lambda m, u, h: FakeResponse(201), ANONYMOUS)
    with pytest.raises(LocalFileError, match="became shorter"):
        client.request(
            "PUT",
            "/v2/acme/app/blobs/uploads/",
            repository="acme/app",
            action="t",
            body=lambda: FileBody(blob, 0, 100),
        )
    assert len(fake.sent) == 1
    with pytest.raises(LocalFileError, match="cannot read"):
        client.request(
            "PUT",
            "/v2/acme/app/blobs/uploads/",
            repository="acme/app",
            action="t",
            body=lambda: FileBody(tmp_path, 0, 100),  # a directory: EISDIR
        )
    assert len(fake.sent) == 2


def test_locations_resolve_without_dot_segments() -> None:
    client, _ = _client(lambda m, u, h: FakeResponse(202, {"Location": "abc?_state=s"}))
    response = client.request(
        "POST", "/v2/acme/app/blobs/uploads/", repository="acme/app", action="t"
    )
    assert (
        client.location(response) == "https://registry.test/v2/acme/app/blobs/uploads/abc?_state=s"
    )
    assert isinstance(response.headers, HTTPHeaderDict)  # the fake's, which a test may edit
    response.headers["Location"] = "../../victim/blobs/uploads/x"
    with pytest.raises(RegistryError, match="dot segments"):
        client.location(response)


def test_registry_error_text_loses_escape_sequences() -> None:
    from hatch_wasm_oci.registry.errors import http_error

    body = b'{"errors":[{"code":"DENIED","message":"no \\u001b]0;pwned\\u0007\\u001b[2Jway"}]}'
    error = http_error(
        403,
        body,
        action="pushing",
        host="h",
        repository="r",
        what="blob",
        credential_source="the test",
        anonymous=False,
    )
    assert "DENIED: no way" in str(error) and "\x1b" not in str(error)


def test_proxies_from_the_environment() -> None:
    """https_proxy with credentials (an https:// proxy is spoken to over TLS by urllib3's
    ProxyManager), no_proxy bypasses it, lowercase names win."""
    import base64

    import urllib3

    from hatch_wasm_oci.registry.transport import Transport

    environ = {
        "https_proxy": "https://pu:p%40ss@proxy.test:3128",
        "HTTPS_PROXY": "http://ignored.test:1",
        "no_proxy": "localhost,.internal.test",
    }
    transport = Transport(environ=environ)
    manager = transport._manager("https://registry.test/v2/")
    assert isinstance(manager, urllib3.ProxyManager)
    assert manager.proxy is not None
    assert (manager.proxy.scheme, manager.proxy.host, manager.proxy.port) == (
        "https",
        "proxy.test",
        3128,
    )
    expected = "Basic " + base64.b64encode(b"pu:p@ss").decode()
    assert manager.proxy_headers["proxy-authorization"] == expected
    for bypassed in ("https://localhost:5000/v2/", "https://r.internal.test/v2/"):
        assert not isinstance(transport._manager(bypassed), urllib3.ProxyManager)
