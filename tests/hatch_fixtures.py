"""Session fixtures that run real Hatch (``hatch build -t wasm-oci``) against the plugin.

* ``plugin_wheelhouse``: the plugin wheel built once per session from this checkout, with a
  version unique to its sources (``0.1.0+test.<hash>``) and a constraints file pinning it, so
  Hatch's isolated build environment installs exactly this wheel (never one from an index).
* ``hatch_env``: the environment for Hatch subprocesses: find-links/constraints for pip and uv,
  one HATCH_DATA_DIR/HATCH_CACHE_DIR for the session, and a session componentize cache.
* ``example_project_build``: example-project copied to a temp dir and built once with
  ``hatch build -t wasm-oci``; returns the copy's Path (``dist/wasm-oci/...`` inside).
  ``example_project_run`` has the run's output and timing.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

__all__ = [
    "example_project_build",
    "example_project_run",
    "hatch_env",
    "plugin_wheelhouse",
]

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_PROJECT = REPO / "example-project"
"""Where example-project's layout lands, relative to the project."""
LAYOUT = Path("dist/wasm-oci/example_inventory-0.1.0")
"""What example-project's call_inventory.py prints for its exports."""
EXPECTED_CALLS: dict[str, Any] = {
    "summarize": {
        "distinct-items": 3,
        "low-stock": ["pear", "plum"],
        "total-quantity": 15,
        "total-value-cents": 645,
    },
    "find": {"name": "Pear", "quantity": 3, "sku": "pear", "unit-price-cents": 55},
    "find_missing": None,
    "reserve": {"ok": {"name": "Apple", "quantity": 7, "sku": "apple", "unit-price-cents": 40}},
    "reserve_too_many": {"err": "only 3 of pear in stock, 10 requested"},
}
HATCH = Path(sys.executable).with_name("hatch")
CONSTRAINTS_FILE = "constraints.txt"
#: Build-environment packages pinned to the versions of this test environment.
PINNED = ("componentize-py", "hatchling", "wasmtime")


@dataclass(frozen=True)
class HatchRun:
    """One finished ``hatch`` subprocess."""

    project: Path
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def _source_files() -> list[Path]:
    files = [REPO / "pyproject.toml"]
    files += sorted(
        p
        for p in (REPO / "hatch_wasm_oci").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    )
    return files


def make_wheelhouse(wheelhouse: Path, scratch: Path) -> Path:
    """Build the plugin wheel from this checkout into ``wheelhouse``, with constraints pinning it.

    The version gets a local label from a hash of the sources (``0.1.0+test.<hash>``), so the
    build environment can only pick this wheel and uv's cache never serves a stale one.
    """
    digest = hashlib.sha256()
    for file in _source_files():
        digest.update(file.relative_to(REPO).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    source = scratch / "plugin-source"
    shutil.copytree(
        REPO / "hatch_wasm_oci",
        source / "hatch_wasm_oci",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    pyproject = (REPO / "pyproject.toml").read_text()
    match = re.search(r'^version = "([^"]+)"', pyproject, re.MULTILINE)
    assert match, "pyproject.toml has no static version"
    version = f"{match.group(1)}+test.{digest.hexdigest()[:12]}"
    pyproject = pyproject.replace(match.group(0), f'version = "{version}"', 1)
    (source / "pyproject.toml").write_text(pyproject)
    for extra in ("README.md", "LICENSE"):
        if (REPO / extra).is_file():
            shutil.copy2(REPO / extra, source / extra)
        else:
            (source / extra).write_text("test build\n")
    wheelhouse.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(wheelhouse)],
        cwd=source,
        check=True,
        capture_output=True,
    )
    assert list(wheelhouse.glob("hatch_wasm_oci-*.whl"))
    pins = [f"hatch-wasm-oci=={version}"]
    for name in PINNED:
        pins.append(f"{name}=={importlib.metadata.version(name)}")
    (wheelhouse / CONSTRAINTS_FILE).write_text("\n".join(pins) + "\n")
    return wheelhouse


def hatch_environment(wheelhouse: Path, state: Path) -> dict[str, str]:
    """Environment for ``hatch`` subprocesses using ``wheelhouse``; Hatch's data, cache and the
    componentize cache live under ``state``."""
    env = dict(os.environ)
    for name in ("SOURCE_DATE_EPOCH", "HATCH_ENV", "VIRTUAL_ENV", "HATCH_WASM_OCI_NO_CACHE"):
        env.pop(name, None)
    constraints = str(wheelhouse / CONSTRAINTS_FILE)
    env["PIP_FIND_LINKS"] = " ".join(
        filter(None, [str(wheelhouse), os.environ.get("PIP_FIND_LINKS", "")])
    )
    env["UV_FIND_LINKS"] = str(wheelhouse)
    env["PIP_CONSTRAINT"] = " ".join(
        filter(None, [os.environ.get("PIP_CONSTRAINT", ""), constraints])
    )
    env["UV_CONSTRAINT"] = constraints
    env["HATCH_DATA_DIR"] = str(state / "data")
    env["HATCH_CACHE_DIR"] = str(state / "cache")
    env["HATCH_WASM_OCI_CACHE"] = str(state / "components")
    env["PATH"] = os.pathsep.join([str(HATCH.parent), env.get("PATH", "")])
    return env


@pytest.fixture(scope="session")
def plugin_wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with the freshly built plugin wheel and ``constraints.txt`` pinning it."""
    return make_wheelhouse(
        tmp_path_factory.mktemp("wheelhouse"), tmp_path_factory.mktemp("plugin-build")
    )


@pytest.fixture(scope="session")
def hatch_env(plugin_wheelhouse: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment variables for ``hatch`` subprocesses (see the module docstring)."""
    return hatch_environment(plugin_wheelhouse, tmp_path_factory.mktemp("hatch-state"))


def run_hatch(
    project: Path,
    *args: str,
    env: Mapping[str, str],
    extra_env: Mapping[str, str] | None = None,
    check: bool = True,
    timeout: float = 900,
) -> HatchRun:
    """Run ``hatch ARGS`` in ``project``; with ``check`` a failure shows its whole output."""
    started = time.perf_counter()
    result = subprocess.run(
        [str(HATCH), *args],
        cwd=project,
        env={**env, **(extra_env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    run = HatchRun(
        project, result.returncode, result.stdout, result.stderr, time.perf_counter() - started
    )
    if check and run.returncode != 0:
        pytest.fail(f"hatch {' '.join(args)} failed ({run.returncode}):\n{run.output}")
    return run


def copy_project(source: Path, destination: Path) -> Path:
    """A copy of ``source`` without build outputs or caches."""
    shutil.copytree(
        source,
        destination,
        ignore=shutil.ignore_patterns("dist", "__pycache__", "*.pyc", ".*"),
    )
    return destination


def write_project(
    root: Path,
    *,
    wasm_oci: str = "",
    hook: str = "",
    name: str = "demo-component",
    version: str = "1.0.0",
    project_extra: str = "",
    files: Mapping[str, str | bytes] | None = None,
) -> Path:
    """Write a small Hatch project at ``root``: ``wasm_oci``/``hook`` are the TOML table bodies."""
    root.mkdir(parents=True, exist_ok=True)
    text = (
        '[build-system]\nrequires = ["hatchling", "hatch-wasm-oci"]\n'
        'build-backend = "hatchling.build"\n\n'
        f'[project]\nname = "{name}"\nversion = "{version}"\nrequires-python = ">=3.10"\n'
        f"{project_extra}\n"
    )
    if wasm_oci:
        text += f"\n[tool.hatch.build.targets.wasm-oci]\n{wasm_oci}\n"
    if hook:
        text += f"\n[tool.hatch.build.hooks.wasm-oci]\n{hook}\n"
    (root / "pyproject.toml").write_text(text)
    for rel, content in (files or {}).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return root


def write_prebuilt_project(
    root: Path,
    wasm: Path,
    *,
    hook: str | None = None,
    wasm_oci: str | None = None,
    rel: str = "c.wasm",
    name: str = "demo-component",
    version: str = "1.0.0",
    project_extra: str = "",
) -> Path:
    """A project whose ``path`` source is a copy of ``wasm`` at ``rel``.

    ``path = "<rel>"`` opens the hook table (when ``hook`` is given, followed by it) or the
    target table (``wasm_oci``); a hook project also gets the package ``<name>/`` for its wheel.
    """
    path_line = f"path = {json.dumps(rel)}\n"
    files: dict[str, str | bytes] = {rel: wasm.read_bytes()}
    if hook is not None:
        files[f"{name.replace('-', '_')}/__init__.py"] = ""
    return write_project(
        root,
        name=name,
        version=version,
        project_extra=project_extra,
        hook=path_line + hook if hook is not None else "",
        wasm_oci=path_line + wasm_oci if wasm_oci is not None else "",
        files=files,
    )


def layout_dirs(project: Path) -> list[Path]:
    """The layout directories under ``project/dist/wasm-oci``."""
    out = project / "dist" / "wasm-oci"
    return sorted(p for p in out.iterdir() if p.is_dir()) if out.is_dir() else []


def manifest_of(layout: Path, tag: str) -> tuple[dict[str, Any], bytes]:
    """The manifest (parsed and raw bytes) that ``tag`` names in ``layout``'s index.json."""
    index = json.loads((layout / "index.json").read_text())
    for entry in index["manifests"]:
        if entry.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag:
            algorithm, hexdigest = entry["digest"].split(":")
            raw = (layout / "blobs" / algorithm / hexdigest).read_bytes()
            return json.loads(raw), raw
    raise AssertionError(f"no tag {tag!r} in {layout}")


def blob(layout: Path, digest: str) -> Path:
    algorithm, hexdigest = digest.split(":")
    return layout / "blobs" / algorithm / hexdigest


@pytest.fixture(scope="session")
def example_project_run(
    hatch_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> HatchRun:
    """example-project copied to a temp dir and built once with ``hatch build -t wasm-oci``."""
    project = copy_project(EXAMPLE_PROJECT, tmp_path_factory.mktemp("example") / "example-project")
    return run_hatch(project, "build", "-t", "wasm-oci", env=hatch_env)


@pytest.fixture(scope="session")
def example_project_build(example_project_run: HatchRun) -> Path:
    """The built copy of example-project (its layout is under ``dist/wasm-oci/``)."""
    return example_project_run.project


def call_inventory(path: Path) -> dict[str, object]:
    """Run example-project's own wasmtime-py script against ``path``; its parsed JSON."""
    result = subprocess.run(
        [sys.executable, str(EXAMPLE_PROJECT / "call_inventory.py"), str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    parsed: dict[str, object] = json.loads(result.stdout)
    return parsed
