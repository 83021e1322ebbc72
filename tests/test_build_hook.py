"""The ``wasm-oci`` build hook: the layout next to the wheel, the component inside the wheel,
through a PEP 517 front end (``python -m build``) and through ``hatch build``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.hatch_fixtures import EXAMPLE_PROJECT, blob, layout_dirs, manifest_of, run_hatch
from tests.hatch_fixtures import write_project as write_hatch_project
from tests.test_example_project import EXPECTED_CALLS, call_inventory

pytestmark = pytest.mark.slow

HOOK = "tool.hatch.build.hooks.wasm-oci"

HOST_PYPROJECT = """\
[build-system]
requires = ["hatchling", "hatch-wasm-oci"]
build-backend = "hatchling.build"

[project]
name = "inventory-host"
version = "0.3.0"
requires-python = ">=3.10"
description = "A Python package shipping its own WebAssembly component"
license = "MIT"

[tool.hatch.build.targets.wheel]
packages = ["src/inventory_app"]

[tool.hatch.build.hooks.wasm-oci]
include-in-wheel = "inventory_app/inventory.wasm"

[tool.hatch.build.hooks.wasm-oci.componentize-py]
wit-path = "wit"
world = "inventory"
app = "inventory_app.app"
python-path = ["src"]
"""


def test_python_m_build_writes_layout_next_to_wheel_and_ships_the_component(
    hatch_env: dict[str, str], tmp_path: Path
) -> None:
    project = tmp_path / "inventory-host"
    project.mkdir()
    shutil.copytree(EXAMPLE_PROJECT / "wit", project / "wit")
    shutil.copytree(
        EXAMPLE_PROJECT / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__")
    )
    (project / "pyproject.toml").write_text(HOST_PYPROJECT)
    result = subprocess.run(
        [sys.executable, "-m", "build", str(project)],
        cwd=project,
        env=hatch_env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    dist = project / "dist"
    assert sorted(p.name for p in dist.iterdir()) == [
        "inventory_host-0.3.0-py3-none-any.whl",
        "inventory_host-0.3.0.tar.gz",
        "wasm-oci",
    ]
    # The sdist carries the sources, not the component (the hook is a no-op for sdists).
    with tarfile.open(dist / "inventory_host-0.3.0.tar.gz") as sdist:
        names = sdist.getnames()
    assert "inventory_host-0.3.0/wit/inventory.wit" in names
    assert not [n for n in names if n.endswith(".wasm")]

    (layout,) = layout_dirs(project)
    assert layout.name == "inventory_host-0.3.0"
    manifest, raw = manifest_of(layout, "0.3.0")
    skopeo = subprocess.run(
        ["skopeo", "inspect", "--raw", f"oci:{layout}:0.3.0"], capture_output=True, check=True
    )
    assert skopeo.stdout == raw
    annotations = manifest["annotations"]
    assert isinstance(annotations, dict)
    assert annotations["org.opencontainers.image.title"] == "inventory-host"
    assert annotations["org.opencontainers.image.licenses"] == "MIT"
    config = json.loads(blob(layout, manifest["config"]["digest"]).read_text())  # type: ignore[index]
    assert config["component"]["target"] == "example:inventory/inventory@0.1.0"

    layer = blob(layout, manifest["layers"][0]["digest"])  # type: ignore[index]
    with zipfile.ZipFile(dist / "inventory_host-0.3.0-py3-none-any.whl") as wheel:
        shipped = wheel.read("inventory_app/inventory.wasm")
        record = wheel.read("inventory_host-0.3.0.dist-info/RECORD").decode()
    assert shipped == layer.read_bytes()
    assert "inventory_app/inventory.wasm," in record
    extracted = tmp_path / "from-wheel.wasm"
    extracted.write_bytes(shipped)
    assert call_inventory(extracted) == EXPECTED_CALLS


def test_hatch_build_runs_the_hook_for_wheel_and_opted_in_sdist(
    hatch_env: dict[str, str], tmp_path: Path, tiny_component: Path
) -> None:
    project = write_hatch_project(
        tmp_path / "hooked",
        name="hooked",
        version="1.1.0",
        hook='path = "c.wasm"\nsdist = true\ninclude-in-wheel = "hooked/c.wasm"\n'
        'enable-by-default = true\ntags = ["stable"]\n',
        files={"c.wasm": tiny_component.read_bytes(), "hooked/__init__.py": ""},
    )
    run_hatch(project, "build", "-t", "sdist", env=hatch_env)
    (layout,) = layout_dirs(project)
    assert layout.name == "hooked-1.1.0"
    assert list(json.loads((layout / "index.json").read_text())["manifests"])
    manifest_of(layout, "stable")
    run_hatch(project, "build", "-t", "wheel", env=hatch_env)
    with zipfile.ZipFile(project / "dist" / "hooked-1.1.0-py3-none-any.whl") as wheel:
        assert wheel.read("hooked/c.wasm")[:8] == b"\0asm\x0d\x00\x01\x00"
    run_hatch(project, "clean", env=hatch_env)
    assert not (project / "dist" / "wasm-oci").exists()


def test_hook_is_a_no_op_for_sdist_by_default_and_reports_errors_with_its_table(
    hatch_env: dict[str, str], tmp_path: Path, tiny_component: Path
) -> None:
    project = write_hatch_project(
        tmp_path / "quiet",
        name="quiet",
        hook='path = "c.wasm"\n',
        files={"c.wasm": tiny_component.read_bytes(), "quiet/__init__.py": ""},
    )
    run_hatch(project, "build", "-t", "sdist", env=hatch_env)
    assert not (project / "dist" / "wasm-oci").exists()

    broken = write_hatch_project(
        tmp_path / "broken",
        name="broken",
        hook='path = "c.wasm"\ninclude-in-wheel = "/abs.wasm"\nsdist = "yes"\n',
        files={"c.wasm": tiny_component.read_bytes(), "broken/__init__.py": ""},
    )
    run = run_hatch(broken, "build", "-t", "wheel", env=hatch_env, check=False)
    assert run.returncode != 0
    assert "Traceback" not in run.output
    lines = run.stderr.splitlines()
    assert "wasm-oci build hook: 2 configuration problems:" in lines
    assert (
        f"  {HOOK}.include-in-wheel: must be a relative path inside the wheel, not '/abs.wasm'"
        in lines
    )
    assert f"  {HOOK}.sdist: must be true or false, not a string" in lines
    assert not list(broken.glob("dist/*.whl"))
