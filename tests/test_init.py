"""``hatch-wasm-oci init``: the scaffold builds with the real ``hatch build -t wasm-oci`` as it
is written, and ``run`` works at once; an existing project is never overwritten."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.hatch_fixtures import HatchRun, blob, layout_dirs, manifest_of, run_hatch
from tests.hosts import wasmtime_cli
from tests.registry_fixtures import clean_env, run_cli
from tests.wasm_fixtures import WASI_VERSION, wasm_tools_run
from tests.wit_registry import WellKnown, wkg_env

pytestmark = pytest.mark.slow


def _build(project: Path, world: str, env: dict[str, str]) -> Path:
    """``init`` then the first ``hatch build``: the WASI WIT comes from the local registry
    standing in for wasi.dev; the build records a verified target with no warning, which
    wasm-tools (run here) confirms. Returns the layout."""
    made = run_cli("init", project, "--world", world, env=env)
    assert made.returncode == 0, made.stderr
    built: HatchRun = run_hatch(project, "build", "-t", "wasm-oci", env=env)
    assert "component.target is null" not in built.output, built.output
    assert (project / "wit" / "deps" / f"wasi-cli-{WASI_VERSION}").is_dir()
    assert (project / "wkg.lock").is_file()
    [layout] = layout_dirs(project)
    manifest, _ = manifest_of(layout, "0.1.0")
    config = json.loads(blob(layout, manifest["config"]["digest"]).read_text())
    target = config["component"]["target"]
    assert target == f"local:{project.name}/{project.name}@0.1.0", config["component"]
    wasm = blob(layout, manifest["layers"][0]["digest"])
    checked = wasm_tools_run("component", "targets", project / "wit", wasm, "--world", target)
    assert checked.returncode == 0, checked.stderr
    return layout


@pytest.fixture
def env(hatch_env: dict[str, str], well_known: WellKnown, tmp_path: Path) -> dict[str, str]:
    wkg = wkg_env(well_known, tmp_path / "home")
    return {**hatch_env, **{k: wkg[k] for k in ("WKG_CONFIG_FILE", "SSL_CERT_FILE")}}


@pytest.mark.usefixtures("wit_registry")
def test_a_library_scaffold_builds_and_is_called(tmp_path: Path, env: dict[str, str]) -> None:
    project = tmp_path / "greeter"
    layout = _build(project, "library", env)
    assert sorted(
        p.relative_to(project).as_posix()
        for p in project.rglob("*")
        if p.is_file() and "deps" not in p.parts and "dist" not in p.parts
    ) == [".gitignore", "README.md", "pyproject.toml", "src/app.py", "wit/world.wit", "wkg.lock"]
    assert layout.name == "greeter-0.1.0"
    called = run_cli("run", layout, "--invoke", 'hello("Ada")', env=env)
    assert called.returncode == 0, called.stderr
    assert called.stdout == '"Hello, Ada!"\n'
    listed = run_cli("run", layout, env=env)  # a library: the exports, never componentize-py's
    assert "local:greeter/greet@0.1.0#hello: func(name: string) -> string" in listed.stderr
    assert "exports#init" not in listed.stderr


@pytest.mark.usefixtures("wit_registry")
def test_a_command_scaffold_builds_and_runs(tmp_path: Path, env: dict[str, str]) -> None:
    """The command world names WASI 0.2.12: the first build fetches it (from the local
    registry standing in for wasi.dev) and the component runs at once."""
    project = tmp_path / "hello-cli"
    layout = _build(project, "command", env)
    ran = run_cli("run", layout, "--", "a", "b", env=env)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "Hello from Python! ['a', 'b']\n"
    readme = (project / "README.md").read_text()
    assert f"hatch-wasm-oci run dist/wasm-oci/{layout.name}\n" in readme


@pytest.mark.usefixtures("wit_registry")
def test_an_http_scaffold_builds_and_serve_answers(tmp_path: Path, env: dict[str, str]) -> None:
    """The http world builds as written and `serve` (the wasmtime CLI) answers at once."""
    project = tmp_path / "hello-http"
    layout = _build(project, "http", env)
    readme = (project / "README.md").read_text()
    assert f"hatch-wasm-oci serve dist/wasm-oci/{layout.name}\n" in readme
    process = subprocess.Popen(
        [sys.executable, "-m", "hatch_wasm_oci", "serve", str(layout), "--addr", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**env, "HATCH_WASM_OCI_WASMTIME": str(wasmtime_cli())},
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        url = process.stdout.readline().decode().strip()
        assert url.startswith("http://127.0.0.1:"), url + process.stderr.read().decode()
        with urllib.request.urlopen(url, timeout=60) as response:
            assert response.status == 200
            assert response.headers["content-type"] == "text/plain"
            assert response.read() == b"Hello from Python!\n"
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_init_never_overwrites_and_names_bad_input(tmp_path: Path) -> None:
    env = clean_env(tmp_path / "home")
    project = tmp_path / "app"
    (project / "src").mkdir(parents=True)
    (project / "src" / "app.py").write_text("mine\n")
    refused = run_cli("init", project, env=env)
    assert refused.returncode == 2
    assert refused.stderr == (
        f"hatch-wasm-oci: {project}: src/app.py already exist(s); nothing was written (init "
        "starts a new project)\n"
    )
    assert sorted(p.name for p in project.rglob("*")) == ["app.py", "src"]
    assert (project / "src" / "app.py").read_text() == "mine\n"
    # a project called app gets a world that is not called app (its module would clash)
    fresh = tmp_path / "fresh" / "app"
    assert run_cli("init", fresh, "--world", "http", env=env).returncode == 0
    assert 'world = "app-world", app = "app"' in (fresh / "pyproject.toml").read_text()
    assert "include wasi:http/proxy@0.2.12;" in (fresh / "wit" / "world.wit").read_text()
    bad = run_cli("init", tmp_path / "x", "--name", "123", env=env)
    assert bad.returncode == 2
    assert bad.stderr.startswith("hatch-wasm-oci: '123' gives no project name")
