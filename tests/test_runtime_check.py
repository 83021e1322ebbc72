"""``check = "instantiate"``: a real ``hatch build`` instantiates the built component on a
WASI 0.2 host before writing the layout; an import no such host provides fails the build."""

from __future__ import annotations

from pathlib import Path

import pytest

from hatch_wasm_oci.errors import ConfigurationError
from hatch_wasm_oci.project.settings import parse_settings
from tests.hatch_fixtures import layout_dirs, run_hatch, write_prebuilt_project

pytestmark = pytest.mark.slow


def test_unsatisfiable_import_fails_the_build_naming_it(
    hatch_env: dict[str, str], tmp_path: Path, calc_component: Path
) -> None:
    project = write_prebuilt_project(
        tmp_path / "calc", calc_component, wasm_oci='check = "instantiate"\n'
    )
    run = run_hatch(project, "build", "-t", "wasm-oci", env=hatch_env, check=False)
    assert run.returncode != 0
    expected = (
        "tool.hatch.build.targets.wasm-oci.check: demo_component-1.0.0.wasm: imports "
        "acme:calc/logging@1.2.0, which the WASI 0.2 host does not provide"
    )
    assert expected in run.output
    assert "Traceback" not in run.output
    assert layout_dirs(project) == []


def test_wasi_cli_and_http_imports_pass_the_check(
    hatch_env: dict[str, str], tmp_path: Path, http_component: Path
) -> None:
    """The proxy component imports wasi:cli, wasi:io ... and wasi:http: all provided."""
    project = write_prebuilt_project(
        tmp_path / "http", http_component, wasm_oci='check = "instantiate"\n'
    )
    run = run_hatch(project, "build", "-t", "wasm-oci", env=hatch_env)
    assert "Checking that the component instantiates on a WASI 0.2 host" in run.output
    assert len(layout_dirs(project)) == 1


def test_check_values(tmp_path: Path) -> None:
    (tmp_path / "c.wasm").write_bytes(b"\0asm\x01\0\0\0")
    assert parse_settings({"path": "c.wasm", "check": "instantiate"}, root=tmp_path).check == (
        "instantiate"
    )
    with pytest.raises(ConfigurationError) as caught:
        parse_settings({"path": "c.wasm", "check": "run"}, root=tmp_path)
    assert caught.value.problems == [
        "tool.hatch.build.targets.wasm-oci.check: must be \"instantiate\", not 'run'"
    ]
