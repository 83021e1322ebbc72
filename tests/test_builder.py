"""``hatch build -t wasm-oci`` on projects generated in temp dirs: the ``command`` and ``path``
sources, tar output, overrides, and failures (clean one-line errors, nothing left in dist/)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import wasmtime
import wasmtime.component as wc

from hatch_wasm_oci.errors import WasmOciError
from hatch_wasm_oci.project import deterministic
from hatch_wasm_oci.project.componentize import compiler_arguments, input_key
from hatch_wasm_oci.project.settings import COMMON_KEYS, ComponentizePySource
from hatch_wasm_oci.project.world import (
    default_target,
    find_world,
    resolve,
    verify_target,
    world_name_problem,
)
from tests.hatch_fixtures import (
    EXAMPLE_PROJECT,
    blob,
    copy_project,
    layout_dirs,
    manifest_of,
    run_hatch,
    write_prebuilt_project,
    write_project,
)
from tests.wasm_fixtures import TINY_COMMAND, TINY_CORE_WAT, TINY_WIT, wasm_tools, wit_world

TARGET = "tool.hatch.build.targets.wasm-oci"

# A real command producing a component with wasm-tools (parse, embed, new) through the shell.
def run_tiny(path: Path) -> tuple[int, int]:
    """Instantiate the tiny component with host ``factor() = 3``; return (add(2, 3), scale(7))."""
    engine = wasmtime.Engine()
    component = wc.Component.from_file(engine, str(path))
    linker = wc.Linker(engine)
    with linker.root() as root, root.add_instance("acme:tiny/host@0.1.0") as host:
        host.add_func("factor", lambda _store: 3)
    store = wasmtime.Store(engine)
    instance = linker.instantiate(store, component)

    def call(name: str, *args: int, interface: str | None = None) -> int:
        parent = instance.get_export_index(store, interface) if interface else None
        index = instance.get_export_index(store, name, parent)
        assert index is not None
        func = instance.get_func(store, index)
        assert func is not None
        result = func(store, *args)
        func.post_return(store)
        return int(result)

    return call("add", 2, 3), call("scale", 7, interface="acme:tiny/math@0.1.0")


def only_layout(project: Path) -> Path:
    (layout,) = layout_dirs(project)
    return layout


@pytest.mark.slow
def test_command_source_builds_tar_tags_and_overrides(
    hatch_env: dict[str, str], tmp_path: Path
) -> None:
    project = write_project(
        tmp_path / "cmd",
        name="Tiny.Component",
        version="2.0.0rc1+build.5",
        project_extra='description = "tiny"\nlicense = "MIT"\n',
        wasm_oci=(
            f"command = {json.dumps(TINY_COMMAND)}\n"
            'path = "build/tiny.wasm"\n'
            'tags = ["{version}", "v{version}-x", "edge"]\n'
            "tar = true\n"
            'target = "acme:tiny/tiny@0.1.0"\n'
            "[tool.hatch.build.targets.wasm-oci.annotations]\n"
            '"org.opencontainers.image.description" = "overridden"\n'
            '"com.example.team" = "wasm"\n'
        ),
        files={"tiny.wat": TINY_CORE_WAT, "wit/tiny.wit": TINY_WIT},
    )
    run = run_hatch(project, "build", "-t", "wasm-oci", env=hatch_env)
    assert "made the tiny component" in run.output
    layout = only_layout(project)
    assert layout.name == "tiny_component-2.0.0rc1+build.5"  # normalized name
    tar = layout.parent / f"{layout.name}.tar"
    assert tar.is_file() and str(tar) in run.output
    for tag in ("2.0.0rc1_build.5", "v2.0.0rc1_build.5-x", "edge"):
        _, raw = manifest_of(layout, tag)
        skopeo = subprocess.run(
            ["skopeo", "inspect", "--raw", f"oci:{layout}:{tag}"], capture_output=True, check=True
        )
        assert skopeo.stdout == raw
    archived = subprocess.run(
        ["skopeo", "inspect", "--raw", f"oci-archive:{tar}:edge"], capture_output=True, check=True
    )
    assert archived.stdout == manifest_of(layout, "edge")[1]
    manifest, _ = manifest_of(layout, "edge")
    assert manifest["annotations"] == {
        "org.opencontainers.image.title": "Tiny.Component",
        "org.opencontainers.image.version": "2.0.0rc1+build.5",
        "org.opencontainers.image.description": "overridden",
        "org.opencontainers.image.licenses": "MIT",
        "org.opencontainers.image.created": "2020-02-02T00:00:00Z",
        "com.example.team": "wasm",
    }
    config = json.loads(blob(layout, manifest["config"]["digest"]).read_text())
    layer = blob(layout, manifest["layers"][0]["digest"])
    imports, exports = wit_world(layer)
    assert (set(config["component"]["imports"]), set(config["component"]["exports"])) == (
        imports,
        exports,
    )
    assert imports == {"acme:tiny/host@0.1.0"}
    assert exports == {"add", "acme:tiny/math@0.1.0"}
    assert config["component"]["target"] == "acme:tiny/tiny@0.1.0"
    wasm_tools("component", "targets", project / "wit", layer, "--world", "acme:tiny/tiny@0.1.0")
    metadata = json.dumps(json.loads(wasm_tools("metadata", "show", "--json", layer)))
    assert "overridden" in metadata and "MIT" in metadata and "2.0.0rc1+build.5" in metadata
    assert run_tiny(layer) == (5, 21)


@pytest.mark.slow
def test_prebuilt_module_path_source(
    hatch_env: dict[str, str], tmp_path: Path, core_module: Path
) -> None:
    project = write_prebuilt_project(
        tmp_path / "prebuilt",
        core_module,
        rel="wasm/core.wasm",
        wasm_oci="embed-metadata = false\n",
    )
    run_hatch(project, "build", "-t", "wasm-oci", env=hatch_env)
    layout = only_layout(project)
    assert layout.name == "demo_component-1.0.0"
    manifest, raw = manifest_of(layout, "1.0.0")
    skopeo = subprocess.run(
        ["skopeo", "inspect", "--raw", f"oci:{layout}:1.0.0"], capture_output=True, check=True
    )
    assert skopeo.stdout == raw
    config = json.loads(blob(layout, manifest["config"]["digest"]).read_text())
    assert config["os"] == "wasip1"
    assert "component" not in config
    layer = blob(layout, manifest["layers"][0]["digest"])
    assert layer.read_bytes() == core_module.read_bytes()  # embed-metadata = false: untouched
    module = wasmtime.Module(wasmtime.Engine(), layer.read_bytes())
    assert {e.name for e in module.exports} == {"memory", "answer", "_start", "add"}


@pytest.mark.slow
def test_failing_command_shows_its_output_and_leaves_nothing(
    hatch_env: dict[str, str], tmp_path: Path
) -> None:
    script = "import sys; print('compiler says: missing semicolon'); sys.exit(3)"
    project = write_project(
        tmp_path / "failing",
        wasm_oci=f"command = [{json.dumps(sys.executable)}, '-c', {json.dumps(script)}]\n"
        'path = "out.wasm"\n',
    )
    run = run_hatch(project, "build", "-t", "wasm-oci", env=hatch_env, check=False)
    assert run.returncode != 0
    assert "compiler says: missing semicolon" in run.stderr
    assert f"wasm-oci: {TARGET}.command: " in run.stderr
    assert "failed (exit status 3): compiler says: missing semicolon" in run.stderr
    assert "Traceback" not in run.output
    assert not (project / "dist").exists() or not any((project / "dist").iterdir())


@pytest.mark.slow
def test_configuration_errors_through_hatch(hatch_env: dict[str, str], tmp_path: Path) -> None:
    project = write_project(
        tmp_path / "bad",
        wasm_oci=(
            'path = "missing.wasm"\n'
            'tags = ["ok", "not a tag"]\n'
            "tar = 1\n"
            "dependencies = []\n"
            'colour = "blue"\n'
        ),
    )
    run = run_hatch(project, "build", "-t", "wasm-oci", env=hatch_env, check=False)
    assert run.returncode != 0
    assert "Traceback" not in run.output
    lines = run.stderr.splitlines()
    assert "wasm-oci: 4 configuration problems:" in lines
    for problem in (
        f"{TARGET}.colour: unknown key (known keys: {', '.join(COMMON_KEYS)})",
        f"{TARGET}.path: 'missing.wasm' does not exist",
        f"{TARGET}.tags[1]: invalid OCI tag 'not a tag': a tag is 1-128 characters of "
        "letters, digits, '_', '.' and '-', starts and ends with a letter or digit, "
        "and has no two of '_', '.', '-' in a row (but '--')",
        f"{TARGET}.tar: must be true or false, not an integer",
    ):
        assert f"  {problem}" in lines
    assert not (project / "dist").exists()


@pytest.mark.slow
def test_not_wasm_from_command(hatch_env: dict[str, str], tmp_path: Path) -> None:
    project = write_project(
        tmp_path / "notwasm",
        wasm_oci='command = "echo hello > out.wasm"\npath = "out.wasm"\n',
    )
    run = run_hatch(project, "build", "-t", "wasm-oci", env=hatch_env, check=False)
    assert run.returncode != 0
    assert f"wasm-oci: {TARGET}.path: out.wasm is not a valid Wasm file: " in run.stderr
    assert "Traceback" not in run.output
    assert not (project / "dist").exists()


@pytest.mark.slow
def test_unknown_world_shows_the_compilers_message(
    hatch_env: dict[str, str], tmp_path: Path
) -> None:
    project = copy_project(EXAMPLE_PROJECT, tmp_path / "noworld")
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('world = "inventory"', 'world = "nosuch"'))
    run = run_hatch(project, "build", "-t", "wasm-oci", env=hatch_env, check=False)
    assert run.returncode != 0
    assert 'Unable to resolve `Some("nosuch")`' in run.stderr  # the compiler's own output
    assert (
        f"wasm-oci: {TARGET}.componentize-py: componentize-py failed (exit status 1): "
        "world 'nosuch' was not found in the WIT; available worlds: "
    ) in run.stderr
    assert "example:inventory/inventory@0.1.0\n" in run.stderr
    assert "Traceback" not in run.output
    assert "Stack backtrace" not in run.output
    assert not (project / "dist").exists()


def test_a_failed_rebuild_keeps_nothing_new_and_the_old_layout(
    tmp_path: Path, tiny_component: Path
) -> None:
    """In-process: failed rebuilds (a version that makes no valid tag; a source that stopped
    being Wasm) leave the earlier layout untouched and nothing new beside it."""
    from hatch_wasm_oci.errors import WasmOciError
    from hatch_wasm_oci.project.pipeline import BuildOutput, build_artifact
    from hatch_wasm_oci.project.settings import parse_settings

    (tmp_path / "c.wasm").write_bytes(tiny_component.read_bytes())
    out = tmp_path / "dist" / "wasm-oci"
    settings = parse_settings({"path": "c.wasm"}, root=tmp_path)

    def build(version: str) -> BuildOutput:
        return build_artifact(
            settings,
            root=tmp_path,
            project={"name": "t"},
            name="t",
            version=version,
            out_dir=out,
            log=lambda _m: None,
            waiting=lambda _m: None,
        )

    first = build("1")
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    killed = out / ".t-1.999999999.x1y2"  # what an install killed half-way (no such pid) left
    (killed / "new").mkdir(parents=True)
    assert build("1").pack.layout == first.pack.layout
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    with pytest.raises(WasmOciError, match=r"tags\[0\]"):
        build("1!0")
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    (tmp_path / "c.wasm").write_bytes(b"not wasm any more")
    with pytest.raises(WasmOciError, match=r"c\.wasm is not a valid Wasm file"):
        build("1")
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert first.component.read_bytes()[:4] == b"\0asm"


NESTED_WIT = """\
package acme:calc@1.2.0;

package other:inner@2.0.0 {
  interface host {
    factor: func() -> u32;
  }
  world only-inner {
    import host;
  }
}

world calculator {
  import other:inner/host@2.0.0;
}
"""


def test_worlds_come_from_wasm_tools_resolution_with_nested_packages(tmp_path: Path) -> None:
    """A bare world name is the root package's (as componentize-py picks it), even with nested
    `package x:y { ... }` blocks; a world only a nested package defines is not the root's."""
    (tmp_path / "wit" / "deps" / "other").mkdir(parents=True)
    (tmp_path / "wit" / "deps" / "other" / "o.wit").write_text(
        "package other:pkg@9.0.0;\nworld calculator {}\n"
    )
    (tmp_path / "wit" / "world.wit").write_text(NESTED_WIT)
    resolution = resolve(tmp_path / "wit")
    assert str(resolution.root) == "acme:calc@1.2.0"
    assert resolution.qualified("calculator") == "acme:calc/calculator@1.2.0"
    assert resolution.qualified("only-inner") is None  # the regex took it as acme:calc's
    assert resolution.qualified("other:inner/only-inner@2.0.0") == "other:inner/only-inner@2.0.0"
    assert resolution.qualified("other:pkg/calculator") == "other:pkg/calculator"
    assert resolution.qualified("other:pkg/calculator@1.0.0") is None
    other = tmp_path / "other.wit"
    other.write_text("package zed:z;\nworld unrelated {}\n")
    found = find_world([other, tmp_path / "wit"], "calculator")
    assert found is not None and found[1] == "acme:calc/calculator@1.2.0"
    assert found[0].wit == tmp_path / "wit"
    broken = tmp_path / "broken.wit"
    broken.write_text("package acme:x;\nworld w {\n")
    with pytest.raises(WasmOciError, match="invalid WIT"):
        resolve(broken)


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("wasi:http/proxy@0.2.0", True),
        ("acme:calc/calculator", True),
        ("%acme:my-pkg/w2@1.0.0-rc.1+b", True),
        ("not a world!", False),
        ("acme:calc", False),
        ("acme:calc/calculator@1.0", False),
        ("Acme:calc/x", False),
        ("acme:calc/x@", False),
    ],
)
def test_world_name_grammar(text: str, ok: bool) -> None:
    assert (world_name_problem(text) is None) is ok


def test_explicit_target_must_be_targeted(tmp_path: Path, tiny_component: Path) -> None:
    wit = tmp_path / "tiny.wit"
    wit.write_text(TINY_WIT + "\nworld exports-only {\n  export math;\n}\n")
    assert verify_target("acme:tiny/tiny@0.1.0", [wit], tiny_component) is None
    assert verify_target("acme:tiny/exports-only@0.1.0", [wit], tiny_component) == (
        "the component does not target acme:tiny/exports-only@0.1.0: "
        "missing import named `acme:tiny/host@0.1.0`"
    )
    wit.write_text(
        TINY_WIT + "\nworld more {\n  import host;\n  export math;\n"
        "  export add: func(a: u32, b: u32) -> u32;\n  export extra: func();\n}\n"
    )
    assert verify_target("acme:tiny/more@0.1.0", [wit], tiny_component) == (
        "the component does not target acme:tiny/more@0.1.0: missing export named `extra`"
    )
    assert verify_target("acme:tiny/nope@0.1.0", [wit], tiny_component) == (
        f"world acme:tiny/nope@0.1.0 is not defined in {wit}"
    )
    assert verify_target("not a world!", [wit], tiny_component) == (
        "target 'not a world!' is not a world name: use ns:pkg/world@version, "
        "e.g. wasi:http/proxy@0.2.0"
    )
    # the default: the configured world when targeted, else another world of the package
    assert default_target([wit], "tiny", tiny_component) == ("acme:tiny/tiny@0.1.0", None)
    assert default_target([wit], "more", tiny_component) == ("acme:tiny/tiny@0.1.0", None)


@pytest.mark.slow
def test_componentize_py_targets_are_verified_or_null_with_a_warning(
    tmp_path: Path,
    calc_component: Path,
    cli_component: Path,
    http_component: Path,
    tiny_component: Path,
    wasi_wit_dir: Path,
) -> None:
    """Every fixture's default target is either null with the warning, or a world that
    `wasm-tools component targets` (run here independently) accepts."""
    from tests.wasm_fixtures import CALC_WIT, CLI_WIT, HTTP_WIT, wasm_tools_run

    cases = {
        "calc": (calc_component, CALC_WIT, "calculator"),
        "cli": (cli_component, CLI_WIT, "app"),
        "http": (http_component, HTTP_WIT, "app"),
        "tiny": (tiny_component, TINY_WIT, "tiny"),
    }
    found: dict[str, str | None] = {}
    for name, (component, text, world) in cases.items():
        wit = tmp_path / name / "wit"
        shutil.copytree(wasi_wit_dir, wit / "deps")
        (wit / "app.wit").write_text(text)
        target, warning = default_target([wit], world, component)
        found[name] = target
        if target is None:
            assert warning is not None and "\n" not in warning
            assert warning.startswith("component.target is null: the component does not target ")
            assert "missing import named `wasi:" in warning
            # The exact line, at the wasi:cli version the project's WIT has (0.2.12 here), not
            # the 0.2.9 componentize-py links on its own.
            assert warning.endswith(
                f"add `include wasi:cli/imports@0.2.12;` to world {world}, or use stub-wasi"
            ), warning
            continue
        assert warning is None
        checked = wasm_tools_run("component", "targets", wit, component, "--world", target)
        assert checked.returncode == 0, checked.stderr
    assert found == {
        "calc": None,  # componentize-py adds ~25 WASI imports the world does not have
        "cli": "acme:cli-app/app@0.1.0",  # wasi:cli/command covers them
        "http": None,  # componentize-py's own WASI 0.2.9 imports are not in wasi:http/proxy
        "tiny": "acme:tiny/tiny@0.1.0",
    }
    # Without WASI WIT in the project the line names the version componentize-py linked, and
    # where its WIT must go.
    bare = tmp_path / "bare" / "wit"
    bare.mkdir(parents=True)
    (bare / "app.wit").write_text(CALC_WIT)
    target, warning = default_target([bare], "calculator", calc_component)
    assert target is None and warning is not None
    linked = re.search(r"missing import named `wasi:[a-z-]+/[a-z-]+@([0-9.]+)`", warning)
    assert linked, warning
    assert warning.endswith(
        f"add `include wasi:cli/imports@{linked[1]};` to world calculator with the "
        f"wasi:cli@{linked[1]} WIT in {bare}/deps/ (`hatch-wasm-oci wit fetch`), or use stub-wasi"
    ), warning


def test_input_key_covers_every_input(tmp_path: Path) -> None:
    (tmp_path / "wit").mkdir()
    (tmp_path / "wit" / "w.wit").write_text("package a:b;\nworld w {}\n")
    (tmp_path / "src" / "pkg").mkdir(parents=True)
    (tmp_path / "src" / "pkg" / "app.py").write_text("x = 1\n")
    (tmp_path / "dist").mkdir()
    source = ComponentizePySource(("wit",), "w", "pkg.app", ("src",))
    dists = ["hatchling==1.0"]

    def key(src: ComponentizePySource = source, dists: list[str] = dists) -> str:
        return input_key(src, tmp_path, exclude=[tmp_path / "dist"], distributions=dists)

    base = key()
    assert key() == base
    # Outputs, bytecode and hidden directories are not inputs.
    (tmp_path / "dist" / "out.wasm").write_bytes(b"x")
    (tmp_path / "src" / "pkg" / "__pycache__").mkdir()
    (tmp_path / "src" / "pkg" / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"x")
    (tmp_path / "src" / ".git").mkdir()
    (tmp_path / "src" / ".git" / "HEAD").write_text("x")
    assert key() == base
    changes = []
    (tmp_path / "src" / "pkg" / "app.py").write_text("x = 2\n")
    changes.append(key())
    (tmp_path / "src" / "pkg" / "data.txt").write_text("new file\n")
    changes.append(key())
    (tmp_path / "wit" / "w.wit").write_text("package a:b;\nworld w { }\n")
    changes.append(key())
    changes.append(key(dists=["hatchling==1.1"]))
    changes.append(key(ComponentizePySource(("wit",), "w", "pkg.app", ("src",), stub_wasi=True)))
    changes.append(key(ComponentizePySource(("wit",), "w", "pkg.app", ("src",), args=("-q",))))
    other_mode = deterministic.unavailable() is not None  # the default is the other one
    changes.append(input_key(source, tmp_path, distributions=dists, reproducible=other_mode))
    assert len({base, *changes}) == len(changes) + 1


def test_compiler_arguments() -> None:
    source = ComponentizePySource(
        ("wit", "more.wit"), "w", "pkg.app", ("src", "lib"), True, ("--module-worlds", "m=w")
    )
    assert compiler_arguments(source, Path("out.wasm")) == [
        "-d", "wit", "-d", "more.wit", "-w", "w", "componentize", "-p", "src", "-p", "lib",
        "--stub-wasi", "--module-worlds", "m=w", "pkg.app", "-o", "out.wasm",
    ]  # fmt: skip


BUMPER_WIT = """\
package demo:bumper@0.2.0;

world bumper {
  export bump-minor: func(version: string) -> result<string, string>;
}
"""
BUMPER_APP = """\
import semver
import wit_world
from componentize_py_types import Err


class WitWorld(wit_world.WitWorld):
    def bump_minor(self, version: str) -> str:
        try:
            return str(semver.Version.parse(version).bump_minor())
        except ValueError as exc:
            raise Err(str(exc))
"""


@pytest.mark.slow
def test_build_environment_packages_are_bundled_and_stub_wasi(
    hatch_env: dict[str, str], tmp_path: Path
) -> None:
    """Packages of the build environment (the target's ``dependencies``) are visible to
    componentize-py: the component imports ``semver``."""
    project = write_project(
        tmp_path / "bumper",
        name="bumper",
        version="0.2.0",
        project_extra='dependencies = ["semver>=3"]\n',
        wasm_oci=(
            'dependencies = ["semver>=3"]\n'
            "[tool.hatch.build.targets.wasm-oci.componentize-py]\n"
            'wit-path = "wit/bumper.wit"\nworld = "bumper"\napp = "bumper_app"\n'
            'python-path = ["src"]\nstub-wasi = true\n'
        ),
        files={"wit/bumper.wit": BUMPER_WIT, "src/bumper_app.py": BUMPER_APP},
    )
    run_hatch(project, "build", "-t", "wasm-oci", env=hatch_env)
    layout = only_layout(project)
    manifest, _ = manifest_of(layout, "0.2.0")
    config = json.loads(blob(layout, manifest["config"]["digest"]).read_text())
    assert config["component"]["target"] == "demo:bumper/bumper@0.2.0"
    layer = blob(layout, manifest["layers"][0]["digest"])
    wasm_tools("component", "targets", project / "wit" / "bumper.wit", layer)
    imports, exports = wit_world(layer)
    assert imports == set()  # stub-wasi: no WASI imports
    assert "bump-minor" in exports
    assert set(config["component"]["exports"]) == exports

    engine = wasmtime.Engine()
    component = wc.Component.from_file(engine, str(layer))
    store = wasmtime.Store(engine)
    instance = wc.Linker(engine).instantiate(store, component)
    index = instance.get_export_index(store, "bump-minor")
    assert index is not None
    func = instance.get_func(store, index)
    assert func is not None
    results = []
    for version in ("1.2.3", "not-a-version"):
        results.append(func(store, version))
        func.post_return(store)
    assert results[0] == wc.Variant("ok", "1.3.0")
    assert isinstance(results[1], wc.Variant) and results[1].tag == "err"
    assert "not-a-version is not valid SemVer string" in str(results[1].payload)


@pytest.mark.slow
def test_require_runtime_dependencies_that_hatch_did_not_install(
    hatch_env: dict[str, str], tmp_path: Path
) -> None:
    """Hatch 1.16+ ignores ``require-runtime-dependencies`` for ``-t <custom target>``
    (pypa/hatch#2110): the builder says so, with the fix, before compiling."""
    project = write_project(
        tmp_path / "needs-deps",
        project_extra='dependencies = ["semver>=3"]\n',
        wasm_oci=(
            "require-runtime-dependencies = true\n"
            "[tool.hatch.build.targets.wasm-oci.componentize-py]\n"
            'wit-path = "wit/bumper.wit"\nworld = "bumper"\napp = "bumper_app"\n'
            'python-path = ["src"]\n'
        ),
        files={"wit/bumper.wit": BUMPER_WIT, "src/bumper_app.py": BUMPER_APP},
    )
    run = run_hatch(project, "build", "-t", "wasm-oci", env=hatch_env, check=False)
    assert run.returncode != 0
    assert (
        f"wasm-oci: {TARGET}.require-runtime-dependencies: the build environment lacks "
        f"semver>=3 (Hatch did not install the project's dependencies); list them in "
        f"{TARGET}.dependencies instead"
    ) in run.stderr.splitlines()
    assert "Compiling" not in run.output
    assert not (project / "dist").exists()


def test_install_from_another_file_system_replaces_the_earlier_build(
    tmp_path: Path, tiny_component: Path
) -> None:
    """The build hook stages in the system temp dir: installing from another file system copies,
    replaces an earlier layout whole, and drops a tar the new build no longer makes."""
    import os
    import tempfile

    from hatch_wasm_oci.oci.layout_reader import OciLayout
    from hatch_wasm_oci.project.pipeline import build_artifact, install_artifact
    from hatch_wasm_oci.project.settings import parse_settings

    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("needs /dev/shm on a file system of its own")
    (tmp_path / "c.wasm").write_bytes(tiny_component.read_bytes())
    out = tmp_path / "dist" / "wasm-oci"
    (out / "t-1").mkdir(parents=True)
    (out / "t-1" / "from-an-older-build").write_text("old")
    for tar in (True, False):
        settings = parse_settings({"path": "c.wasm", "tar": tar}, root=tmp_path)
        with tempfile.TemporaryDirectory(dir=shm) as staging:
            staged = build_artifact(
                settings,
                root=tmp_path,
                project={"name": "t"},
                name="t",
                version="1",
                out_dir=Path(staging),
                log=lambda _m: None,
                install=False,
            )
            placed = install_artifact(staged, out)
        assert sorted(os.listdir(out)) == (["t-1", "t-1.tar"] if tar else ["t-1"])
        assert placed.pack.layout == out / "t-1"
        assert placed.pack.tar == (out / "t-1.tar" if tar else None)
        OciLayout.open(placed.pack.layout).verify()
        assert placed.component.is_file() and out in placed.component.parents
        assert set(os.listdir(out / "t-1")) == {"blobs", "index.json", "oci-layout"}


@pytest.mark.slow
def test_tag_templates_use_hatch_context_and_reproducible_false_stamps_build_time(
    hatch_env: dict[str, str], tiny_component: Path, tmp_path: Path
) -> None:
    from datetime import datetime, timezone

    project = write_prebuilt_project(
        tmp_path / "ctx",
        tiny_component,
        wasm_oci=(
            'tags = ["{version}", "{env:GIT_SHA}", "{env:NO_SUCH_VAR:fallback}"]\n'
            "reproducible = false\n"
        ),
        version="1.2.0+local.3",
    )
    before = datetime.now(tz=timezone.utc).replace(microsecond=0)
    run = run_hatch(
        project, "build", "-t", "wasm-oci", env=hatch_env, extra_env={"GIT_SHA": "abc1234"}
    )
    after = datetime.now(tz=timezone.utc)
    assert (
        "tag '1.2.0_local.3' is not SemVer (a local version); wkg and other SemVer resolvers "
        "will not see it"
    ) in run.output
    (layout,) = layout_dirs(project)
    index = json.loads((layout / "index.json").read_text())
    tags = [m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]]
    assert sorted(tags) == ["1.2.0_local.3", "abc1234", "fallback"]
    manifest, _ = manifest_of(layout, "abc1234")
    annotations = manifest["annotations"]
    assert isinstance(annotations, dict)
    created = datetime.strptime(
        annotations["org.opencontainers.image.created"], "%Y-%m-%dT%H:%M:%SZ"
    ).replace(tzinfo=timezone.utc)
    assert before <= created <= after
    # an unset variable without a default: one line with the TOML path, nothing in dist/
    (project / "dist").rename(tmp_path / "old-dist")
    failed = run_hatch(project, "build", "-t", "wasm-oci", env=hatch_env, check=False)
    assert failed.returncode != 0
    assert (
        f"wasm-oci: {TARGET}.tags[1]: cannot format '{{env:GIT_SHA}}': "
        "Nonexistent environment variable must set a default: GIT_SHA"
    ) in failed.stderr
    assert "Traceback" not in failed.output
    assert not layout_dirs(project)


@pytest.mark.parametrize("epoch", [None, "1700000000"])
def test_created_agrees_with_hatchlings_reproducible_timestamp(
    epoch: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SOURCE_DATE_EPOCH is read in one place (oci.config), with hatchling's meaning."""
    from datetime import datetime, timezone

    from hatchling.builders.utils import get_reproducible_timestamp

    from hatch_wasm_oci.oci.config import created_timestamp

    if epoch is None:
        monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    else:
        monkeypatch.setenv("SOURCE_DATE_EPOCH", epoch)
    hatchling = datetime.fromtimestamp(get_reproducible_timestamp(), tz=timezone.utc)
    assert created_timestamp() == hatchling.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.slow
def test_explicit_target_the_component_does_not_target_fails_the_build(
    hatch_env: dict[str, str], tiny_component: Path, tmp_path: Path
) -> None:
    project = write_prebuilt_project(
        tmp_path / "target",
        tiny_component,
        wasm_oci='target = "acme:tiny/exports-only@0.1.0"\n',
    )
    (project / "wit").mkdir()
    (project / "wit" / "tiny.wit").write_text(
        TINY_WIT + "\nworld exports-only {\n  export math;\n}\n"
    )
    run = run_hatch(project, "build", "-t", "wasm-oci", env=hatch_env, check=False)
    assert run.returncode != 0
    assert (
        f"wasm-oci: {TARGET}.target: the component does not target "
        "acme:tiny/exports-only@0.1.0: missing import named `acme:tiny/host@0.1.0`"
    ) in run.stderr
    assert "Traceback" not in run.output
    assert not layout_dirs(project)
    text = (project / "pyproject.toml").read_text()
    (project / "pyproject.toml").write_text(
        text.replace("acme:tiny/exports-only@0.1.0", "not a world!")
    )
    run = run_hatch(project, "build", "-t", "wasm-oci", env=hatch_env, check=False)
    assert (
        f"wasm-oci: {TARGET}.target: target 'not a world!' is not a world name: "
        "use ns:pkg/world@version, e.g. wasi:http/proxy@0.2.0"
    ) in run.stderr
    (project / "pyproject.toml").write_text(text.replace("exports-only", "tiny"))
    run_hatch(project, "build", "-t", "wasm-oci", env=hatch_env)
    (layout,) = layout_dirs(project)
    manifest, _ = manifest_of(layout, "1.0.0")
    config = json.loads(blob(layout, manifest["config"]["digest"]).read_text())
    assert config["component"]["target"] == "acme:tiny/tiny@0.1.0"
    layer = blob(layout, manifest["layers"][0]["digest"])
    wasm_tools("component", "targets", project / "wit", layer, "--world", "acme:tiny/tiny@0.1.0")


def test_pack_target_is_verified_against_wit(tiny_component: Path, tmp_path: Path) -> None:
    """`hatch-wasm-oci pack --target` checks the world like the build does (one line, exit 2)."""
    import os

    wit = tmp_path / "wit"
    wit.mkdir()
    (wit / "tiny.wit").write_text(TINY_WIT + "\nworld exports-only {\n  export math;\n}\n")

    def pack(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "hatch_wasm_oci", "pack", str(tiny_component), *args],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
            timeout=120,
        )

    bad = pack("-o", "bad", "--target", "acme:tiny/exports-only@0.1.0")  # ./wit by default
    assert (bad.returncode, bad.stderr) == (
        2,
        "hatch-wasm-oci: --target: the component does not target acme:tiny/exports-only@0.1.0: "
        "missing import named `acme:tiny/host@0.1.0`\n",
    )
    assert not (tmp_path / "bad").exists()
    grammar = pack("-o", "bad", "--target", "not a world!", "--wit", str(wit))
    assert (grammar.returncode, grammar.stderr) == (
        2,
        "hatch-wasm-oci: target 'not a world!' is not a world name: use ns:pkg/world@version, "
        "e.g. wasi:http/proxy@0.2.0\n",
    )
    good = pack("-o", "good", "--target", "acme:tiny/tiny@0.1.0")
    assert good.returncode == 0, good.stderr
    (tmp_path / "elsewhere").mkdir()
    nowit = subprocess.run(
        [
            sys.executable,
            "-m",
            "hatch_wasm_oci",
            "pack",
            str(tiny_component),
            "-o",
            "x",
            "--target",
            "acme:tiny/tiny@0.1.0",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path / "elsewhere",
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
        timeout=120,
    )
    assert nowit.returncode == 2
    assert nowit.stderr == (
        "hatch-wasm-oci: --target: no WIT to check world acme:tiny/tiny@0.1.0 against "
        "(put it in wit/, dependencies in wit/deps/)\n"
    )


def test_a_license_text_that_is_not_spdx_is_left_out_with_a_notice(
    tmp_path: Path, tiny_component: Path
) -> None:
    """PEP 621 allows ``license = {text = "..."}`` with any text; the licenses annotation must
    be an SPDX expression, so such text is left out (with a notice), not a failed build. A text
    that is an SPDX expression is kept."""
    from hatch_wasm_oci.project.pipeline import build_artifact
    from hatch_wasm_oci.project.settings import parse_settings

    (tmp_path / "c.wasm").write_bytes(tiny_component.read_bytes())
    settings = parse_settings({"path": "c.wasm"}, root=tmp_path)
    cases = (("Proprietary, all rights reserved", None), ("MIT OR Apache-2.0", "MIT OR Apache-2.0"))
    for text, expected in cases:
        logs: list[str] = []
        built = build_artifact(
            settings,
            root=tmp_path,
            project={"name": "t", "license": {"text": text}},
            name="t",
            version="1.0.0",
            out_dir=tmp_path / "dist" / text[:3],
            log=logs.append,
            waiting=lambda _m: None,
        )
        manifest = json.loads(blob(built.pack.layout, built.pack.manifest.digest).read_bytes())
        assert manifest["annotations"].get("org.opencontainers.image.licenses") == expected
        notices = [line for line in logs if "not an SPDX license expression" in line]
        assert len(notices) == (1 if expected is None else 0), logs
