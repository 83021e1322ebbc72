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

from hatch_wasm_oci.plugin.build_hook import STAGING_PREFIX, remove_stale_staging
from tests.hatch_fixtures import (
    EXAMPLE_PROJECT,
    EXPECTED_CALLS,
    blob,
    call_inventory,
    layout_dirs,
    manifest_of,
    run_hatch,
    write_prebuilt_project,
)

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
    config = json.loads(blob(layout, manifest["config"]["digest"]).read_text())
    # The example's world includes the WASI imports componentize-py links (test_example_project)
    assert config["component"]["target"] == "example:inventory/inventory@0.1.0"

    layer = blob(layout, manifest["layers"][0]["digest"])
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
    project = write_prebuilt_project(
        tmp_path / "hooked",
        tiny_component,
        name="hooked",
        version="1.1.0",
        hook='sdist = true\ninclude-in-wheel = "hooked/c.wasm"\n'
        'enable-by-default = true\ntags = ["stable"]\n',
    )
    temp = tmp_path / "temp"
    temp.mkdir()
    hatch_env = {**hatch_env, "TMPDIR": str(temp)}
    run_hatch(project, "build", "-t", "sdist", env=hatch_env)
    (layout,) = layout_dirs(project)
    assert layout.name == "hooked-1.1.0"
    assert list(json.loads((layout / "index.json").read_text())["manifests"])
    manifest_of(layout, "stable")
    run_hatch(project, "build", "-t", "wheel", env=hatch_env)
    with zipfile.ZipFile(project / "dist" / "hooked-1.1.0-py3-none-any.whl") as wheel:
        assert wheel.read("hooked/c.wasm")[:8] == b"\0asm\x0d\x00\x01\x00"
    assert not list(temp.glob(f"{STAGING_PREFIX}*"))  # staging gone after success
    run_hatch(project, "clean", env=hatch_env)
    assert not (project / "dist" / "wasm-oci").exists()
    # --hooks-only: no wheel and no finalize, the layout still lands in dist/.
    run_hatch(project, "build", "--hooks-only", "-t", "wheel", env=hatch_env)
    assert [p.name for p in layout_dirs(project)] == ["hooked-1.1.0"]
    assert not list(project.glob("dist/*.whl"))
    assert not list(temp.glob(f"{STAGING_PREFIX}*"))


def test_hook_is_a_no_op_for_sdist_by_default_and_reports_errors_with_its_table(
    hatch_env: dict[str, str], tmp_path: Path, tiny_component: Path
) -> None:
    project = write_prebuilt_project(tmp_path / "quiet", tiny_component, name="quiet", hook="")
    run_hatch(project, "build", "-t", "sdist", env=hatch_env)
    assert not (project / "dist" / "wasm-oci").exists()

    broken = write_prebuilt_project(
        tmp_path / "broken",
        tiny_component,
        name="broken",
        hook='include-in-wheel = "/abs.wasm"\nsdist = "yes"\n',
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


# Registered after wasm-oci: it sees the component the wasm-oci hook staged for the wheel,
# names the staging path, and fails the build.
FAILING_HOOK = """\
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class FailingHook(BuildHookInterface):
    def initialize(self, version, build_data):
        staged = [key for key in build_data["force_include"] if Path(key).is_file()]
        raise SystemExit(f"the hook after wasm-oci fails; staged: {staged[0]}")
"""


@pytest.mark.parametrize("failure", ["later-hook", "wheel-config"])
def test_a_wheel_build_failing_after_the_hook_leaves_no_layout(
    failure: str, hatch_env: dict[str, str], tmp_path: Path, tiny_component: Path
) -> None:
    """The layout is staged during ``initialize`` and lands in dist/ only in ``finalize``: a
    wheel build that fails after the hook ran leaves neither the layout nor its staging."""
    temp = tmp_path / "temp"
    temp.mkdir()
    stale = temp / f"{STAGING_PREFIX}999999999-killed"  # a killed build's: its lock is free
    (stale / "left").mkdir(parents=True)
    (stale / ".owner-lock").touch()
    if failure == "later-hook":
        hook = 'include-in-wheel = "doomed/c.wasm"\n[tool.hatch.build.hooks.custom]\n'
        extra = {"hatch_build.py": FAILING_HOOK}
        expected = "the hook after wasm-oci fails; staged: "
    else:
        hook = (
            'include-in-wheel = "doomed/c.wasm"\n'
            "[tool.hatch.build.targets.wheel.force-include]\n"
            '"missing.txt" = "doomed/missing.txt"\n'
        )
        extra = {}
        expected = "Forced include not found"
    project = write_prebuilt_project(tmp_path / "doomed", tiny_component, name="doomed", hook=hook)
    for rel, text in extra.items():
        (project / rel).write_text(text)
    run = run_hatch(
        project, "build", "-t", "wheel", env=hatch_env, extra_env={"TMPDIR": str(temp)}, check=False
    )
    assert run.returncode != 0
    assert expected in run.output
    if failure == "later-hook":
        staged = Path(run.output.split("staged: ", 1)[1].split()[0])
        # The wasm-oci hook staged the layout in the system temp dir, outside dist/.
        staging, layout, *_ = staged.relative_to(temp).parts
        assert staging.startswith(STAGING_PREFIX) and layout == "doomed-1.0.0"
        assert not staged.exists()
    dist = project / "dist"
    assert not (dist / "wasm-oci").exists()
    assert not list(dist.glob("*.whl"))
    assert not list(temp.glob(f"{STAGING_PREFIX}*"))  # its own staging and the stale one


def test_remove_stale_staging(tmp_path: Path) -> None:
    import time

    from hatch_wasm_oci.files.lock import FileLock
    from hatch_wasm_oci.plugin.build_hook import OWNER_LOCK

    def staging(pid: int, label: str, lock_file: bool = True) -> Path:
        path = tmp_path / f"{STAGING_PREFIX}{pid}-{label}"
        (path / "layout").mkdir(parents=True)
        if lock_file:
            (path / OWNER_LOCK).touch()
        return path

    # Liveness is the owner's lock, not its PID: PID 1 of another namespace may hold one.
    dead = staging(1, "dead")  # nobody holds its lock
    live = staging(999999999, "live")  # a PID not ours to test, but its lock is held
    holder = FileLock(live / OWNER_LOCK, "live", wait=0)
    holder.acquire()
    fresh = staging(2, "fresh", lock_file=False)  # being created: no lock file yet
    unrelated = tmp_path / "hatch-wasm-oci-staging-notapid"
    unrelated.mkdir()
    assert remove_stale_staging(tmp_path) == [dead]
    assert live.is_dir() and fresh.is_dir() and unrelated.is_dir()
    a_day_later = time.time() + 24 * 3600 + 60
    assert sorted(remove_stale_staging(tmp_path, now=a_day_later)) == sorted([live, fresh])
    assert unrelated.is_dir()
    holder.release()
