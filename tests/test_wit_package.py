"""``wit-package = true``: the project's WIT as a WIT package layout (as ``wkg build`` makes it),
pushed, then fetched as a dependency by another project."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hatch_wasm_oci.wit.errors import WitError
from hatch_wasm_oci.wit.package import build_wit_package
from tests.hatch_fixtures import EXAMPLE_PROJECT, blob, copy_project, manifest_of, run_hatch
from tests.registry_fixtures import RegistryServer, run_cli
from tests.wasm_fixtures import wasm_tools, wit_world
from tests.wit_registry import WellKnown, make_project, wkg_env

pytestmark = pytest.mark.slow


def test_example_wit_package_is_built_pushed_and_fetched(
    tmp_path: Path,
    hatch_env: dict[str, str],
    well_known: WellKnown,
    registry_anon: RegistryServer,
    wit_registry: dict[str, str],
) -> None:
    project = copy_project(EXAMPLE_PROJECT, tmp_path / "inventory")
    pyproject = project / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            'tags = ["{version}", "latest"]', 'tags = ["{version}", "latest"]\nwit-package = true'
        )
    )
    run = run_hatch(project, "build", "-t", "wasm-oci", env=hatch_env)
    assert "Packing the WIT package example:inventory@0.1.0" in run.output
    layout = project / "dist" / "wasm-oci" / "wit-example-inventory-0.1.0"
    manifest, _ = manifest_of(layout, "0.1.0")
    config = json.loads(blob(layout, manifest["config"]["digest"]).read_bytes())
    layer = manifest["layers"][0]
    package = blob(layout, layer["digest"])
    # exports per wasm-tools: the package's interfaces and worlds; no imports
    imports, exports = wit_world(package)
    assert config["os"] == "wasip2" and config["component"]["imports"] == []
    assert set(config["component"]["exports"]) == exports and imports == set()
    assert "example:inventory/stock@0.1.0" in exports
    metadata = wasm_tools("metadata", "show", "--json", package)
    shown = json.loads(metadata)
    text = json.dumps(shown)
    assert "example:inventory" in text and "0.1.0" in text and "Apache-2.0" in text
    assert wasm_tools("component", "wit", package).startswith("package example:inventory@0.1.0;")

    config_text = (
        "[namespace_registries]\n"
        f'wasi = "{well_known.name}"\nexample = "{well_known.name}"\n\n'
        f'[registry."{well_known.name}".oci]\nprotocol = "http"\n'
    )
    env = wkg_env(well_known, tmp_path / "home", config_text)
    # hatch publish: the component to its repository, the WIT package to its own location
    published = run_hatch(
        project,
        "publish",
        "-p",
        "wasm-oci",
        "-o",
        "plain-http=true",
        "-o",
        f"repository={registry_anon.address}/example/inventory-component",
        env={
            **hatch_env,
            "WKG_CONFIG_FILE": env["WKG_CONFIG_FILE"],
            "SSL_CERT_FILE": env["SSL_CERT_FILE"],
        },
    )
    wit_ref = f"{registry_anon.address}/webassembly/example/inventory:0.1.0@sha256:"
    assert wit_ref in published.output
    assert f"{registry_anon.address}/example/inventory-component:0.1.0@sha256:" in published.output

    shop = tmp_path / "shop"
    make_project(
        shop, "package acme:shop@1.0.0;\nworld s {\n  import example:inventory/stock@0.1.0;\n}\n"
    )
    fetched = run_cli("wit", "fetch", shop, env=env)
    assert fetched.returncode == 0, fetched.stderr
    deps = shop / "wit" / "deps" / "example-inventory-0.1.0" / "package.wit"
    assert deps.read_text().startswith("package example:inventory@0.1.0;")
    lock = (shop / "wkg.lock").read_text()
    assert f'name = "example:inventory"\nregistry = "{well_known.name}"' in lock
    assert f'digest = "{layer["digest"]}"' in lock
    wasm_tools("component", "wit", shop / "wit")  # resolves


def test_wit_package_version_must_match_the_project(tmp_path: Path) -> None:
    wit_dir = make_project(tmp_path / "p", "package acme:x@1.0.0;\nworld w {}\n")
    with pytest.raises(WitError) as caught:
        build_wit_package(wit_dir, tmp_path / "out.wasm", "1.1.0", {})
    assert str(caught.value) == (
        f"the WIT package is acme:x@1.0.0 but the project version is 1.1.0: change "
        f"`package acme:x@1.0.0;` in {wit_dir} to `package acme:x@1.1.0;`, or the project "
        "version to 1.0.0"
    )
    assert not (tmp_path / "out.wasm").exists()
    build_wit_package(wit_dir, tmp_path / "out.wasm", "1.0.0", {"description": "x"})
    assert "package acme:x@1.0.0;" in wasm_tools("component", "wit", tmp_path / "out.wasm")
