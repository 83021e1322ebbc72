"""Pushes through a fault-injecting loopback proxy: transient faults heal, persistent ones fail
clearly and leave no tag behind."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from hatch_wasm_oci.oci.layout_reader import OciLayout
from tests.fault_proxy import FaultProxy, Rule
from tests.registry_fixtures import (
    RegistryServer,
    blob_in_storage,
    clean_env,
    pack_layout,
    padded_component,
    plain_push,
    skopeo_raw,
    skopeo_tags,
    token_server,
    unique_repo,
    user_env,
)

UPLOAD = r"/blobs/uploads/"


@pytest.fixture(scope="module")
def fault_layout(tiny_component: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ~2 MiB component layout (big enough to reset mid-blob)."""
    root = tmp_path_factory.mktemp("faults")
    wasm = padded_component(tiny_component, root / "f.wasm", 2 * (1 << 20))
    return pack_layout(wasm, root / "layout", tags=("v1",)).layout


def _push(layout: Path, ref: str, tmp_path: Path, **env: str) -> tuple[int, str, str]:
    result = plain_push(layout, ref, clean_env(tmp_path / "home", **env))
    return result.returncode, result.stdout, result.stderr


def _assert_pushed(server: RegistryServer, layout: Path, repo: str) -> None:
    opened = OciLayout.open(layout)
    assert skopeo_raw(server, f"{repo}:v1") == opened.manifest_bytes("v1")
    layer = opened.layer("v1")
    assert (
        blob_in_storage(server, layer.digest).read_bytes()
        == opened.blob_path(layer.digest).read_bytes()
    )


def test_transient_503s_heal(
    registry_anon: RegistryServer, fault_layout: Path, tmp_path: Path
) -> None:
    repo = unique_repo()
    with FaultProxy(registry_anon.address, lifetime=120) as proxy:
        head = proxy.add(Rule("status", method="HEAD", status=503, times=2))
        put = proxy.add(Rule("status", method="PUT", path="/manifests/", status=502, times=1))
        gateway = proxy.add(Rule("status", method="POST", path=UPLOAD, status=504, times=1))
        code, _, err = _push(fault_layout, f"{proxy.address}/{repo}", tmp_path)
    assert code == 0, err
    assert (head.fired, put.fired, gateway.fired) == (2, 1, 1)
    _assert_pushed(registry_anon, fault_layout, repo)


def test_429_retry_after_is_honoured(
    registry_anon: RegistryServer, fault_layout: Path, tmp_path: Path
) -> None:
    repo = unique_repo()
    with FaultProxy(registry_anon.address, lifetime=120) as proxy:
        rule = proxy.add(
            Rule("status", method="POST", path=UPLOAD, status=429, retry_after="2", times=1)
        )
        started = time.monotonic()
        code, _, err = _push(fault_layout, f"{proxy.address}/{repo}", tmp_path)
        elapsed = time.monotonic() - started
        statuses = [(s.method, s.status) for s in proxy.seen]
    assert code == 0, err
    assert rule.fired == 1
    assert elapsed >= 2.0
    assert ("POST", 429) in statuses
    _assert_pushed(registry_anon, fault_layout, repo)


@pytest.mark.parametrize("chunked", [False, True])
def test_connection_reset_mid_blob_heals(
    chunked: bool, registry_anon: RegistryServer, fault_layout: Path, tmp_path: Path
) -> None:
    repo = unique_repo()
    extra = {"HATCH_WASM_OCI_CHUNKED_ABOVE": "512k"} if chunked else {}
    method = "PATCH" if chunked else "PUT"
    with FaultProxy(registry_anon.address, lifetime=120) as proxy:
        rule = proxy.add(Rule("reset", method=method, path=UPLOAD, after_bytes=300_000, times=1))
        code, _, err = _push(fault_layout, f"{proxy.address}/{repo}", tmp_path, **extra)
        resets = [s for s in proxy.seen if s.fault == "reset"]
    assert code == 0, err
    assert rule.fired == 1 and len(resets) == 1
    _assert_pushed(registry_anon, fault_layout, repo)


def test_token_expiring_mid_push_reauthenticates(
    registry_token: RegistryServer, fault_layout: Path, tmp_path: Path
) -> None:
    tokens = token_server(registry_token)
    creds = user_env(registry_token)
    repo = unique_repo()
    with FaultProxy(registry_token.address, lifetime=120) as proxy:
        # The layer upload (the larger blob) finds its token expired: 401, and that token is
        # refused from then on.
        rule = proxy.add(Rule("expire-token", method="PUT", path=UPLOAD, times=1))
        before = tokens.issued
        code, out, err = _push(fault_layout, f"{proxy.address}/{repo}", tmp_path, **creds)
        expired = [s for s in proxy.seen if s.fault in ("expire-token", "expired")]
    assert code == 0, err
    assert rule.fired == 1 and expired
    assert tokens.issued - before >= 2  # the first token, then one after the expiry
    assert creds["HATCH_WASM_OCI_PASSWORD"] not in out + err
    _assert_pushed(registry_token, fault_layout, repo)


def test_token_refused_again_after_reauth_fails_clearly(
    registry_token: RegistryServer, fault_layout: Path, tmp_path: Path
) -> None:
    creds = user_env(registry_token)
    repo = unique_repo()
    with FaultProxy(registry_token.address, lifetime=120) as proxy:
        proxy.add(Rule("expire-token", method="PUT", path=UPLOAD, times=None))
        code, out, err = _push(fault_layout, f"{proxy.address}/{repo}", tmp_path, **creds)
        expiries = [s for s in proxy.seen if s.fault == "expire-token"]
    assert code == 2
    assert "HTTP 401" in err and "hint" in err
    assert len(err.strip().splitlines()) == 1
    assert len(expiries) <= 4
    assert creds["HATCH_WASM_OCI_PASSWORD"] not in out + err
    assert skopeo_tags(registry_token, repo) == []


@pytest.mark.parametrize(
    "rule",
    [
        Rule("status", method="PUT", path="/manifests/", status=503, times=None),
        Rule("reset", method="PUT", path=UPLOAD, after_bytes=100_000, times=None),
        Rule("status", method="POST", path=UPLOAD, status=429, retry_after="1", times=None),
    ],
    ids=["503-on-manifest", "reset-on-blob", "429-forever"],
)
def test_persistent_faults_fail_clearly_without_tags(
    rule: Rule, registry_anon: RegistryServer, fault_layout: Path, tmp_path: Path
) -> None:
    repo = unique_repo()
    with FaultProxy(registry_anon.address, lifetime=120) as proxy:
        proxy.add(Rule(**{k: v for k, v in vars(rule).items() if k != "fired"}))
        started = time.monotonic()
        code, out, err = _push(
            fault_layout,
            f"{proxy.address}/{repo}",
            tmp_path,
            HATCH_WASM_OCI_MAX_RETRY_SECONDS="3",
        )
        elapsed = time.monotonic() - started
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert "failed" in err and "Traceback" not in err
    assert elapsed < 30
    assert skopeo_tags(registry_anon, repo) == []


def test_413_names_the_chunk_setting(
    registry_anon: RegistryServer, fault_layout: Path, tmp_path: Path
) -> None:
    repo = unique_repo()
    with FaultProxy(registry_anon.address, lifetime=60) as proxy:
        proxy.add(Rule("status", method="PUT", path=UPLOAD, status=413, times=None))
        code, _, err = _push(fault_layout, f"{proxy.address}/{repo}", tmp_path)
    assert code == 2
    assert "HTTP 413" in err and "HATCH_WASM_OCI_CHUNKED_ABOVE" in err
    assert skopeo_tags(registry_anon, repo) == []
