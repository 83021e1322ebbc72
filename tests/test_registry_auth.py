"""Credential discovery, references, error hints, registry tokens and TTY progress."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from hatch_wasm_oci.errors import RegistryError
from hatch_wasm_oci.oci.layout_reader import OciLayout
from hatch_wasm_oci.registry.credentials import resolve_credentials
from hatch_wasm_oci.registry.errors import http_error
from hatch_wasm_oci.registry.reference import parse_reference
from tests.registry_fixtures import (
    RegistryServer,
    clean_env,
    pack_layout,
    padded_component,
    plain_push,
    run_cli,
    skopeo_raw,
    token_server,
    unique_repo,
)
from tests.token_server import TokenServer


def _config(tmp_path: Path, data: dict[str, object]) -> dict[str, str]:
    (tmp_path / "config.json").write_text(json.dumps(data))
    return {"DOCKER_CONFIG": str(tmp_path), "HOME": str(tmp_path / "nohome"), "PATH": "/usr/bin"}


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    "key", ["https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io"]
)
def test_docker_hub_keys(key: str, tmp_path: Path) -> None:
    env = _config(tmp_path, {"auths": {key: {"auth": _b64("hubuser:hubpass")}}})
    creds = resolve_credentials(parse_reference("acme/app:1").host, env)
    assert (creds.username, creds.password) == ("hubuser", "hubpass")
    assert key in creds.source
    assert "hubpass" not in repr(creds)


def test_environment_beats_docker_config_and_needs_both(tmp_path: Path) -> None:
    env = _config(tmp_path, {"auths": {"ghcr.io": {"auth": _b64("cfg:cfgpass")}}})
    env.update(HATCH_WASM_OCI_USERNAME="envuser", HATCH_WASM_OCI_PASSWORD="envpass")
    creds = resolve_credentials("ghcr.io", env)
    assert (creds.username, creds.password) == ("envuser", "envpass")
    assert "HATCH_WASM_OCI_USERNAME" in creds.source
    token = resolve_credentials("ghcr.io", {**env, "HATCH_WASM_OCI_TOKEN": "tok"})
    assert token.registry_token == "tok" and token.password is None
    del env["HATCH_WASM_OCI_PASSWORD"]
    with pytest.raises(RegistryError, match="HATCH_WASM_OCI_PASSWORD is not set"):
        resolve_credentials("ghcr.io", env)


def test_pull_reads_the_retry_bound_from_the_given_environ(tmp_path: Path) -> None:
    from hatch_wasm_oci.registry.pull import pull

    environ = {"HATCH_WASM_OCI_MAX_RETRY_SECONDS": "soon", "HOME": str(tmp_path)}
    with pytest.raises(RegistryError, match="HATCH_WASM_OCI_MAX_RETRY_SECONDS must be a number"):
        pull("127.0.0.1:9/acme/app:t", tmp_path / "out", plain_http=True, environ=environ)
    assert not (tmp_path / "out").exists()


def test_other_hosts_and_anonymous(tmp_path: Path) -> None:
    env = _config(tmp_path, {"auths": {"https://ghcr.io": {"auth": _b64("u:p")}}})
    assert resolve_credentials("ghcr.io", env).password == "p"
    assert resolve_credentials("quay.io", env).anonymous
    assert resolve_credentials("ghcr.io", {"HOME": str(tmp_path / "none")}).anonymous


def test_helper_identity_token(tmp_path: Path) -> None:
    helper = tmp_path / "bin" / "docker-credential-idt"
    helper.parent.mkdir()
    helper.write_text(
        '#!/bin/sh\nread s\nprintf \'{"Username":"<token>","Secret":"refresh-xyz"}\'\n'
    )
    helper.chmod(0o755)
    env = _config(tmp_path, {"credHelpers": {"myregistry.azurecr.io": "idt"}})
    env["PATH"] = f"{helper.parent}:/usr/bin"
    creds = resolve_credentials("myregistry.azurecr.io", env)
    assert creds.identity_token == "refresh-xyz" and creds.password is None
    assert "docker-credential-idt" in creds.source


def test_broken_docker_config_is_named(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(RegistryError, match=r"config\.json is not valid JSON"):
        resolve_credentials("ghcr.io", {"DOCKER_CONFIG": str(tmp_path)})


@pytest.mark.parametrize(
    ("text", "host", "repo", "tag", "digest"),
    [
        ("ghcr.io/acme/app:1.0", "ghcr.io", "acme/app", "1.0", None),
        ("localhost:5000/app", "localhost:5000", "app", None, None),
        ("alpine", "docker.io", "library/alpine", None, None),
        ("acme/app@sha256:" + "a" * 64, "docker.io", "acme/app", None, "sha256:" + "a" * 64),
    ],
)
def test_references(text: str, host: str, repo: str, tag: str | None, digest: str | None) -> None:
    ref = parse_reference(text)
    assert (ref.host, ref.repository, ref.tag, ref.digest) == (host, repo, tag, digest)


@pytest.mark.parametrize(
    "text", ["https://ghcr.io/a/b", "ghcr.io/A/b", "ghcr.io/a/b:1+local", "a@sha256:12"]
)
def test_bad_references(text: str) -> None:
    with pytest.raises(RegistryError, match="invalid"):
        parse_reference(text)


def _body(code: str, message: str) -> bytes:
    return json.dumps({"errors": [{"code": code, "message": message}]}).encode()


@pytest.mark.parametrize(
    ("host", "status", "body", "what", "expected"),
    [
        ("ghcr.io", 403, _body("DENIED", "permission_denied"), "blob", "write:packages"),
        (
            "registry.gitlab.com",
            400,
            _body("MANIFEST_INVALID", "manifest invalid"),
            "manifest",
            "GitLab's container registry rejects the Wasm config media type",
        ),
        (
            "123.dkr.ecr.us-east-1.amazonaws.com",
            400,
            b"{}",
            "manifest",
            "ECR rejects some manifest fields",
        ),
        ("example.com", 404, _body("NAME_UNKNOWN", "repo"), "blob", "does not exist"),
        ("example.com", 413, b"", "blob", "HATCH_WASM_OCI_CHUNKED_ABOVE"),
        ("example.com", 403, b"", "blob", "docker config X may not push"),
    ],
)
def test_hints(host: str, status: int, body: bytes, what: str, expected: str) -> None:
    error = http_error(
        status,
        body,
        action="pushing",
        host=host,
        repository="acme/app",
        what=what,
        credential_source="docker config X",
        anonymous=False,
    )
    text = str(error)
    assert expected in text
    assert "\n" not in text
    assert f"HTTP {status}" in text


def test_registry_token_from_environment(
    registry_token: RegistryServer, tiny_component: Path, tmp_path: Path
) -> None:
    tokens = token_server(registry_token)
    layout = pack_layout(tiny_component, tmp_path / "layout", tags=("t",)).layout
    repo = unique_repo()
    token = tokens.sign("ci", [{"type": "repository", "name": repo, "actions": ["pull", "push"]}])
    env = clean_env(tmp_path / "home", HATCH_WASM_OCI_TOKEN=token)
    ok = plain_push(layout, f"{registry_token.address}/{repo}", env)
    assert ok.returncode == 0, ok.stderr
    assert token not in ok.stdout + ok.stderr
    assert skopeo_raw(registry_token, f"{repo}:t") == OciLayout.open(layout).manifest_bytes("t")
    other = unique_repo()
    denied = plain_push(layout, f"{registry_token.address}/{other}", env)
    assert denied.returncode == 2
    assert "HATCH_WASM_OCI_TOKEN environment variable were rejected" in denied.stderr
    assert token not in denied.stdout + denied.stderr


def test_progress_on_a_terminal_in_ci_logs_and_as_json(
    registry_anon: RegistryServer, tiny_component: Path, tmp_path: Path
) -> None:
    """A 24 MiB push: a live line on a terminal; plain progress lines and per-blob outcomes in a
    CI log (no terminal); nothing with --quiet; --format json on stdout matches the registry;
    pull shows progress too."""
    wasm = padded_component(tiny_component, tmp_path / "p.wasm", 24 << 20)
    layout = pack_layout(wasm, tmp_path / "layout", tags=("p",)).layout
    layer = OciLayout.open(layout).layer("p")
    repo = unique_repo()
    ref = f"{registry_anon.address}/{repo}"
    ci = clean_env(tmp_path / "home", CI="true")
    logged = plain_push(layout, ref, ci)
    assert logged.returncode == 0, logged.stderr
    lines = logged.stderr.splitlines()
    progress = [line for line in lines if line.startswith(f"uploading {layer.digest[:19]}")]
    assert len(progress) >= 5 and "(100%)" in progress[-1] and "\r" not in logged.stderr
    assert f"blob {layer.digest[:19]} 24.0 MiB uploaded" in lines

    again = plain_push(layout, ref, ci, "--format", "json")
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert f"blob {layer.digest[:19]} 24.0 MiB exists" in again.stderr.splitlines()
    outcomes = {b["digest"]: b["outcome"] for b in summary["blobs"]}
    assert outcomes[layer.digest] == "exists"
    (entry,) = summary["references"]
    raw = skopeo_raw(registry_anon, f"{repo}:p")
    assert entry["reference"] == f"{ref}:p"
    assert entry["digest"] == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert entry["size"] == len(raw)

    quiet = plain_push(layout, f"{registry_anon.address}/{unique_repo()}", ci, "--quiet")
    assert quiet.returncode == 0 and quiet.stderr == ""

    pulled = run_cli(
        "pull", f"{ref}:p", "-o", tmp_path / "out", "--plain-http", "--format", "json", env=ci
    )
    assert pulled.returncode == 0, pulled.stderr
    assert json.loads(pulled.stdout)["digest"] == entry["digest"]
    assert [line for line in pulled.stderr.splitlines() if line.startswith("downloading ")]
    assert f"blob {layer.digest[:19]} 24.0 MiB downloaded" in pulled.stderr.splitlines()

    main_fd, tty_fd = os.openpty()
    try:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "hatch_wasm_oci",
                "push",
                str(layout),
                f"{registry_anon.address}/{unique_repo()}",
                "--plain-http",
            ],
            stdout=subprocess.PIPE,
            stderr=tty_fd,
            env=clean_env(tmp_path / "home2"),  # a fresh blob cache: upload, not mount
            timeout=120,
            check=False,
        )
        os.close(tty_fd)
        chunks = []
        while True:
            try:
                data = os.read(main_fd, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(main_fd)
    assert proc.returncode == 0
    shown = b"".join(chunks).decode(errors="replace")
    assert "\r\x1b[Kuploading sha256:" in shown and "MiB/s" in shown
    assert proc.stdout.decode().startswith(f"{registry_anon.address}/")


def _password_grant(tokens: TokenServer, user: str, password: str) -> str:
    """The refresh token ``docker login`` would obtain (password grant, offline access)."""
    form = {
        "grant_type": "password",
        "service": tokens.service,
        "client_id": "test-login",
        "access_type": "offline",
        "username": user,
        "password": password,
    }
    request = urllib.request.Request(
        tokens.realm,
        data=urllib.parse.urlencode(form).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        payload = json.load(answer)
    assert payload["access_token"].count(".") == 2
    refresh = payload["refresh_token"]
    assert isinstance(refresh, str)
    return refresh


def _identity_env(source: str, registry: str, refresh: str, tmp_path: Path) -> dict[str, str]:
    """A CLI environment whose docker config holds ``refresh`` as an identity token."""
    if source == "config":
        entry = {"auth": _b64("<token>:"), "identitytoken": refresh}
        config: dict[str, object] = {"auths": {registry: entry}}
        path = "/usr/bin:/bin"
    else:
        helper = tmp_path / "bin" / "docker-credential-oauth"
        helper.parent.mkdir(parents=True, exist_ok=True)
        helper.write_text(
            f'#!/bin/sh\nread s\nprintf \'{{"Username":"<token>","Secret":"{refresh}"}}\'\n'
        )
        helper.chmod(0o755)
        config = {"credHelpers": {registry: "oauth"}}
        path = f"{helper.parent}:/usr/bin:/bin"
    (tmp_path / "docker").mkdir(parents=True, exist_ok=True)
    (tmp_path / "docker" / "config.json").write_text(json.dumps(config))
    env = clean_env(tmp_path / "home", DOCKER_CONFIG=str(tmp_path / "docker"))
    env["PATH"] = f"{path}:{os.path.dirname(sys.executable)}"
    return env


@pytest.mark.parametrize("source", ["config", "helper"])
def test_push_with_identity_token(
    source: str, registry_token: RegistryServer, tiny_component: Path, tmp_path: Path
) -> None:
    tokens = token_server(registry_token)
    assert registry_token.username and registry_token.password
    refresh = _password_grant(tokens, registry_token.username, registry_token.password)
    layout = pack_layout(tiny_component, tmp_path / "layout", tags=("r",)).layout
    env = _identity_env(source, registry_token.address, refresh, tmp_path)
    repo = unique_repo()
    before, forms_before = tokens.refreshed, len(tokens.forms)
    ok = plain_push(layout, f"{registry_token.address}/{repo}", env)
    assert ok.returncode == 0, ok.stderr
    assert refresh not in ok.stdout + ok.stderr
    assert tokens.refreshed - before >= 1
    form = tokens.forms[forms_before]
    assert form["grant_type"] == ["refresh_token"]
    assert form["service"] == [tokens.service]
    assert f"repository:{repo}:pull,push" in form["scope"][0].split()
    assert skopeo_raw(registry_token, f"{repo}:r") == OciLayout.open(layout).manifest_bytes("r")

    stale = "refresh-" + "0" * 32
    env = _identity_env(source, registry_token.address, stale, tmp_path / "stale")
    rejected = tokens.rejected
    denied = plain_push(layout, f"{registry_token.address}/{repo}", env)
    assert denied.returncode == 2
    assert tokens.rejected == rejected + 1
    assert "HTTP 400" in denied.stderr and "were rejected" in denied.stderr
    assert ("docker-credential-oauth" if source == "helper" else "config.json") in denied.stderr
    assert len(denied.stderr.strip().splitlines()) == 1
    assert stale not in denied.stdout + denied.stderr


def test_credentials_never_go_to_a_plain_http_realm_of_an_https_registry(
    tiny_component: Path, tmp_path: Path
) -> None:
    """An HTTPS registry naming an ``http://`` token realm: the password is not sent there."""
    from tests.registry_fixtures import (
        TOKEN_ISSUER,
        TOKEN_SERVICE,
        make_ca_and_server_cert,
        make_signing_cert,
        run_cli,
        start_registry,
    )

    signing_cert, signing_key = make_signing_cert(tmp_path / "signing")
    tokens = TokenServer(
        signing_key,
        signing_cert,
        service=TOKEN_SERVICE,
        issuer=TOKEN_ISSUER,
        users={"alice": "s3cret-Pa55"},
    ).start()
    ca, cert, key = make_ca_and_server_cert(tmp_path / "pki")
    auth = (
        "  token:\n"
        f"    realm: {tokens.realm}\n"
        f"    service: {TOKEN_SERVICE}\n"
        f"    issuer: {TOKEN_ISSUER}\n"
        f"    rootcertbundle: {signing_cert}\n"
    )
    server = start_registry(tmp_path / "registry", auth=auth, tls=(cert, key))
    try:
        layout = pack_layout(tiny_component, tmp_path / "layout", tags=("t",)).layout
        env = clean_env(
            tmp_path / "home",
            HATCH_WASM_OCI_USERNAME="alice",
            HATCH_WASM_OCI_PASSWORD="s3cret-Pa55",
        )
        proc = run_cli("push", layout, f"{server.address}/x/y", "--ca-file", ca, env=env)
        assert proc.returncode == 2
        assert proc.stderr.count("\n") == 1, proc.stderr
        assert "refused to send credentials" in proc.stderr
        assert "HATCH_WASM_OCI_USERNAME" in proc.stderr  # the source, never the value
        assert "s3cret-Pa55" not in proc.stdout + proc.stderr
        assert tokens.issued == 0 and tokens.rejected == 0  # the token server heard nothing
    finally:
        server.stop()
        tokens.stop()
