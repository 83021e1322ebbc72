"""``hatch-wasm-oci init``: the scaffold builds with the real ``hatch build -t wasm-oci`` as it
is written, and ``run`` works at once; an existing project is never overwritten."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.hatch_fixtures import layout_dirs, run_hatch
from tests.registry_fixtures import clean_env, run_cli
from tests.wasm_fixtures import WASI_VERSION
from tests.wit_registry import WellKnown, wkg_env

pytestmark = pytest.mark.slow


def test_a_library_scaffold_builds_and_is_called(tmp_path: Path, hatch_env: dict[str, str]) -> None:
    project = tmp_path / "greeter"
    made = run_cli("init", project, "--world", "library", env=hatch_env)
    assert made.returncode == 0, made.stderr
    assert sorted(p.relative_to(project).as_posix() for p in project.rglob("*") if p.is_file()) == [
        ".gitignore", "README.md", "pyproject.toml", "src/app.py", "wit/world.wit",
    ]  # fmt: skip
    run_hatch(project, "build", "-t", "wasm-oci", env=hatch_env)
    [layout] = layout_dirs(project)
    assert layout.name == "greeter-0.1.0"
    called = run_cli("run", layout, "--invoke", 'hello("Ada")', env=hatch_env)
    assert called.returncode == 0, called.stderr
    assert called.stdout == '"Hello, Ada!"\n'


@pytest.mark.usefixtures("wit_registry")
def test_a_command_scaffold_builds_and_runs(
    tmp_path: Path, hatch_env: dict[str, str], well_known: WellKnown
) -> None:
    """The command world names WASI 0.2.12: the first build fetches it (from the local
    registry standing in for wasi.dev) and the component runs at once."""
    project = tmp_path / "hello-cli"
    assert run_cli("init", project, "--world", "command", env=hatch_env).returncode == 0
    wkg = wkg_env(well_known, tmp_path / "home")
    env = {**hatch_env, **{k: wkg[k] for k in ("WKG_CONFIG_FILE", "SSL_CERT_FILE")}}
    run_hatch(project, "build", "-t", "wasm-oci", env=env)
    assert (project / "wit" / "deps" / f"wasi-cli-{WASI_VERSION}").is_dir()
    assert (project / "wkg.lock").is_file()
    [layout] = layout_dirs(project)
    ran = run_cli("run", layout, "--", "a", "b", env=env)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "Hello from Python! ['a', 'b']\n"
    readme = (project / "README.md").read_text()
    assert f"hatch-wasm-oci run dist/wasm-oci/{layout.name}\n" in readme


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
