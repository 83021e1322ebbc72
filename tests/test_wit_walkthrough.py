"""The README's "first component" walkthrough, step by step, with the local registry standing
in for wasi.dev (mapped through the wasm-pkg config)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.hatch_fixtures import layout_dirs, run_hatch, write_project
from tests.registry_fixtures import RegistryServer, run_cli
from tests.wasm_fixtures import WASI_VERSION
from tests.wit_registry import WellKnown, wkg_env

pytestmark = pytest.mark.slow

GREETER_WIT = f"""\
package acme:greeter@0.1.0;

interface greet {{
  hello: func(name: string) -> result<string, string>;
}}

world greeter {{
  include wasi:cli/imports@{WASI_VERSION};
  export wasi:cli/run@{WASI_VERSION};
  export greet;
}}
"""

GREETER_APP = """\
from componentize_py_types import Err
from wit_world import exports


class Run(exports.Run):
    def run(self) -> None:
        print("Hello from Python!")


class Greet(exports.Greet):
    def hello(self, name: str) -> str:
        if not name:
            raise Err("say who to greet")
        return f"Hello, {name}!"
"""


@pytest.mark.usefixtures("wit_registry")
def test_first_component_walkthrough(
    tmp_path: Path, hatch_env: dict[str, str], well_known: WellKnown, registry_anon: RegistryServer
) -> None:
    project = write_project(
        tmp_path / "greeter",
        name="greeter",
        version="0.1.0",
        wasm_oci=(
            'componentize-py = { wit-path = "wit", world = "greeter", app = "app", '
            'python-path = ["src"] }\n'
            f'repository = "{registry_anon.address}/acme/greeter"'
        ),
        files={"wit/world.wit": GREETER_WIT, "src/app.py": GREETER_APP},
    )
    wkg = wkg_env(well_known, tmp_path / "home")
    env = {
        **hatch_env,
        "WKG_CONFIG_FILE": wkg["WKG_CONFIG_FILE"],
        "SSL_CERT_FILE": wkg["SSL_CERT_FILE"],
    }
    fetched = run_cli("wit", "fetch", project, env=env)
    assert fetched.returncode == 0, fetched.stderr
    assert (project / "wkg.lock").is_file()
    run_hatch(project, "build", "-t", "wasm-oci", env=env)
    [layout] = layout_dirs(project)
    ran = run_cli("run", layout, env=env)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "Hello from Python!\n"
    greeted = run_cli("run", layout, "--invoke", 'hello("Ada")', env=env)
    assert greeted.stdout.strip() == 'ok("Hello, Ada!")', greeted.stdout + greeted.stderr
    refused = run_cli("run", layout, "--invoke", 'hello("")', env=env)
    assert refused.stdout.strip() == 'err("say who to greet")', refused.stdout + refused.stderr
    published = run_hatch(
        project, "publish", "-p", "wasm-oci", "-o", "plain-http=true", env=env, check=False
    )
    assert published.returncode == 0, published.output
    assert f"{registry_anon.address}/acme/greeter:0.1.0@sha256:" in published.output


@pytest.mark.usefixtures("wit_registry")
def test_build_hook_fetches_wit_dependencies(
    tmp_path: Path, hatch_env: dict[str, str], well_known: WellKnown
) -> None:
    """The build hook (``hatch build -t wheel``) runs the same step before compiling: the same
    greeter project (so the session's compile cache serves both tests) built as a wheel."""
    project = write_project(
        tmp_path / "greeter-host",
        name="greeter",
        version="0.1.0",
        hook=(
            'componentize-py = { wit-path = "wit", world = "greeter", app = "app", '
            'python-path = ["src"] }'
        ),
        files={"wit/world.wit": GREETER_WIT, "src/app.py": GREETER_APP},
        project_extra='[tool.hatch.build.targets.wheel]\nonly-include = ["src"]\n',
    )
    wkg = wkg_env(well_known, tmp_path / "home")
    env = {
        **hatch_env,
        "WKG_CONFIG_FILE": wkg["WKG_CONFIG_FILE"],
        "SSL_CERT_FILE": wkg["SSL_CERT_FILE"],
    }
    run = run_hatch(project, "build", "-t", "wheel", env=env)
    assert "Resolving WIT dependencies of wit (writing wkg.lock)" in run.output
    assert (project / "wit" / "deps" / f"wasi-cli-{WASI_VERSION}" / "package.wit").is_file()
    assert "wasi:cli" in (project / "wkg.lock").read_text()
    assert [p.name for p in layout_dirs(project)] == ["greeter-0.1.0"]
