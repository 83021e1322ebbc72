"""Interoperability with oras-py (PyPI ``oras``), an independent client, against the real local
registry: oras-py pulls what we push, and we pull what oras-py pushes, byte for byte."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from hatch_wasm_oci.oci.layout_reader import OciLayout
from tests.registry_fixtures import (
    RegistryServer,
    clean_env,
    pack_layout,
    plain_pull,
    plain_push,
    skopeo_raw,
    unique_repo,
)

oras_client = pytest.importorskip("oras.client")


def test_oras_pulls_what_we_push(
    registry_anon: RegistryServer, tiny_component: Path, tmp_path: Path
) -> None:
    layout = pack_layout(tiny_component, tmp_path / "layout", tags=("1.0.0",)).layout
    repo = unique_repo("oras")
    pushed = plain_push(layout, f"{registry_anon.address}/{repo}", clean_env(tmp_path / "home"))
    assert pushed.returncode == 0, pushed.stderr

    client = oras_client.OrasClient(hostname=registry_anon.address, insecure=True)
    target = f"{registry_anon.address}/{repo}:1.0.0"
    files = client.pull(target=target, outdir=str(tmp_path / "oras-out"))
    assert [Path(f).name for f in files] == ["tiny.wasm"]
    assert Path(files[0]).read_bytes() == tiny_component.read_bytes()
    ours = OciLayout.open(layout).manifest_bytes("1.0.0")
    assert client.get_manifest(target) == json.loads(ours)
    assert skopeo_raw(registry_anon, f"{repo}:1.0.0") == ours


def test_we_pull_what_oras_pushes(
    registry_anon: RegistryServer,
    tiny_component: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The Wasm config oras-py pushes is the one our pack writes for this component.
    packed = pack_layout(tiny_component, tmp_path / "layout", tags=("t",))
    opened = OciLayout.open(packed.layout)
    config_digest = json.loads(opened.manifest_bytes("t"))["config"]["digest"]
    work = tmp_path / "work"
    work.mkdir()
    (work / "tiny.wasm").write_bytes(tiny_component.read_bytes())
    (work / "config.json").write_bytes(opened.blob_path(config_digest).read_bytes())
    monkeypatch.chdir(work)  # oras-py wants paths relative to the working directory

    repo = unique_repo("oras")
    client = oras_client.OrasClient(hostname=registry_anon.address, insecure=True)
    response = client.push(
        target=f"{registry_anon.address}/{repo}:2.0.0",
        files=["tiny.wasm:application/wasm"],
        manifest_config="config.json:application/vnd.wasm.config.v0+json",
        quiet=True,
    )
    assert response.status_code == 201

    out = tmp_path / "pulled"
    pulled = plain_pull(f"{registry_anon.address}/{repo}:2.0.0", out, clean_env(tmp_path / "h"))
    assert pulled.returncode == 0, pulled.stderr
    assert (out / "tiny.wasm").read_bytes() == tiny_component.read_bytes()
    raw = skopeo_raw(registry_anon, f"{repo}:2.0.0")
    ours = OciLayout.open(out / "layout")
    assert ours.manifest_bytes("2.0.0") == raw
    assert f"@sha256:{hashlib.sha256(raw).hexdigest()}" in pulled.stdout
    ours.verify()
