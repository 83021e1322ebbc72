"""Hostile registries: a fake registry that misbehaves on demand logs every request's headers,
and each case asserts that no credential went where it must not, that nothing hangs past its
deadline or grows past the memory budget, and that every failure is one line."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hatch_wasm_oci.errors import RegistryError
from hatch_wasm_oci.oci.layout_reader import OciLayout
from hatch_wasm_oci.registry.client import RegistryClient
from hatch_wasm_oci.registry.credentials import ANONYMOUS
from hatch_wasm_oci.registry.push import plan_push
from tests.adversarial_fixtures import Run, nested_json, run_bounded
from tests.fake_registry import FakeRegistry, Reply, Request, endless
from tests.registry_fixtures import clean_env, make_ca_and_server_cert, pack_layout

LAYER_DIGEST_PATH = "/blobs/sha256:"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(ca, cert, key) for 127.0.0.1."""
    return make_ca_and_server_cert(tmp_path_factory.mktemp("hostile-pki"))


@pytest.fixture
def layout(tiny_component: Path, tmp_path: Path) -> Path:
    """A fresh layout of the tiny component tagged ``t`` (each test may damage its copy)."""
    return pack_layout(tiny_component, tmp_path / "layout", tags=("t",)).layout


def _env(tmp_path: Path, fake: FakeRegistry, **extra: str) -> dict[str, str]:
    user, password = fake.user
    return clean_env(
        tmp_path / "home",
        HATCH_WASM_OCI_USERNAME=user,
        HATCH_WASM_OCI_PASSWORD=password,
        **extra,
    )


def _transport_args(fake: FakeRegistry, ca: Path) -> list[str]:
    return ["--ca-file", str(ca)] if fake.scheme == "https" else ["--plain-http"]


def _push(layout: Path, fake: FakeRegistry, ca: Path, env: dict[str, str], ref: str = "") -> Run:
    target = f"{fake.address}/{ref or 'acme/app'}"
    return run_bounded("push", layout, target, *_transport_args(fake, ca), env=env)


def _secrets(fake: FakeRegistry) -> list[str]:
    return [fake.user[1], fake.basic_value(), fake.token]


def _assert_secret_free(run: Run, fake: FakeRegistry) -> None:
    for secret in _secrets(fake):
        assert secret not in run.stdout + run.stderr


@pytest.fixture
def registries(pki: tuple[Path, Path, Path]) -> Iterator[list[FakeRegistry]]:
    """Fake registries started by a test (stopped afterwards)."""
    started: list[FakeRegistry] = []
    yield started
    for fake in started:
        fake.stop()


def _start(registries: list[FakeRegistry], fake: FakeRegistry) -> FakeRegistry:
    registries.append(fake.__enter__())
    return fake


# -- credentials go only where the user pointed -------------------------------------------------


def test_https_to_http_redirect_on_the_same_port_carries_no_credentials(
    pki: tuple[Path, Path, Path],
    registries: list[FakeRegistry],
    layout: Path,
    tmp_path: Path,
) -> None:
    """A TLS registry redirects blob GETs to ``http://`` on its own host and port (it speaks
    both there): the blob is fetched, and no request over plain HTTP carries a credential."""
    ca, cert, key = pki
    fake = _start(registries, FakeRegistry(tls=(cert, key), plain_too=True, auth="basic"))
    env = _env(tmp_path, fake)
    assert _push(layout, fake, ca, env).returncode == 0

    def downgrade(req: Request) -> Reply | None:
        if req.method == "GET" and LAYER_DIGEST_PATH in req.path:
            digest = req.path.rsplit("/", 1)[1]
            if req.scheme == "https":
                return Reply(307, {"Location": f"http://{fake.address}{req.path}"})
            return Reply(200, {}, fake.blobs[digest])
        return None

    fake.misbehave = downgrade
    pulled = run_bounded(
        "pull", f"{fake.address}/acme/app:t", "-o", tmp_path / "out", "--ca-file", ca, env=env
    )
    assert pulled.returncode == 0, pulled.stderr
    plain = [r for r in fake.log if r.scheme == "http"]
    assert plain, "the redirect was not followed"
    assert all("Authorization" not in r.headers for r in plain)
    assert not [r for r in plain for s in _secrets(fake) if s in str(r.headers)]
    _assert_secret_free(pulled, fake)


@pytest.mark.parametrize(
    ("tls", "auth", "foreign_auth"),
    [
        (True, "basic", None),
        (True, "bearer", None),
        (False, "basic", None),
        (True, "basic", "bearer"),
    ],
    ids=["tls-basic", "tls-bearer", "plain-basic", "foreign-challenge"],
)
def test_foreign_upload_location_gets_no_credentials(
    tls: bool,
    auth: str,
    foreign_auth: str | None,
    pki: tuple[Path, Path, Path],
    registries: list[FakeRegistry],
    layout: Path,
    tmp_path: Path,
) -> None:
    """The registry answers the upload POST with a Location on another port (plain HTTP): no
    Authorization goes there, and a challenge from there is not answered with our password."""
    ca, cert, key = pki
    foreign = _start(registries, FakeRegistry(auth=foreign_auth))
    fake = _start(registries, FakeRegistry(tls=(cert, key) if tls else None, auth=auth))

    def elsewhere(req: Request) -> Reply | None:
        if req.method == "POST" and "/blobs/uploads/" in req.path:
            return Reply(202, {"Location": f"http://{foreign.address}/v2/x/blobs/uploads/u1"})
        return None

    fake.misbehave = elsewhere
    run = _push(layout, fake, ca, _env(tmp_path, fake))
    assert foreign.log, "the foreign Location was never used"
    assert all("Authorization" not in r.headers for r in foreign.log)
    for secret in _secrets(fake):
        assert not foreign.seen(secret)
    _assert_secret_free(run, fake)
    run.check_no_traceback()
    if foreign_auth:
        run.check_clean_failure("HTTP 401")
        assert not [r for r in foreign.log if r.path.startswith("/token")]


def test_token_realm_redirect_to_plain_http_is_refused(
    pki: tuple[Path, Path, Path], registries: list[FakeRegistry], layout: Path, tmp_path: Path
) -> None:
    ca, cert, key = pki
    fake = _start(registries, FakeRegistry(tls=(cert, key), plain_too=True, auth="bearer"))

    def downgrade(req: Request) -> Reply | None:
        if req.path.startswith("/token") and req.scheme == "https":
            return Reply(302, {"Location": f"http://{fake.address}{req.path}"})
        return None

    fake.misbehave = downgrade
    run = _push(layout, fake, ca, _env(tmp_path, fake))
    run.check_clean_failure("refused to follow a redirect to plain HTTP")
    assert [r for r in fake.log if r.scheme == "http"] == []
    _assert_secret_free(run, fake)


# -- names from a layout or a registry never steer a URL -------------------------------------


def test_layout_tag_with_dot_segments_is_refused_before_any_request(
    registries: list[FakeRegistry], layout: Path, tmp_path: Path
) -> None:
    fake = _start(registries, FakeRegistry())
    index = json.loads((layout / "index.json").read_text())
    hostile = "../../victim/manifests/latest"
    index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] = hostile
    (layout / "index.json").write_text(json.dumps(index))
    run = _push(layout, fake, Path(), clean_env(tmp_path / "home"), "acme/attacker")
    run.check_clean_failure()
    assert fake.log == [] and fake.manifests == {}


@pytest.mark.parametrize(
    "path",
    [
        "/v2/acme/attacker/manifests/../../victim/manifests/latest",
        "/v2/acme/attacker/manifests/%2e%2e",
        "/v2/Acme/x/manifests/t",
        "/v2/acme/x/manifests/t/../../y",
        "/v2/acme/x/blobs/sha256:zz",
    ],
)
def test_api_paths_are_checked_against_the_grammar(path: str) -> None:
    client = RegistryClient("127.0.0.1:9", ANONYMOUS, plain_http=True)
    with pytest.raises(RegistryError):
        client.url(path)


@pytest.mark.parametrize(
    "location",
    [
        "/v2/acme/x/blobs/uploads/../../../victim/manifests/latest",
        "/v2/acme/x/blobs/uploads/%2E%2E/y",
        "http://user:pw@127.0.0.1/v2/x/blobs/uploads/1",
        "file:///etc/passwd",
        "//evil.example/v2/x",
        "/v2/x/blobs/uploads/1\x1b[2J",
    ],
)
def test_hostile_locations_are_refused(location: str) -> None:
    client = RegistryClient("127.0.0.1:9", ANONYMOUS, plain_http=True)
    with pytest.raises(RegistryError):
        client.url(location)


def test_push_never_creates_fallback_tags_unless_named(
    registries: list[FakeRegistry], layout: Path, tmp_path: Path
) -> None:
    """A layout holding a referrers fallback tag (``sha256-<hex>``, as pull once wrote) pushes
    only its real tags to ``REPO``; ``REPO:sha256-…`` still pushes it when asked for."""
    fake = _start(registries, FakeRegistry())
    index = json.loads((layout / "index.json").read_text())
    entry = dict(index["manifests"][0])
    fallback = "sha256-" + entry["digest"].split(":", 1)[1]
    entry["annotations"] = {"org.opencontainers.image.ref.name": fallback}
    index["manifests"].append(entry)
    (layout / "index.json").write_text(json.dumps(index))
    env = clean_env(tmp_path / "home")
    assert _push(layout, fake, Path(), env).returncode == 0
    assert {ref for _, ref in fake.manifests if not ref.startswith("sha256:")} == {"t"}
    named = _push(layout, fake, Path(), env, f"acme/app:{fallback}")
    assert named.returncode == 0, named.stderr
    assert ("acme/app", fallback) in fake.manifests


def test_push_planning_is_linear_in_the_number_of_tags(
    layout: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = OciLayout.open(layout)
    desc = opened.tags()["t"]
    many = {f"v{i}": desc for i in range(200_000)}
    monkeypatch.setattr(opened, "tags", lambda: many)
    started = time.monotonic()
    targets = plan_push(opened, ["127.0.0.1:9/acme/app"])
    assert time.monotonic() - started < 10
    assert len(targets) == 1 and len(targets[0].tags) == 200_000


# -- secrets never printed ----------------------------------------------------------------------


@pytest.mark.parametrize("token", ["tok-crlf-file-0123\r", "tøken-€-non-latin1"])
def test_unsendable_token_is_one_line_and_never_printed(
    token: str, registries: list[FakeRegistry], layout: Path, tmp_path: Path
) -> None:
    fake = _start(registries, FakeRegistry(auth="bearer"))
    run = _push(layout, fake, Path(), clean_env(tmp_path / "home", HATCH_WASM_OCI_TOKEN=token))
    run.check_clean_failure("HATCH_WASM_OCI_TOKEN", "cannot be sent")
    assert token.strip() not in run.stdout + run.stderr
    assert all("Authorization" not in r.headers for r in fake.log)


def test_registry_text_is_stripped_of_escape_sequences(
    registries: list[FakeRegistry], layout: Path, tmp_path: Path
) -> None:
    message = "denied \x1b]0;pwned\x07\x1b[2J\x1b[31mred\r\nforged line"
    body = json.dumps({"errors": [{"code": "DENIED", "message": message}]}).encode()

    def deny(req: Request) -> Reply | None:
        if req.method == "POST":
            return Reply(403, {"Content-Type": "application/json"}, body)
        return None

    fake = _start(registries, FakeRegistry(misbehave=deny))
    run = _push(layout, fake, Path(), clean_env(tmp_path / "home"))
    run.check_clean_failure("HTTP 403", "denied", "red")
    assert "\x1b" not in run.stderr and "\x07" not in run.stderr and "\r" not in run.stderr


# -- no hang, no unbounded memory ---------------------------------------------------------------


def _fail_fast(tmp_path: Path, **extra: str) -> dict[str, str]:
    return clean_env(
        tmp_path / "home",
        HATCH_WASM_OCI_REQUEST_SECONDS="3",
        HATCH_WASM_OCI_MAX_RETRY_SECONDS="2",
        **extra,
    )


def test_endless_error_body_is_capped(
    registries: list[FakeRegistry], layout: Path, tmp_path: Path
) -> None:
    def endless_error(req: Request) -> Reply | None:
        if req.method == "POST":
            return Reply(400, {"Content-Type": "application/json"}, endless(), length=None)
        return None

    fake = _start(registries, FakeRegistry(misbehave=endless_error))
    run = _push(layout, fake, Path(), _fail_fast(tmp_path))
    run.check_clean_failure("HTTP 400")
    assert run.seconds < 20


def test_huge_token_answer_is_capped(
    registries: list[FakeRegistry], layout: Path, tmp_path: Path
) -> None:
    def huge_token(req: Request) -> Reply | None:
        if req.path.startswith("/token"):
            return Reply(200, {"Content-Type": "application/json"}, endless(), length=300 << 20)
        return None

    fake = _start(registries, FakeRegistry(auth="bearer", misbehave=huge_token))
    run = _push(layout, fake, Path(), _env(tmp_path, fake))
    run.check_clean_failure("larger than")
    _assert_secret_free(run, fake)


@pytest.mark.parametrize("where", ["token", "error"])
def test_deeply_nested_json_is_one_line(
    where: str, registries: list[FakeRegistry], layout: Path, tmp_path: Path
) -> None:
    nested = nested_json(200_000)

    def deep(req: Request) -> Reply | None:
        if where == "token" and req.path.startswith("/token"):
            return Reply(200, {"Content-Type": "application/json"}, nested)
        if where == "error" and req.method == "POST":
            return Reply(400, {"Content-Type": "application/json"}, nested)
        return None

    fake = _start(registries, FakeRegistry(auth="bearer", misbehave=deep))
    run = _push(layout, fake, Path(), _env(tmp_path, fake))
    run.check_clean_failure()
    assert "RecursionError" not in run.stderr


@pytest.mark.parametrize("phase", ["body", "headers"])
def test_one_byte_per_second_is_cut_off_by_the_request_deadline(
    phase: str, registries: list[FakeRegistry], tmp_path: Path
) -> None:
    def trickle(req: Request) -> Reply | None:
        if "/manifests/" not in req.path:
            return None
        if phase == "body":
            return Reply(
                200, {"Content-Type": "application/json"}, iter([b"{"] * 600), delay=1.0, length=600
            )
        out = req.handler.wfile
        try:
            for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 600:
                out.write(bytes([byte]))
                out.flush()
                time.sleep(1.0)
        except OSError:
            pass
        req.handler.close_connection = True
        return Reply(0)

    fake = _start(registries, FakeRegistry(misbehave=trickle))
    run = run_bounded(
        "pull",
        f"{fake.address}/acme/app:t",
        "-o",
        tmp_path / "out",
        "--plain-http",
        env=_fail_fast(tmp_path),
        timeout=40,
    )
    run.check_clean_failure("timed out")
    assert run.seconds < 25
    assert not (tmp_path / "out").exists()


def test_lying_content_length_is_an_interrupted_download(
    registries: list[FakeRegistry], layout: Path, tmp_path: Path
) -> None:
    fake = _start(registries, FakeRegistry())
    assert _push(layout, fake, Path(), clean_env(tmp_path / "home")).returncode == 0

    def short(req: Request) -> Reply | None:
        if req.method == "GET" and LAYER_DIGEST_PATH in req.path:
            data = fake.blobs[req.path.rsplit("/", 1)[1]]
            return Reply(200, {}, [data[:10]], length=len(data) + 1000)
        return None

    fake.misbehave = short
    run = run_bounded(
        "pull",
        f"{fake.address}/acme/app:t",
        "-o",
        tmp_path / "out",
        "--plain-http",
        env=_fail_fast(tmp_path),
    )
    run.check_clean_failure("pulling blob")
    assert not (tmp_path / "out").exists()


def test_early_413_while_uploading_is_read_and_reported(
    registries: list[FakeRegistry], tiny_component: Path, tmp_path: Path
) -> None:
    """The registry answers 413 before reading a 4 MiB upload and closes: the answer is still
    read and its hint printed, not a broken pipe."""
    from tests.registry_fixtures import padded_component

    big = pack_layout(
        padded_component(tiny_component, tmp_path / "big.wasm", 4 << 20),
        tmp_path / "big",
        tags=("t",),
    ).layout

    def too_large(req: Request) -> Reply | None:
        if req.method == "PUT" and "/blobs/uploads/" in req.path:
            return Reply(413, {"Content-Type": "application/json"}, b'{"errors":[]}', drain=False)
        return None

    fake = _start(registries, FakeRegistry(misbehave=too_large))
    run = _push(big, fake, Path(), clean_env(tmp_path / "home"))
    run.check_clean_failure("HTTP 413", "HATCH_WASM_OCI_CHUNKED_ABOVE")


# -- local faults are local -------------------------------------------------------------------


def test_blob_truncated_on_disk_during_push_is_a_local_error(
    registries: list[FakeRegistry], tiny_component: Path, tmp_path: Path
) -> None:
    """The layer file shrinks after the push checked it: a one-line error naming the file, at
    once, with no retry (it is not a network error) and no hang waiting for missing bytes."""
    from tests.registry_fixtures import padded_component

    packed = pack_layout(
        padded_component(tiny_component, tmp_path / "p.wasm", 1 << 20),
        tmp_path / "layout",
        tags=("t",),
    )
    blob = OciLayout.open(packed.layout).blob_path(packed.layer.digest)

    def shrink(req: Request) -> Reply | None:
        if req.method == "POST":
            os.chmod(blob, 0o644)
            os.truncate(blob, 1000)
        return None

    fake = _start(registries, FakeRegistry(misbehave=shrink))
    run = _push(packed.layout, fake, Path(), clean_env(tmp_path / "home"))
    run.check_clean_failure("became shorter while it was being uploaded")
    assert run.seconds < 15
    hexdigest = packed.layer.digest.split(":", 1)[1]
    puts = [r for r in fake.log if r.method == "PUT" and hexdigest in r.path]
    assert len(puts) <= 1


def test_manifest_digest_header_with_escapes_is_not_echoed(
    registries: list[FakeRegistry], layout: Path, tmp_path: Path
) -> None:
    def lie(req: Request) -> Reply | None:
        if req.method == "PUT" and "/manifests/" in req.path:
            return Reply(201, {"Docker-Content-Digest": "sha256:\x1b[31mevil"})
        return None

    fake = _start(registries, FakeRegistry(misbehave=lie))
    run = _push(layout, fake, Path(), clean_env(tmp_path / "home"))
    run.check_clean_failure("rewrote the manifest")
    assert "\x1b" not in run.stderr


def test_fake_registry_round_trip_is_byte_identical(
    pki: tuple[Path, Path, Path], registries: list[FakeRegistry], layout: Path, tmp_path: Path
) -> None:
    """The fake registry itself behaves: a TLS bearer push and pull round-trip byte for byte."""
    ca, cert, key = pki
    fake = _start(registries, FakeRegistry(tls=(cert, key), auth="bearer"))
    env = _env(tmp_path, fake)
    pushed = _push(layout, fake, ca, env)
    assert pushed.returncode == 0, pushed.stderr
    data = OciLayout.open(layout).manifest_bytes("t")
    assert fake.manifests[("acme/app", "t")][0] == data
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    pulled = run_bounded(
        "pull",
        f"{fake.address}/acme/app@{digest}",
        "-o",
        tmp_path / "out",
        "--ca-file",
        ca,
        env=env,
    )
    assert pulled.returncode == 0, pulled.stderr
    assert [r for r in fake.log if r.path.startswith("/token")]


# -- every URL a registry sends is parsed in one guarded place ---------------------------------

MALFORMED_URLS = {
    "ipv6": "http://[::1:6002/t",
    "port": "http://127.0.0.1:99999/t",
    "host": "http://[not-an-address]/t",
}


@pytest.mark.parametrize("where", ["realm", "upload-location", "redirect"])
@pytest.mark.parametrize("url", sorted(MALFORMED_URLS), ids=sorted(MALFORMED_URLS))
def test_a_malformed_url_from_the_registry_is_one_line(
    where: str, url: str, registries: list[FakeRegistry], layout: Path, tmp_path: Path
) -> None:
    """A token realm, an upload Location or a redirect naming an unparsable URL (an unclosed
    IPv6 bracket, a port past 65535, a bracketed non-address) ends in one line, exit 2."""
    fake = _start(registries, FakeRegistry(auth="bearer" if where == "realm" else None))
    text = MALFORMED_URLS[url]

    def hostile(req: Request) -> Reply | None:
        if where == "realm" and "Authorization" not in req.headers:
            challenge = f'Bearer realm="{text}",service="fake"'
            return Reply(401, {"WWW-Authenticate": challenge})
        if where == "upload-location" and req.method == "POST" and "/uploads/" in req.path:
            return Reply(202, {"Location": text + "/v2/acme/app/blobs/uploads/u1"})
        if where == "redirect" and req.method in ("GET", "HEAD") and "/manifests/" in req.path:
            return Reply(307, {"Location": text})
        return None

    if where == "redirect":
        # Push first with a well-behaved registry: push reads the tag (version tags are
        # immutable), so a redirect there would end the push, not the pull under test.
        assert _push(layout, fake, Path(), _env(tmp_path, fake)).returncode == 0
        fake.misbehave = hostile
        run = run_bounded(
            "pull", f"{fake.address}/acme/app:t", "-o", tmp_path / "out", "--plain-http",
            env=_env(tmp_path, fake),
        )  # fmt: skip
    else:
        fake.misbehave = hostile
        run = _push(layout, fake, Path(), _env(tmp_path, fake))
    run.check_clean_failure("not a valid URL")
    _assert_secret_free(run, fake)
