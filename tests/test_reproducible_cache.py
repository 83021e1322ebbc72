"""The compile cache in a real registry on 127.0.0.1: entries verified by digest and by their
recorded input key and compiler, pull-only readers, a registry that is down, and two "machines"
(two checkouts, two empty local caches) publishing the same digest through it."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hatch_wasm_oci.project.componentize import compiler_version
from hatch_wasm_oci.project.registry_cache import (
    COMPILER_ANNOTATION,
    CONNECT_SECONDS,
    KEY_ANNOTATION,
    RegistryCache,
    cache_repository,
    validate_cache_repository,
)
from tests.hatch_fixtures import EXAMPLE_PROJECT, copy_project, run_hatch
from tests.registry_fixtures import (
    RegistryServer,
    blob_in_storage,
    clean_env,
    skopeo_raw,
    token_server,
    unique_repo,
    user_env,
)

KEY = "5" * 64
OTHER_KEY = "6" * 64


def test_cache_repository_setting_and_environment() -> None:
    assert cache_repository("ghcr.io/acme/cache", {}) == "ghcr.io/acme/cache"
    env = {"HATCH_WASM_OCI_CACHE_REPOSITORY": "127.0.0.1:5000/acme/c"}
    assert cache_repository("ghcr.io/acme/cache", env) == "127.0.0.1:5000/acme/c"
    assert cache_repository("ghcr.io/acme/cache", {"HATCH_WASM_OCI_CACHE_REPOSITORY": ""}) is None
    assert validate_cache_repository("ghcr.io/acme/inventory-cache") is None
    assert "without a tag" in str(validate_cache_repository("ghcr.io/acme/cache:v1"))
    assert validate_cache_repository("Bad/Name") is not None


def test_entries_are_verified_and_pull_only_readers_can_read(
    registry_token: RegistryServer, calc_component: Path, tmp_path: Path
) -> None:
    server = registry_token
    repository = f"{server.address}/{unique_repo('acme-cache')}"
    warnings: list[str] = []
    writer = RegistryCache(repository, {**clean_env(tmp_path / "w"), **user_env(server)})
    version = compiler_version()
    digest = writer.store(KEY, version, calc_component, warn=warnings.append)
    assert digest is not None and warnings == []
    manifest = json.loads(skopeo_raw(server, f"{repository.split('/', 1)[1]}:{KEY}"))
    assert manifest["annotations"][KEY_ANNOTATION] == KEY
    assert manifest["annotations"][COMPILER_ANNOTATION] == version

    # A reader with pull-only rights reads the entry; its write is refused: a warning only.
    tokens = token_server(server)
    tokens.users["reader"] = "reader-secret"
    tokens.read_only.add("reader")
    reader_env = {
        **clean_env(tmp_path / "r"),
        "HATCH_WASM_OCI_USERNAME": "reader",
        "HATCH_WASM_OCI_PASSWORD": "reader-secret",
    }
    reader = RegistryCache(repository, reader_env)
    pulled = tmp_path / "pulled.wasm"
    assert reader.fetch(KEY, version, pulled, warn=warnings.append)
    assert pulled.read_bytes() == calc_component.read_bytes() and warnings == []
    assert reader.store(OTHER_KEY, version, calc_component, warn=warnings.append) is None
    assert len(warnings) == 1 and warnings[0].startswith("Not stored in the registry cache: ")
    assert "reader-secret" not in warnings[0]
    warnings.clear()

    # No entry yet: silently absent.
    assert not reader.fetch(OTHER_KEY, version, tmp_path / "none.wasm", warn=warnings.append)
    assert warnings == [] and not (tmp_path / "none.wasm").exists()

    # A foreign entry (another compiler) is ignored, with a warning naming both.
    assert not reader.fetch(KEY, "0.0.1", tmp_path / "foreign.wasm", warn=warnings.append)
    assert len(warnings) == 1 and "records input key" in warnings[0]
    assert f"compiler '{version}'" in warnings[0] and "componentize-py 0.0.1" in warnings[0]
    warnings.clear()

    # A tampered layer in the registry's storage is detected by its digest; nothing is written.
    layer = blob_in_storage(server, manifest["layers"][0]["digest"])
    data = bytearray(layer.read_bytes())
    data[len(data) // 2] ^= 0xFF
    layer.write_bytes(bytes(data))
    tampered = tmp_path / "tampered.wasm"
    assert not reader.fetch(KEY, version, tampered, warn=warnings.append)
    assert len(warnings) == 1 and "does not match its digest" in warnings[0]
    assert not tampered.exists()


@pytest.mark.parametrize("fault", ["refused", "silent"])
def test_a_registry_that_is_down_costs_one_warning_and_seconds(
    fault: str, calc_component: Path, tmp_path: Path
) -> None:
    """Nothing listening, or a server that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        if fault == "silent":
            listener.listen(8)
        else:
            listener.close()
        warnings: list[str] = []
        cache = RegistryCache(f"127.0.0.1:{port}/acme/cache", clean_env(tmp_path / "h"))
        started = time.monotonic()
        assert not cache.fetch(KEY, "0.25.1", tmp_path / "x.wasm", warn=warnings.append)
        assert cache.store(KEY, "0.25.1", calc_component, warn=warnings.append) is None
        assert time.monotonic() - started < CONNECT_SECONDS + 2
    reason = "connection refused" if fault == "refused" else "timed out (no answer within 3 s)"
    assert warnings == [
        f"Registry cache 127.0.0.1:{port}/acme/cache is unreachable ({reason}); compiling locally"
    ]


# -- two machines through hatch and python -m build --------------------------------------------

HOOK_TABLE = """
[tool.hatch.build.hooks.wasm-oci]
cache-repository = "{repository}"

[tool.hatch.build.hooks.wasm-oci.componentize-py]
wit-path = "wit"
world = "inventory"
app = "inventory_app.app"
python-path = ["src"]
"""


def _machine(tmp_path: Path, name: str, repository: str, depth: str = "") -> Path:
    project = copy_project(EXAMPLE_PROJECT, tmp_path / name / depth / "example-project")
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text().replace(
        'tags = ["{version}", "latest"]\n',
        f'tags = ["{{version}}", "latest"]\ncache-repository = "{repository}"\n',
    )
    pyproject.write_text(text + HOOK_TABLE.replace("{repository}", repository))
    return project


def _digest(project: Path) -> str:
    index = json.loads((project / "dist/wasm-oci/example_inventory-0.1.0/index.json").read_text())
    return str(index["manifests"][0]["digest"])


@pytest.mark.slow
def test_a_second_machine_publishes_the_same_digest_from_the_registry_cache(
    hatch_env: dict[str, str], registry_anon: RegistryServer, tmp_path: Path
) -> None:
    repository = f"{registry_anon.address}/{unique_repo('acme/inventory-cache')}"

    def machine_env(name: str) -> dict[str, str]:
        return {"HATCH_WASM_OCI_CACHE": str(tmp_path / name / "component-cache")}

    first = _machine(tmp_path, "one", repository)
    run = run_hatch(first, "build", "-t", "wasm-oci", env=hatch_env, extra_env=machine_env("one"))
    assert "Compiling inventory_app.app" in run.output
    assert f"Stored in the registry cache: {repository}:" in run.output
    published = _digest(first)

    # Another checkout path, an empty local cache: the registry's entry, the same digest.
    second = _machine(tmp_path, "two", repository, depth="deeper/path")
    run = run_hatch(second, "build", "-t", "wasm-oci", env=hatch_env, extra_env=machine_env("two"))
    assert "Compiling" not in run.output
    assert f"Reusing the component compiled from identical inputs ({repository}:" in run.output
    assert _digest(second) == published

    # The build hook through a PEP 517 front end, on a third machine.
    third = _machine(tmp_path, "three", repository)
    result = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", str(third)],
        cwd=third,
        env={**hatch_env, **machine_env("three")},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Compiling" not in result.stdout + result.stderr
    assert _digest(third) == published

    # A tampered entry: detected by digest, compiled again and replaced; the build succeeds.
    entry_layer = _entry_layer(tmp_path / "one" / "component-cache")
    stored = blob_in_storage(registry_anon, entry_layer)
    stored.write_bytes(b"\0asm" + os.urandom(64))
    fourth = _machine(tmp_path, "four", repository)
    run = run_hatch(fourth, "build", "-t", "wasm-oci", env=hatch_env, extra_env=machine_env("four"))
    assert "Ignoring the registry cache entry" in run.output
    assert "does not match its digest" in run.output
    assert "Compiling inventory_app.app" in run.output
    # The compile is deterministic, so its layer has the tampered blob's digest: the registry
    # keeps its (corrupt) content-addressed copy, and the build says so instead of "Stored".
    assert "a push cannot replace a content-addressed blob" in run.output
    assert "Stored in the registry cache" not in run.output
    assert _digest(fourth) == published

    # Once the registry's copy is repaired, the entry is a hit again.
    stored.write_bytes(_entry_file(tmp_path / "four" / "component-cache").read_bytes())
    shutil.rmtree(tmp_path / "four" / "component-cache")
    run = run_hatch(fourth, "build", "-t", "wasm-oci", env=hatch_env, extra_env=machine_env("four"))
    assert "Compiling" not in run.output and "Ignoring" not in run.output
    assert _digest(fourth) == published


def _entry_file(local_cache: Path) -> Path:
    """The one component in a local compile cache."""
    (entry,) = (local_cache / "componentize-py").glob("*.wasm")
    return entry


def _entry_layer(local_cache: Path) -> str:
    """The layer digest of the one component in a local compile cache."""
    import hashlib

    (entry,) = (local_cache / "componentize-py").glob("*.wasm")
    return "sha256:" + hashlib.sha256(entry.read_bytes()).hexdigest()
