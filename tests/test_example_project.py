"""example-project built for real with ``hatch build -t wasm-oci`` (componentize-py inside
Hatch's isolated build environment), then checked with wasm-tools, skopeo and wasmtime."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.hatch_fixtures import (
    EXAMPLE_PROJECT,
    EXPECTED_CALLS,
    LAYOUT,
    HatchRun,
    blob,
    call_inventory,
    copy_project,
    layout_dirs,
    manifest_of,
    run_hatch,
)
from tests.wasm_fixtures import wasm_tools, wasm_tools_run, wit_world

pytestmark = pytest.mark.slow

EXPECTED_ANNOTATIONS = {
    "org.opencontainers.image.title": "example-inventory",
    "org.opencontainers.image.version": "0.1.0",
    "org.opencontainers.image.description": (
        "Stock keeping functions in Python, shipped as a WebAssembly component"
    ),
    "org.opencontainers.image.licenses": "Apache-2.0",
    "org.opencontainers.image.authors": (
        "Example Shop <dev@example.com>, Inventory Team <inventory@example.com>"
    ),
    "org.opencontainers.image.url": "https://example.com/inventory",
    "org.opencontainers.image.source": "https://github.com/example/inventory",
    "org.opencontainers.image.documentation": "https://example.com/inventory/docs",
    "org.opencontainers.image.created": "2020-02-02T00:00:00Z",
}


def test_build_writes_one_layout_and_prints_its_path(
    example_project_run: HatchRun, example_project_build: Path
) -> None:
    layout = example_project_build / LAYOUT
    assert layout_dirs(example_project_build) == [layout]
    assert str(layout) in example_project_run.output
    # A compile, or the cached result of one with identical inputs made earlier in the session.
    assert (
        "Compiling inventory_app.app for world inventory with componentize-py"
        in example_project_run.output
        or "Reusing the component compiled from identical inputs" in example_project_run.output
    )
    assert "Traceback" not in example_project_run.output
    # The world includes the WASI imports componentize-py links (WIT vendored in wit/deps/):
    # the target is verified, with no warning.
    assert "component.target is null" not in example_project_run.output
    assert "warning" not in example_project_run.output.lower()
    assert sorted(p.name for p in (example_project_build / "dist").iterdir()) == ["wasm-oci"]
    assert not (
        example_project_build / "dist" / "wasm-oci" / "example_inventory-0.1.0.tar"
    ).exists()


def test_skopeo_reads_each_tag_byte_for_byte(example_project_build: Path) -> None:
    layout = example_project_build / LAYOUT
    for tag in ("0.1.0", "latest"):
        _, raw = manifest_of(layout, tag)
        result = subprocess.run(
            ["skopeo", "inspect", "--raw", f"oci:{layout}:{tag}"],
            capture_output=True,
            check=True,
        )
        assert result.stdout == raw


def test_manifest_config_and_annotations(example_project_build: Path) -> None:
    layout = example_project_build / LAYOUT
    manifest, _ = manifest_of(layout, "0.1.0")
    assert manifest["annotations"] == EXPECTED_ANNOTATIONS  # copy is not a git checkout
    config_desc = manifest["config"]
    assert isinstance(config_desc, dict)
    assert config_desc["mediaType"] == "application/vnd.wasm.config.v0+json"
    layers = manifest["layers"]
    assert isinstance(layers, list)
    (layer,) = layers
    assert layer["mediaType"] == "application/wasm"
    assert layer["annotations"]["org.opencontainers.image.title"] == "example_inventory-0.1.0.wasm"
    config = json.loads(blob(layout, config_desc["digest"]).read_text())
    assert config["os"] == "wasip2"
    assert config["architecture"] == "wasm"
    assert config["created"] == "2020-02-02T00:00:00Z"
    assert config["layerDigests"] == [layer["digest"]]
    # Verified by wasm-tools here, independently of the build's own check.
    assert config["component"]["target"] == "example:inventory/inventory@0.1.0"
    checked = wasm_tools_run(
        "component",
        "targets",
        EXAMPLE_PROJECT / "wit",
        blob(layout, layer["digest"]),
        "--world",
        config["component"]["target"],
    )
    assert checked.returncode == 0, checked.stderr


def test_config_imports_exports_match_wasm_tools(example_project_build: Path) -> None:
    layout = example_project_build / LAYOUT
    manifest, _ = manifest_of(layout, "0.1.0")
    config = json.loads(blob(layout, manifest["config"]["digest"]).read_text())
    layer = blob(layout, manifest["layers"][0]["digest"])
    imports, exports = wit_world(layer)
    assert set(config["component"]["imports"]) == imports
    assert set(config["component"]["exports"]) == exports
    assert "example:inventory/stock@0.1.0" in exports
    assert "wasi:cli/stdout@0.2.12" in imports  # the version the world includes


EMBEDDED = (
    "name",
    "authors",
    "description",
    "licenses",
    "source",
    "homepage",
    "version",
    "revision",
)


def test_project_metadata_embedded_in_the_component(example_project_build: Path) -> None:
    layout = example_project_build / LAYOUT
    manifest, _ = manifest_of(layout, "0.1.0")
    layer = blob(layout, manifest["layers"][0]["digest"])
    shown = json.loads(wasm_tools("metadata", "show", "--json", layer))["component"]["metadata"]
    assert {key: shown[key] for key in EMBEDDED} == {
        "name": "example-inventory",
        "authors": "Example Shop <dev@example.com>, Inventory Team <inventory@example.com>",
        "description": "Stock keeping functions in Python, shipped as a WebAssembly component",
        "licenses": "Apache-2.0",
        "source": "https://github.com/example/inventory",
        "homepage": "https://example.com/inventory",
        "version": "0.1.0",
        "revision": None,  # the copy under test is not a git checkout
    }


def test_component_runs_in_wasmtime(example_project_build: Path) -> None:
    assert call_inventory(example_project_build / LAYOUT) == EXPECTED_CALLS


def test_exports_called_through_load(example_project_build: Path) -> None:
    """The same calls in-process, through ``hatch_wasm_oci.load()`` (no script)."""
    import hatch_wasm_oci
    from hatch_wasm_oci.runtime import Err, Ok

    stock = hatch_wasm_oci.load(example_project_build / LAYOUT).stock
    items = [
        {"sku": "apple", "name": "Apple", "quantity": 12, "unit-price-cents": 40},
        {"sku": "pear", "name": "Pear", "quantity": 3, "unit-price-cents": 55},
        {"sku": "plum", "name": "Plum", "quantity": 0, "unit-price-cents": 90},
    ]
    assert stock.summarize(items, 5) == EXPECTED_CALLS["summarize"]
    assert stock.find(items=items, sku="pear") == EXPECTED_CALLS["find"]
    assert stock.find(items, "kiwi") is EXPECTED_CALLS["find_missing"] is None
    assert stock.reserve(items[0], 5) == Ok(EXPECTED_CALLS["reserve"]["ok"])
    assert stock.reserve(items[1], 10) == Err(EXPECTED_CALLS["reserve_too_many"]["err"])


def test_cli_inspect_and_verify_accept_the_layout(example_project_build: Path) -> None:
    layout = example_project_build / LAYOUT
    cli = Path(sys.executable).with_name("hatch-wasm-oci")
    verify = subprocess.run([str(cli), "verify", str(layout)], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stderr
    inspect = subprocess.run([str(cli), "inspect", str(layout)], capture_output=True, text=True)
    assert inspect.returncode == 0, inspect.stderr
    assert "example:inventory/stock@0.1.0" in inspect.stdout  # an export


def test_rebuild_of_unchanged_inputs_reuses_the_compile_and_keeps_the_digest(
    example_project_run: HatchRun, example_project_build: Path, hatch_env: dict[str, str]
) -> None:
    layout = example_project_build / LAYOUT
    before = json.loads((layout / "index.json").read_text())
    rebuild = run_hatch(example_project_build, "build", "-t", "wasm-oci", env=hatch_env)
    assert "Reusing the component compiled from identical inputs" in rebuild.output
    assert "Compiling inventory_app.app" not in rebuild.output
    assert json.loads((layout / "index.json").read_text()) == before
    assert layout_dirs(example_project_build) == [layout]


def test_changed_app_source_recompiles(
    example_project_build: Path, hatch_env: dict[str, str], tmp_path: Path
) -> None:
    """A changed input misses the cache: the new behaviour is in the new artifact."""
    project = copy_project(example_project_build, tmp_path / "changed")
    app = project / "src" / "inventory_app" / "app.py"
    app.write_text(app.read_text().replace('"amount must be positive"', '"amount is zero"'))
    rebuild = run_hatch(project, "build", "-t", "wasm-oci", env=hatch_env)
    assert "Compiling inventory_app.app" in rebuild.output
    old, _ = manifest_of(example_project_build / LAYOUT, "0.1.0")
    new, _ = manifest_of(project / LAYOUT, "0.1.0")
    assert old["layers"] != new["layers"]
    # componentize-py's output differs run to run anyway: the changed source must be inside.
    layer = blob(project / LAYOUT, new["layers"][0]["digest"]).read_bytes()
    assert b"amount is zero" in layer and b"amount must be positive" not in layer
    assert call_inventory(project / LAYOUT) == EXPECTED_CALLS


def test_source_date_epoch_and_clean(
    example_project_build: Path, hatch_env: dict[str, str], tmp_path: Path
) -> None:
    project = copy_project(example_project_build, tmp_path / "sde")
    run = run_hatch(
        project,
        "build",
        "-t",
        "wasm-oci",
        env=hatch_env,
        extra_env={"SOURCE_DATE_EPOCH": "1700000000"},
    )
    assert "Reusing the component compiled from identical inputs" in run.output
    manifest, _ = manifest_of(project / LAYOUT, "0.1.0")
    assert manifest["annotations"]["org.opencontainers.image.created"] == (
        "2023-11-14T22:13:20Z"
    )
    config = json.loads(blob(project / LAYOUT, manifest["config"]["digest"]).read_text())
    assert config["created"] == "2023-11-14T22:13:20Z"
    default, _ = manifest_of(example_project_build / LAYOUT, "0.1.0")
    assert default["layers"] == manifest["layers"]  # same component bytes, different date

    (project / "dist" / "keep.txt").write_text("not ours")
    (project / "dist" / "wasm-oci-publish.json").write_text("{}")  # `hatch publish`'s summary
    run_hatch(project, "clean", "-t", "wasm-oci", env=hatch_env)
    assert not (project / "dist" / "wasm-oci").exists()
    assert not (project / "dist" / "wasm-oci-publish.json").exists()
    assert (project / "dist" / "keep.txt").exists()


def test_revision_annotation_in_a_git_checkout(
    example_project_build: Path, hatch_env: dict[str, str], tmp_path: Path
) -> None:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    project = copy_project(example_project_build, tmp_path / "git")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-C", str(project)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "pyproject.toml"], check=True)
    subprocess.run([*git, "commit", "-qm", "init"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    run_hatch(project, "build", "-t", "wasm-oci", env=hatch_env)
    manifest, _ = manifest_of(project / LAYOUT, "0.1.0")
    annotations = manifest["annotations"]
    assert isinstance(annotations, dict)
    assert annotations["org.opencontainers.image.revision"] == head.strip()
    layer = blob(project / LAYOUT, manifest["layers"][0]["digest"])
    assert head.strip() in wasm_tools("metadata", "show", "--json", layer)
