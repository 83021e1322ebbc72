"""``hatch-wasm-oci push/pull`` against real distribution registries on 127.0.0.1.

skopeo is the oracle for what the registry holds; wasmtime runs what comes back.
"""

from __future__ import annotations

import base64
import hashlib
import json
import stat
from pathlib import Path

import pytest

from hatch_wasm_oci.oci.layout_reader import OciLayout
from tests.fault_proxy import FaultProxy
from tests.registry_fixtures import (
    RegistryServer,
    blob_in_storage,
    clean_env,
    pack_layout,
    padded_component,
    plain_pull,
    plain_push,
    push_own_layout,
    run_cli,
    skopeo_raw,
    skopeo_tags,
    unique_repo,
    user_env,
)


@pytest.fixture(scope="module")
def tiny_layout(tiny_component: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A layout of ``tiny_component`` tagged 1.0.0 and latest."""
    return pack_layout(tiny_component, tmp_path_factory.mktemp("tiny") / "layout").layout


@pytest.fixture(scope="module")
def padded_layout(tiny_component: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A layout of ``tiny_component`` grown to ~3 MiB with random bytes (for chunked uploads)."""
    root = tmp_path_factory.mktemp("padded")
    wasm = padded_component(tiny_component, root / "padded.wasm", 3 * (1 << 20) + 12345)
    return pack_layout(wasm, root / "layout", tags=("big",)).layout


def _run_wasm(path: Path) -> int:
    from wasmtime import Engine, Store
    from wasmtime.component import Component, Linker

    engine = Engine()
    store = Store(engine)
    component = Component.from_file(engine, str(path))
    linker = Linker(engine)
    linker.define_unknown_imports_as_traps(component)  # `add` needs no host import
    instance = linker.instantiate(store, component)
    add = instance.get_func(store, "add")
    assert add is not None
    return int(add(store, 40, 2))


def _layout_manifests(layout: Path) -> dict[str, bytes]:
    opened = OciLayout.open(layout)
    return {tag: opened.manifest_bytes(tag) for tag in opened.tags()}


def test_round_trip_is_byte_identical_and_runs(
    registry_anon: RegistryServer, tiny_layout: Path, tiny_component: Path, tmp_path: Path
) -> None:
    env = clean_env(tmp_path / "home")
    repo = unique_repo()
    summary = tmp_path / "summary.json"
    pushed = plain_push(tiny_layout, f"{registry_anon.address}/{repo}", env, "--summary", summary)
    assert pushed.returncode == 0, pushed.stderr
    manifests = _layout_manifests(tiny_layout)
    assert set(manifests) == {"1.0.0", "latest"}
    lines = pushed.stdout.splitlines()
    for tag, data in manifests.items():
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        assert f"{registry_anon.address}/{repo}:{tag}@{digest}" in lines
        assert skopeo_raw(registry_anon, f"{repo}:{tag}") == data
    report = json.loads(summary.read_text())
    assert {r["reference"] for r in report["references"]} == {
        f"{registry_anon.address}/{repo}:{t}" for t in manifests
    }
    assert report["stats"]["blobsUploaded"] == 2

    out = tmp_path / "pulled"
    pulled = plain_pull(f"{registry_anon.address}/{repo}:1.0.0", out, env)
    assert pulled.returncode == 0, pulled.stderr
    wasm = out / "tiny.wasm"
    assert wasm.read_bytes() == tiny_component.read_bytes()
    assert _run_wasm(wasm) == 42
    OciLayout.open(out / "layout").verify()
    assert OciLayout.open(out / "layout").manifest_bytes("1.0.0") == manifests["1.0.0"]
    assert not [p for p in out.rglob(".*")]


def test_pull_by_digest_and_missing_tag(
    registry_anon: RegistryServer, tiny_layout: Path, tmp_path: Path
) -> None:
    env = clean_env(tmp_path / "home")
    repo = unique_repo()
    assert plain_push(tiny_layout, f"{registry_anon.address}/{repo}:only", env).returncode == 0
    digest = "sha256:" + hashlib.sha256(_layout_manifests(tiny_layout)["latest"]).hexdigest()
    ok = plain_pull(f"{registry_anon.address}/{repo}@{digest}", tmp_path / "d", env)
    assert ok.returncode == 0, ok.stderr
    assert f"{registry_anon.address}/{repo}@{digest}" in ok.stdout
    missing = plain_pull(f"{registry_anon.address}/{repo}:nope", tmp_path / "m", env)
    assert missing.returncode == 2
    assert "has no manifest nope" in missing.stderr
    assert not (tmp_path / "m").exists()


def test_repush_sends_no_blob_bytes_and_mounts_across_repositories(
    registry_anon: RegistryServer, tiny_layout: Path, tmp_path: Path
) -> None:
    env = clean_env(tmp_path / "home")
    repo_a, repo_b = unique_repo("a"), unique_repo("b")
    with FaultProxy(registry_anon.address, lifetime=120) as proxy:
        first = plain_push(tiny_layout, f"{proxy.address}/{repo_a}", env)
        assert first.returncode == 0, first.stderr
        assert proxy.upload_bytes > 0
        proxy.clear()
        again = plain_push(
            tiny_layout, f"{proxy.address}/{repo_a}", env, "--summary", tmp_path / "again.json"
        )
        assert again.returncode == 0, again.stderr
        assert proxy.upload_bytes == 0
        assert not [s for s in proxy.seen if s.method in ("PATCH", "POST")]
        assert (
            json.loads((tmp_path / "again.json").read_text())["stats"]["blobsAlreadyPresent"] == 2
        )
        # Another repository on the same registry: blobs are mounted from repo_a (remembered in
        # the blob-location cache under XDG_CACHE_HOME), not uploaded.
        proxy.clear()
        other = plain_push(
            tiny_layout, f"{proxy.address}/{repo_b}:x", env, "--summary", tmp_path / "b.json"
        )
        assert other.returncode == 0, other.stderr
        assert proxy.upload_bytes == 0
        mounts = [s for s in proxy.seen if s.method == "POST" and "mount=" in s.path]
        assert len(mounts) == 2 and all(s.status == 201 for s in mounts)
    assert json.loads((tmp_path / "b.json").read_text())["stats"]["blobsMounted"] == 2
    assert skopeo_raw(registry_anon, f"{repo_b}:x") == _layout_manifests(tiny_layout)["latest"]


def test_one_push_to_two_repositories_mounts_without_a_cache_file(
    registry_anon: RegistryServer, tiny_layout: Path, tmp_path: Path
) -> None:
    # XDG_CACHE_HOME under a regular file: the blob-location cache can be neither read nor
    # written, so the second repository's mounts come from what this run pushed.
    (tmp_path / "file").write_bytes(b"")
    env = clean_env(tmp_path / "home", XDG_CACHE_HOME=str(tmp_path / "file" / "cache"))
    repo_a, repo_b = unique_repo("a"), unique_repo("b")
    refs = [f"{registry_anon.address}/{repo}:t" for repo in (repo_a, repo_b)]
    result = run_cli(
        "push", tiny_layout, *refs, "--plain-http", "--summary", tmp_path / "s.json", env=env
    )
    assert result.returncode == 0, result.stderr
    stats = json.loads((tmp_path / "s.json").read_text())["stats"]
    assert (stats["blobsUploaded"], stats["blobsMounted"]) == (2, 2)
    for repo in (repo_a, repo_b):
        assert skopeo_raw(registry_anon, f"{repo}:t") == _layout_manifests(tiny_layout)["latest"]


def test_chunked_upload_above_threshold(
    registry_anon: RegistryServer, padded_layout: Path, tmp_path: Path
) -> None:
    env = clean_env(tmp_path / "home", HATCH_WASM_OCI_CHUNKED_ABOVE="1M")
    repo = unique_repo()
    with FaultProxy(registry_anon.address, lifetime=120) as proxy:
        result = plain_push(padded_layout, f"{proxy.address}/{repo}", env)
        assert result.returncode == 0, result.stderr
        patches = [s for s in proxy.seen if s.method == "PATCH"]
    assert len(patches) >= 1 and all(s.status == 202 for s in patches)
    layout = OciLayout.open(padded_layout)
    layer = layout.layer("big")
    assert skopeo_raw(registry_anon, f"{repo}:big") == layout.manifest_bytes("big")
    stored = blob_in_storage(registry_anon, layer.digest).read_bytes()
    assert stored == layout.blob_path(layer.digest).read_bytes()


def test_dry_run_contacts_nothing(
    registry_anon: RegistryServer, tiny_layout: Path, tmp_path: Path
) -> None:
    env = clean_env(tmp_path / "home")
    repo = unique_repo()
    with FaultProxy(registry_anon.address, lifetime=60) as proxy:
        result = run_cli(
            "push",
            tiny_layout,
            f"{proxy.address}/{repo}",
            "--dry-run",
            "--summary",
            tmp_path / "s.json",
            env=env,
        )
        assert result.returncode == 0, result.stderr
        assert proxy.seen == []
    for tag, data in _layout_manifests(tiny_layout).items():
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        assert f"would push {proxy.address}/{repo}:{tag}@{digest}" in result.stdout
    assert "application/wasm" in result.stdout
    assert json.loads((tmp_path / "s.json").read_text())["dryRun"] is True
    assert skopeo_tags(registry_anon, repo) == []


def test_tampered_blob_on_pull_is_rejected(
    registry_anon: RegistryServer, tiny_component: Path, tmp_path: Path
) -> None:
    env = clean_env(tmp_path / "home")
    repo = unique_repo()
    layout = push_own_layout(registry_anon, tiny_component, tmp_path, 1000, repo)
    stored = blob_in_storage(registry_anon, layout.layer.digest)
    data = bytearray(stored.read_bytes())
    data[-1] ^= 0xFF
    stored.chmod(stat.S_IRUSR | stat.S_IWUSR)
    stored.write_bytes(bytes(data))
    out = tmp_path / "out"
    result = plain_pull(f"{registry_anon.address}/{repo}:t", out, env)
    assert result.returncode == 2
    assert "does not match its digest" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()
    # An existing output directory keeps nothing from the failed pull either.
    out.mkdir()
    again = plain_pull(f"{registry_anon.address}/{repo}:t", out, env)
    assert again.returncode == 2
    assert list(out.iterdir()) == []


def test_tampered_manifest_on_pull_is_rejected(
    registry_anon: RegistryServer, tiny_component: Path, tmp_path: Path
) -> None:
    env = clean_env(tmp_path / "home")
    repo = unique_repo()
    layout = push_own_layout(registry_anon, tiny_component, tmp_path, 777, repo)
    stored = blob_in_storage(registry_anon, layout.manifest.digest)
    text = stored.read_bytes().replace(b'"schemaVersion":2', b'"schemaVersion": 2')
    assert text != stored.read_bytes()
    stored.write_bytes(text)
    by_tag = plain_pull(f"{registry_anon.address}/{repo}:t", tmp_path / "a", env)
    assert by_tag.returncode == 2
    assert "hashes to" in by_tag.stderr
    by_digest = plain_pull(
        f"{registry_anon.address}/{repo}@{layout.manifest.digest}", tmp_path / "b", env
    )
    assert by_digest.returncode == 2
    assert "hashes to" in by_digest.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


# -- TLS ----------------------------------------------------------------------------------------


def test_tls_with_ca_file(registry_tls: RegistryServer, tiny_layout: Path, tmp_path: Path) -> None:
    env = clean_env(tmp_path / "home")
    repo = unique_repo()
    ref = f"{registry_tls.address}/{repo}:secure"
    ca = registry_tls.ca_file
    assert ca is not None
    untrusted = run_cli("push", tiny_layout, ref, env=env)
    assert untrusted.returncode == 2
    assert "TLS verification" in untrusted.stderr and "--ca-file" in untrusted.stderr
    plain = plain_push(tiny_layout, ref, env)
    assert plain.returncode == 2
    assert "speaks HTTPS" in plain.stderr and "drop --plain-http" in plain.stderr
    result = run_cli("push", tiny_layout, ref, "--ca-file", ca, env=env)
    assert result.returncode == 0, result.stderr
    assert skopeo_raw(registry_tls, f"{repo}:secure") == _layout_manifests(tiny_layout)["latest"]
    out = tmp_path / "out"
    pulled = run_cli("pull", ref, "-o", out, "--ca-file", ca, env=env)
    assert pulled.returncode == 0, pulled.stderr


def test_plain_http_against_tls_registry_is_not_silently_downgraded(
    registry_anon: RegistryServer, tiny_layout: Path, tmp_path: Path
) -> None:
    result = run_cli(
        "push",
        tiny_layout,
        f"{registry_anon.address}/{unique_repo()}",
        env=clean_env(tmp_path / "home"),
    )
    assert result.returncode == 2
    assert "--plain-http" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_connection_refused_is_clear(tiny_layout: Path, tmp_path: Path) -> None:
    from tests.registry_fixtures import free_port

    result = plain_push(tiny_layout, f"127.0.0.1:{free_port()}/x/y", clean_env(tmp_path / "home"))
    assert result.returncode == 2
    assert "connection refused" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_http_proxy_from_the_environment(
    registry_anon: RegistryServer, tiny_layout: Path, tmp_path: Path
) -> None:
    """http_proxy carries every request (absolute-form targets); no_proxy bypasses it."""
    repo = unique_repo()
    with FaultProxy(registry_anon.address, lifetime=120) as proxy:
        via = clean_env(tmp_path / "home", http_proxy=f"http://{proxy.address}")
        result = plain_push(tiny_layout, f"{registry_anon.address}/{repo}", via)
        assert result.returncode == 0, result.stderr
        paths = [s.path for s in proxy.seen]
        assert any("/manifests/" in p for p in paths)
        assert all(p.startswith(f"http://{registry_anon.address}/v2/") for p in paths)
        proxy.clear()
        bypass = dict(via, no_proxy="127.0.0.1")
        again = plain_push(tiny_layout, f"{registry_anon.address}/{unique_repo()}", bypass)
        assert again.returncode == 0, again.stderr
        assert proxy.seen == []
    for tag, data in _layout_manifests(tiny_layout).items():
        assert skopeo_raw(registry_anon, f"{repo}:{tag}") == data


def test_https_proxy_tunnels_tls(
    registry_tls: RegistryServer, tiny_layout: Path, tmp_path: Path
) -> None:
    """https_proxy: one CONNECT tunnel, TLS verified end to end against the registry's CA."""
    assert registry_tls.ca_file is not None
    repo = unique_repo()
    with FaultProxy(registry_tls.address, lifetime=120) as proxy:
        env = clean_env(tmp_path / "home", https_proxy=f"http://{proxy.address}")
        ref = f"{registry_tls.address}/{repo}:tunnelled"
        result = run_cli("push", tiny_layout, ref, "--ca-file", registry_tls.ca_file, env=env)
        assert result.returncode == 0, result.stderr
        assert [(s.method, s.path) for s in proxy.seen] == [("CONNECT", registry_tls.address)]
    data = _layout_manifests(tiny_layout)["latest"]
    assert skopeo_raw(registry_tls, f"{repo}:tunnelled") == data


def test_https_proxy_url_is_spoken_to_over_tls(
    registry_tls: RegistryServer, tiny_layout: Path, tmp_path: Path
) -> None:
    """https_proxy=https://…: TLS to the proxy, then a CONNECT tunnel with TLS to the registry
    inside it (the old transport spoke plaintext to such a proxy, on port 80)."""
    assert registry_tls.ca_file is not None
    pki = registry_tls.ca_file.parent
    repo = unique_repo()
    tls = (pki / "server.pem", pki / "server.key")
    with FaultProxy(registry_tls.address, lifetime=120, tls=tls) as proxy:
        env = clean_env(tmp_path / "home", https_proxy=f"https://{proxy.address}")
        ref = f"{registry_tls.address}/{repo}:tls-proxy"
        result = run_cli("push", tiny_layout, ref, "--ca-file", registry_tls.ca_file, env=env)
        assert result.returncode == 0, result.stderr
        assert [(s.method, s.path) for s in proxy.seen] == [("CONNECT", registry_tls.address)]
    data = _layout_manifests(tiny_layout)["latest"]
    assert skopeo_raw(registry_tls, f"{repo}:tls-proxy") == data


def test_requests_share_one_kept_alive_connection(
    registry_token: RegistryServer, tiny_layout: Path, tmp_path: Path
) -> None:
    """Challenges (401 with a body) and uploads reuse one connection per host."""
    repo = unique_repo()
    env = clean_env(tmp_path / "home", **user_env(registry_token))
    with FaultProxy(registry_token.address, lifetime=120) as proxy:
        pushed = plain_push(tiny_layout, f"{proxy.address}/{repo}", env)
        assert pushed.returncode == 0, pushed.stderr
        assert proxy.connections == 1 and len(proxy.seen) >= 5
        # the tag check's GET takes the challenge; the push goes on with its token
        assert (proxy.seen[0].method, proxy.seen[0].status) == ("GET", 401)
        assert ("HEAD", 404) in [(s.method, s.status) for s in proxy.seen]
        proxy.clear()
        out = tmp_path / "out"
        pulled = plain_pull(f"{proxy.address}/{repo}:1.0.0", out, env)
        assert pulled.returncode == 0, pulled.stderr
        assert ("GET", 401) in [(s.method, s.status) for s in proxy.seen]
        assert len(proxy.seen) >= 4 and proxy.connections == 1


# -- credentials --------------------------------------------------------------------------------


def _docker_config(directory: Path, config: dict[str, object]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config))
    return directory


def _auth(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize("server_name", ["registry_basic", "registry_token"])
def test_env_credentials(
    server_name: str, request: pytest.FixtureRequest, tiny_layout: Path, tmp_path: Path
) -> None:
    server: RegistryServer = request.getfixturevalue(server_name)
    assert server.username and server.password
    repo = unique_repo()
    anonymous = plain_push(tiny_layout, f"{server.address}/{repo}", clean_env(tmp_path / "anon"))
    assert anonymous.returncode == 2
    assert "no credentials were found" in anonymous.stderr
    env = clean_env(tmp_path / "home", **user_env(server))
    result = plain_push(tiny_layout, f"{server.address}/{repo}", env)
    assert result.returncode == 0, result.stderr
    assert server.password not in result.stdout + result.stderr
    assert skopeo_raw(server, f"{repo}:1.0.0") == _layout_manifests(tiny_layout)["1.0.0"]
    pulled = plain_pull(f"{server.address}/{repo}:latest", tmp_path / "o", env)
    assert pulled.returncode == 0, pulled.stderr


@pytest.mark.parametrize("server_name", ["registry_basic", "registry_token"])
def test_wrong_password_is_clear_and_secret(
    server_name: str, request: pytest.FixtureRequest, tiny_layout: Path, tmp_path: Path
) -> None:
    server: RegistryServer = request.getfixturevalue(server_name)
    wrong = "Wr0ng-pa55word-XYZZY"
    env = clean_env(
        tmp_path / "home", HATCH_WASM_OCI_USERNAME="wasm-publisher", HATCH_WASM_OCI_PASSWORD=wrong
    )
    summary = tmp_path / "summary.json"
    result = plain_push(tiny_layout, f"{server.address}/{unique_repo()}", env, "--summary", summary)
    assert result.returncode == 2
    output = result.stdout + result.stderr
    assert wrong not in output and _auth("wasm-publisher", wrong) not in output
    assert "HATCH_WASM_OCI_USERNAME/HATCH_WASM_OCI_PASSWORD" in result.stderr
    assert "rejected" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not summary.exists()


def test_docker_config_auths_with_and_without_scheme(
    registry_basic: RegistryServer, tiny_layout: Path, tmp_path: Path
) -> None:
    assert registry_basic.username and registry_basic.password
    encoded = _auth(registry_basic.username, registry_basic.password)
    for key in (registry_basic.address, f"https://{registry_basic.address}"):
        config_dir = _docker_config(
            tmp_path / key.replace("/", "_").replace(":", "_"), {"auths": {key: {"auth": encoded}}}
        )
        env = clean_env(tmp_path / "home", DOCKER_CONFIG=str(config_dir))
        result = plain_push(tiny_layout, f"{registry_basic.address}/{unique_repo()}", env)
        assert result.returncode == 0, (key, result.stderr)
    # ~/.docker/config.json when DOCKER_CONFIG is unset
    home = tmp_path / "dockerhome"
    _docker_config(home / ".docker", {"auths": {registry_basic.address: {"auth": encoded}}})
    result = plain_push(tiny_layout, f"{registry_basic.address}/{unique_repo()}", clean_env(home))
    assert result.returncode == 0, result.stderr
    # A wrong entry names the config file and the key as the source, never the secret.
    bad = _docker_config(
        tmp_path / "bad",
        {
            "auths": {
                registry_basic.address: {
                    "auth": _auth(registry_basic.username, "not-the-password-42")
                }
            }
        },
    )
    failed = plain_push(
        tiny_layout,
        f"{registry_basic.address}/{unique_repo()}",
        clean_env(tmp_path / "home", DOCKER_CONFIG=str(bad)),
    )
    assert failed.returncode == 2
    assert str(bad / "config.json") in failed.stderr
    assert "not-the-password-42" not in failed.stdout + failed.stderr


def _credential_helper(bin_dir: Path, name: str, user: str, secret: str, host: str) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / f"docker-credential-{name}"
    script.write_text(
        "#!/bin/sh\n"
        'test "$1" = get || exit 3\n'
        "read server\n"
        f'if [ "$server" = "{host}" ]; then\n'
        f'  printf \'{{"ServerURL":"%s","Username":"{user}","Secret":"{secret}"}}\' "$server"\n'
        "else\n"
        '  echo "credentials not found in native keychain"; exit 1\n'
        "fi\n"
    )
    script.chmod(0o755)


@pytest.mark.parametrize("kind", ["credHelpers", "credsStore"])
def test_docker_credential_helper(
    kind: str, registry_token: RegistryServer, tiny_layout: Path, tmp_path: Path
) -> None:
    assert registry_token.username and registry_token.password
    bin_dir = tmp_path / "bin"
    _credential_helper(
        bin_dir, "test", registry_token.username, registry_token.password, registry_token.address
    )
    config: dict[str, object] = (
        {"credHelpers": {registry_token.address: "test"}}
        if kind == "credHelpers"
        else {"credsStore": "test", "auths": {registry_token.address: {}}}
    )
    config_dir = _docker_config(tmp_path / "docker", config)
    base = clean_env(tmp_path / "home", DOCKER_CONFIG=str(config_dir))
    env = dict(base, PATH=f"{bin_dir}:{base['PATH']}")
    repo = unique_repo()
    result = plain_push(tiny_layout, f"{registry_token.address}/{repo}", env)
    assert result.returncode == 0, result.stderr
    assert registry_token.password not in result.stdout + result.stderr
    assert skopeo_raw(registry_token, f"{repo}:latest") == _layout_manifests(tiny_layout)["latest"]
    # Without the helper on PATH the error names it.
    missing = plain_push(tiny_layout, f"{registry_token.address}/{repo}", base)
    assert missing.returncode == 2
    assert "docker-credential-test" in missing.stderr and "not on PATH" in missing.stderr


def test_push_failure_leaves_no_tag(
    registry_anon: RegistryServer, padded_layout: Path, tmp_path: Path
) -> None:
    """A blob the registry refuses (digest mismatch) stops the push before any manifest."""
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(padded_layout, broken)
    layer = OciLayout.open(broken).layer("big")
    path = OciLayout.open(broken).blob_path(layer.digest)
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[100] ^= 1
    path.write_bytes(bytes(data))
    repo = unique_repo()
    result = plain_push(broken, f"{registry_anon.address}/{repo}", clean_env(tmp_path / "home"))
    assert result.returncode == 2
    assert "do not match" in result.stderr and "verify" in result.stderr
    assert skopeo_tags(registry_anon, repo) == []


def test_push_does_not_move_a_version_tag_unless_forced(
    registry_anon: RegistryServer, tiny_component: Path, tiny_layout: Path, tmp_path: Path
) -> None:
    from hatch_wasm_oci.oci.layout import pack

    repo = f"{registry_anon.address}/{unique_repo('semver')}"
    env = clean_env(tmp_path / "home")
    assert plain_push(tiny_layout, repo, env).returncode == 0
    other = tmp_path / "other"
    pack(tiny_component, other, tags=("1.0.0", "latest"), annotations={"org.example.x": "y"})
    old = "sha256:" + hashlib.sha256(_layout_manifests(tiny_layout)["1.0.0"]).hexdigest()
    new = "sha256:" + hashlib.sha256(_layout_manifests(other)["1.0.0"]).hexdigest()
    refused = plain_push(other, repo, env)
    assert refused.returncode == 2
    assert refused.stderr == (
        f"hatch-wasm-oci: {repo}:1.0.0 already names {old}, not {new}; a version tag does not "
        "move — hint: publish a new version, or --force moves it\n"
    )
    path = repo.split("/", 1)[1]
    assert skopeo_raw(registry_anon, f"{path}:latest") == _layout_manifests(tiny_layout)["latest"]
    latest = plain_push(other, f"{repo}:latest", env)
    assert latest.returncode == 0, latest.stderr
    assert f"moved {repo}:latest from {old} to {new}" in latest.stderr.splitlines()
    forced = plain_push(other, repo, env, "--force")
    assert forced.returncode == 0, forced.stderr
    assert skopeo_raw(registry_anon, f"{path}:1.0.0") == _layout_manifests(other)["1.0.0"]


def test_tags_lists_a_repository_and_a_missing_tag_or_repository_is_told_apart(
    registry_anon: RegistryServer, tiny_layout: Path, tmp_path: Path
) -> None:
    env = clean_env(tmp_path / "home")
    repo = f"{registry_anon.address}/{unique_repo('tags')}"
    assert plain_push(tiny_layout, repo, env).returncode == 0
    assert plain_push(tiny_layout, f"{repo}:1.0.0-rc.1", env).returncode == 0
    listed = run_cli("tags", repo, "--plain-http", env=env)
    assert listed.returncode == 0, listed.stderr
    assert sorted(listed.stdout.splitlines()) == sorted(
        skopeo_tags(registry_anon, repo.split("/", 1)[1])
    ) == ["1.0.0", "1.0.0-rc.1", "latest"]
    as_json = json.loads(run_cli("tags", repo, "--plain-http", "--format", "json", env=env).stdout)
    assert as_json["repository"] == repo
    assert sorted(as_json["tags"]) == ["1.0.0", "1.0.0-rc.1", "latest"]

    missing_repo = f"{registry_anon.address}/{unique_repo('none')}"
    gone = run_cli("tags", missing_repo, "--plain-http", env=env)
    assert gone.returncode == 2
    assert gone.stderr == (
        f"hatch-wasm-oci: the repository {missing_repo} does not exist (check the name)\n"
    )
    pulled = plain_pull(f"{missing_repo}:1.0.0", tmp_path / "a", env)
    assert pulled.returncode == 2
    assert pulled.stderr == (
        f"hatch-wasm-oci: pulling {missing_repo}:1.0.0 failed: the repository {missing_repo} "
        "does not exist (check the name)\n"
    )
    no_tag = plain_pull(f"{repo}:1.0.1", tmp_path / "b", env)
    assert no_tag.returncode == 2
    assert no_tag.stderr.startswith(
        f"hatch-wasm-oci: pulling {repo}:1.0.1 failed: {repo} has no manifest 1.0.1; its tags "
        "nearest 1.0.1: 1.0.0"
    )
    assert "latest" not in no_tag.stderr
    assert not (tmp_path / "b").exists()
    with_tag = run_cli("tags", f"{repo}:1.0.0", "--plain-http", env=env)
    assert with_tag.returncode == 2 and "without a tag or digest" in with_tag.stderr
