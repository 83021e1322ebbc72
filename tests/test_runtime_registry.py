"""``hatch-wasm-oci run`` of a registry reference: the example component pushed to a real
registry on 127.0.0.1, run by tag and by digest through the local content store."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from hatch_wasm_oci.oci.media_types import MANIFEST
from tests.hatch_fixtures import LAYOUT, manifest_of
from tests.registry_fixtures import RegistryServer, clean_env, plain_push, run_cli, unique_repo

pytestmark = pytest.mark.slow

ITEMS = (
    '[{sku: "apple", name: "Apple", quantity: 12, unit-price-cents: 40}, '
    '{sku: "pear", name: "Pear", quantity: 3, unit-price-cents: 55}, '
    '{sku: "plum", name: "Plum", quantity: 0, unit-price-cents: 90}]'
)
# EXPECTED_CALLS["summarize"] of test_example_project, as WAVE.
SUMMARY = (
    '{distinct-items: 3, total-quantity: 15, total-value-cents: 645, low-stock: ["pear", "plum"]}'
)


def test_run_a_registry_reference_by_tag_then_by_digest_offline(
    example_project_build: Path, registry_anon: RegistryServer, tmp_path: Path
) -> None:
    env = clean_env(tmp_path / "home")
    env.pop("HATCH_WASM_OCI_CACHE", None)
    env.pop("HATCH_WASM_OCI_NO_CACHE", None)
    layout = example_project_build / LAYOUT
    repo = f"{registry_anon.address}/{unique_repo('acme')}/inventory"
    pushed = plain_push(layout, f"{repo}:0.1.0", env)
    assert pushed.returncode == 0, pushed.stderr
    _, raw = manifest_of(layout, "0.1.0")
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()

    summarize = f"summarize({ITEMS}, 5)"
    store = Path(env["XDG_CACHE_HOME"]) / "hatch-wasm-oci" / "store" / "blobs" / "sha256"
    # pull keeps what it fetched in the store that run reads.
    pulled = run_cli("pull", f"{repo}:0.1.0", "--plain-http", "-o", tmp_path / "pulled", env=env)
    assert pulled.returncode == 0, pulled.stderr
    assert (store / digest.split(":")[1]).is_file()

    # A digest in the store never needs the network: nothing listens on port 1.
    dead = f"127.0.0.1:1/{repo.split('/', 1)[1]}@{digest}"
    done = run_cli("run", dead, "--invoke", 'find([], "x")', env=env)
    assert (done.returncode, done.stdout) == (0, "none\n"), done.stderr

    # A tag is resolved against the registry (its blobs come from the store).
    done = run_cli("run", f"{repo}:0.1.0", "--plain-http", "--invoke", summarize, env=env)
    assert (done.returncode, done.stdout) == (0, SUMMARY + "\n"), done.stderr
    done = run_cli("run", f"{repo}:0.2.0", "--plain-http", "--invoke", summarize, env=env)
    assert done.returncode == 2 and "has no manifest 0.2.0" in done.stderr

    # A tag with --offline: the digest it last resolved to.
    done = run_cli("run", f"{repo}:0.1.0", "--offline", "--invoke", summarize, env=env)
    assert (done.returncode, done.stdout) == (0, SUMMARY + "\n"), done.stderr
    done = run_cli("run", f"{repo}:9.9.9", "--offline", "--invoke", summarize, env=env)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"hatch-wasm-oci: {repo}:9.9.9 is not in the local store; run once without --offline"
    )

    # A stored blob that no longer matches its digest is fetched again, not used.
    layer = manifest_of(layout, "0.1.0")[0]["layers"][0]["digest"]
    stored_layer = store / layer.split(":")[1]
    stored_layer.write_bytes(b"\0" * stored_layer.stat().st_size)
    done = run_cli("run", f"{repo}@{digest}", "--plain-http", "--invoke", summarize, env=env)
    assert (done.returncode, done.stdout) == (0, SUMMARY + "\n"), done.stderr
    assert os.path.getsize(stored_layer) > 0 and stored_layer.read_bytes()[:4] == b"\0asm"


def _container_image_layout(directory: Path) -> None:
    """A one-layer OCI image layout whose config is an ordinary container image config."""
    directory.mkdir()
    blobs = directory / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def blob(data: bytes, media_type: str) -> dict[str, object]:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}

    config = blob(
        b'{"architecture":"amd64","os":"linux"}', "application/vnd.oci.image.config.v1+json"
    )
    layer = blob(b"not a tarball", "application/vnd.oci.image.layer.v1.tar")
    manifest = json.dumps(
        {"schemaVersion": 2, "mediaType": MANIFEST, "config": config, "layers": [layer]}
    ).encode()
    entry = blob(manifest, MANIFEST)
    entry["annotations"] = {"org.opencontainers.image.ref.name": "1.0"}
    (directory / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (directory / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))


def test_a_container_image_is_not_run(registry_anon: RegistryServer, tmp_path: Path) -> None:
    env = clean_env(tmp_path / "home")
    image = tmp_path / "image"
    _container_image_layout(image)
    done = run_cli("run", image, env=env)
    assert done.returncode == 2
    assert done.stderr.startswith(f"hatch-wasm-oci: {image}: not a Wasm OCI artifact: config")
    ref = f"{registry_anon.address}/{unique_repo('image')}:1.0"
    subprocess.run(
        ["skopeo", "copy", f"oci:{image}:1.0", f"docker://{ref}", "--dest-tls-verify=false"],
        check=True,
        capture_output=True,
    )
    done = run_cli("run", ref, "--plain-http", env=env)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "config mediaType 'application/vnd.oci.image.config.v1+json'" in done.stderr
