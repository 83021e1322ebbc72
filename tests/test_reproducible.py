"""Reproducible compiles: the section differ, the controlled compiler run (staged inputs, clean
environment), live output with a one-line summary naming the project's file and line, and cold
componentize-py builds in two checkouts compared section by section."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import wasmtime
import wasmtime.component as wc

from hatch_wasm_oci.project.componentize import (
    FIXED_EPOCH,
    BuildStepError,
    compiler_summary,
    componentize,
    error_summary,
    run_step,
    sandbox_paths,
)
from hatch_wasm_oci.project.settings import ComponentizePySource
from hatch_wasm_oci.wasm.diff import diff, leaves, report
from tests.hatch_fixtures import (
    EXAMPLE_PROJECT,
    blob,
    copy_project,
    layout_dirs,
    run_hatch,
    write_project,
)
from tests.registry_fixtures import RegistryServer, clean_env, plain_push, run_cli
from tests.wasm_fixtures import CALC_WIT, wasm_tools

TARGET = "tool.hatch.build.targets.wasm-oci"

# -- the differ --------------------------------------------------------------------------------

MODULE_WAT = """\
(module
  (memory 1)
  (func (export "f") (result i32) i32.const {answer})
  (data (i32.const 16) "{first}")
  (data (i32.const {second_at}) "0123456789"))
"""


def _module(tmp_path: Path, name: str, **values: object) -> bytes:
    wat = tmp_path / f"{name}.wat"
    wat.write_text(MODULE_WAT.format(**values))
    wasm_tools("parse", wat, "-o", tmp_path / f"{name}.wasm")
    return (tmp_path / f"{name}.wasm").read_bytes()


def test_differ_maps_bytes_to_sections_and_memory(tmp_path: Path) -> None:
    base = _module(tmp_path, "a", answer=7, first="hello", second_at=64)
    assert report(base, base) == []
    paths = [leaf.path for leaf in leaves(base)]
    assert paths[:3] == ["preamble", "type[0]/header", "type[0]"]
    assert "data[0]" in paths and "code[0]" in paths

    # One byte of code and one byte of data: two leaves, the data one at its memory address.
    other = _module(tmp_path, "b", answer=9, first="hellO", second_at=64)
    found = {d.path: d for d in diff(base, other)}
    assert set(found) == {"code[0]", "data[0]"}
    assert found["code[0]"].changed == 1 and not found["code[0]"].memory
    assert found["data[0]"].memory and found["data[0]"].ranges == ((16 + 4, 16 + 5),)
    assert "memory 0x14..0x15" in found["data[0]"].line()

    # A segment moved: compared as memory, not as shifted bytes.
    moved = _module(tmp_path, "c", answer=7, first="hello", second_at=65)
    (moved_data,) = [d for d in diff(base, moved) if d.path == "data[0]"]
    assert moved_data.ranges == ((64, 75),)

    # Components: nested core modules are opened.
    component = _component(tmp_path)
    assert any(p.startswith("core-module[0]/") for p in (leaf.path for leaf in leaves(component)))
    assert report(b"not wasm", b"not wasm!") == [
        "binary: 8 vs 9 bytes, not comparable byte by byte"
    ]


def _component(tmp_path: Path) -> bytes:
    from tests.wasm_fixtures import TINY_CORE_WAT, TINY_WIT

    (tmp_path / "t.wat").write_text(TINY_CORE_WAT)
    (tmp_path / "t.wit").write_text(TINY_WIT)
    wasm_tools("parse", tmp_path / "t.wat", "-o", tmp_path / "core.wasm")
    wasm_tools(
        "component", "embed", "--world", "tiny", tmp_path / "t.wit", tmp_path / "core.wasm",
        "-o", tmp_path / "embedded.wasm",
    )  # fmt: skip
    wasm_tools("component", "new", tmp_path / "embedded.wasm", "-o", tmp_path / "t.component")
    return (tmp_path / "t.component").read_bytes()


# -- the one-line summary ----------------------------------------------------------------------

# componentize-py's own output (through our runner) for a WIT syntax error ...
WIT_ERROR = """\
failed to resolve directory while parsing WIT for path [wit]

Caused by:
    0: failed to parse package: wit
    1: expected ':', found keyword `func`
            --> wit/world.wit:22:7
             |
          22 |   sum func(values: list<operand>) -> outcome;
             |       ^
"""
# ... and for a Python syntax error in the app (the first -p entry is /0 in its sandbox).
PY_ERROR = """\
  File "/0/pkg/app.py", line 13
    def broken(self:
              ^
SyntaxError: '(' was never closed


Caused by:
    SyntaxError: '(' was never closed (app.py, line 13)
"""
NODE_ERROR = """\
/work/tool/build.js:12
    throw new Error("no world named inventory")
    ^

Error: no world named inventory
    at Object.<anonymous> (/work/tool/build.js:12:11)

Node.js v20.11.1
"""


def test_summary_is_the_line_naming_the_error() -> None:
    assert error_summary(WIT_ERROR) == "expected ':', found keyword `func` --> wit/world.wit:22:7"
    translated = "\n".join(map(sandbox_paths(["src"]), PY_ERROR.splitlines()))
    assert error_summary(translated) == (
        "SyntaxError: '(' was never closed (src/pkg/app.py, line 13)"
    )
    assert error_summary(NODE_ERROR) == "Error: no world named inventory"
    assert error_summary("compiling...\nwasm-tools: error: unknown section\n  ^\n") == (
        "wasm-tools: error: unknown section"
    )
    assert error_summary("step 1\nit broke\n   ^^^\n") == "it broke"
    assert error_summary("") == "no output"
    # Only the sandbox's own top-level numbers are mapped; other paths stay as they are.
    translate = sandbox_paths([".", "lib"])
    assert translate('File "/0/app.py"') == 'File "app.py"'
    assert translate("at /1/x.py and /2/y.py, 1/2/3") == "at lib/x.py and /2/y.py, 1/2/3"


# componentize-py 0.25 for a world name that is not in a WIT with dependencies: its last cause
# ends in a list and names no world.
UNRESOLVED_WORLD = """\
Traceback (most recent call last):
  File "/venv/bin/componentize-py", line 6, in <module>
    sys.exit(script())
             ^^^^^^^^
AssertionError: Unable to resolve `Some("nosuch")`.
Available worlds: [
    "wasi:cli/imports@0.2.12",
    "example:inventory/inventory@0.1.0",
]
WIT paths: [
    "wit",
]

Caused by:
    There are multiple main packages; a world must be explicitly chosen:
      wasi:cli/imports@0.2.12
      example:inventory/inventory@0.1.0
"""


def test_an_unknown_world_is_named_with_the_worlds_there_are() -> None:
    assert compiler_summary(UNRESOLVED_WORLD) == (
        "world 'nosuch' was not found in the WIT; available worlds: wasi:cli/imports@0.2.12, "
        "example:inventory/inventory@0.1.0"
    )


# componentize-py 0.25 for a world importing a WASI package that is not in wit/deps: the
# chain's last entry is the error, its indented continuation lists the known packages.
MISSING_PACKAGE = """\
failed to resolve directory while parsing WIT for path [wit]

Caused by:
    package 'wasi:cli@0.2.12' not found. known packages:
        acme:greeter@0.1.0
         --> wit/world.wit:8:11
          |
        8 |   include wasi:cli/imports@0.2.12;
          |           ^-------
"""
BACKTRACE = """\

Stack backtrace:
   0: <anyhow::Error as core::convert::From<wit_parser::Error>>::from
  31: __libc_start_main_impl
             at ./csu/../csu/libc-start.c:360:3
  32: _start
"""


# jco 1.35 (`jco transpile` of a file that is not Wasm): its label, the error, then frames.
JCO_ERROR = """\
(jco transpileCmd) ComponentError: expected `(`
     --> <anon>:1:1
      |
    1 | not wasm
      | ^
    at fn (file:///n/jco-transpile/vendor/js-component-bindgen-component.js:10399:17)
    at generate (file:///n/jco-transpile/vendor/js-component-bindgen-component.js:9958:10)
    at async transpileCmd (file:///n/jco/dist/cmd/transpile.js:135:23)
    at async file:///n/jco/dist/jco.js:340:17
"""
JCO_NODE_ERROR = """\
(jco componentize) Error: ENOENT: no such file or directory, open 'nope.js'
    at async open (node:internal/fs/promises:637:25)
    at async file:///n/jco/dist/jco.js:340:17 {
  errno: -2,
  code: 'ENOENT',
}
"""


def test_summary_of_a_jco_failure_is_its_error_not_its_last_frame() -> None:
    assert error_summary(JCO_ERROR) == (
        "(jco transpileCmd) ComponentError: expected `(` --> <anon>:1:1"
    )
    assert error_summary(JCO_NODE_ERROR) == (
        "(jco componentize) Error: ENOENT: no such file or directory, open 'nope.js'"
    )


def test_summary_of_an_error_chain_is_its_last_entry_not_a_continuation() -> None:
    expected = "package 'wasi:cli@0.2.12' not found --> wit/world.wit:8:11"
    assert error_summary(MISSING_PACKAGE) == expected
    assert error_summary(MISSING_PACKAGE + BACKTRACE, first=True) == expected
    assert error_summary(WIT_ERROR + BACKTRACE) == (
        "expected ':', found keyword `func` --> wit/world.wit:22:7"
    )
    assert error_summary("it broke\n" + BACKTRACE) == "it broke"


def test_a_missing_wasi_package_is_named_by_the_real_compiler(tmp_path: Path) -> None:
    (tmp_path / "wit").mkdir()
    (tmp_path / "wit" / "world.wit").write_text(
        "package acme:greeter@0.1.0;\n\ninterface greet {\n  hello: func() -> string;\n}\n\n"
        "world greeter {\n  export wasi:cli/run@0.2.12;\n  export greet;\n}\n"
    )
    (tmp_path / "app.py").write_text("")
    source = ComponentizePySource(("wit",), "greeter", "app", (), False, ())
    with pytest.raises(BuildStepError) as caught:
        componentize(
            source, root=tmp_path, workdir=tmp_path / "work", where="W", use_cache=False,
            log=lambda _: None,
        )  # fmt: skip
    assert str(caught.value) == (
        "W: componentize-py failed (exit status 1): package 'wasi:cli@0.2.12' not found "
        "--> wit/world.wit:8:10"
    )


def test_step_output_is_streamed_while_the_step_runs(tmp_path: Path) -> None:
    """The step waits for a file that the log callback creates when it sees the first line:
    it only finishes when its output arrives live, not after it exits."""
    flag = tmp_path / "seen"
    script = (
        "import os, sys, time\n"
        "print('first line', flush=True)\n"
        "deadline = time.monotonic() + 20\n"
        f"while not os.path.exists({str(flag)!r}):\n"
        "    if time.monotonic() > deadline: sys.exit('never streamed')\n"
        "    time.sleep(0.02)\n"
        "print('error: the second line names it', flush=True)\n"
        "print('Node.js v20.11.1')\n"
        "sys.exit(4)\n"
    )
    seen: list[str] = []

    def log(line: str) -> None:
        seen.append(line)
        if "first line" in line:
            flag.touch()

    with pytest.raises(BuildStepError) as caught:
        run_step([sys.executable, "-c", script], cwd=tmp_path, where="W", shown="s", log=log)
    assert seen == ["first line", "error: the second line names it", "Node.js v20.11.1"]
    assert str(caught.value) == "W: s failed (exit status 4): error: the second line names it"
    assert caught.value.streamed

    # Hatch's -q: nothing streamed; the output stays attached for the error report.
    quiet: list[str] = []
    flag.touch()
    with pytest.raises(BuildStepError) as caught:
        run_step(
            [sys.executable, "-c", script], cwd=tmp_path, where="W", shown="s",
            log=quiet.append, verbosity=-1,
        )  # fmt: skip
    assert quiet == [] and not caught.value.streamed
    assert "first line" in caught.value.output


# -- real compiles -----------------------------------------------------------------------------

PROBE_WIT = CALC_WIT.replace(
    "  export greet: func(name: string) -> string;",
    "  export greet: func(name: string) -> string;\n  export probe: func() -> string;",
)
# What the snapshot captured while componentize-py pre-initialised the app.
PROBE_APP = """\
import random
import time

from wit_world import WitWorld as _WitWorld, exports
from wit_world.imports.types import Operand, Outcome

AT_INIT = f"{hash('abc')} {random.random()} {time.time()}"


class WitWorld(_WitWorld):
    def greet(self, name: str) -> str:
        return f"Hello, {name}!"

    def probe(self) -> str:
        return AT_INIT


class Ops(exports.Ops):
    def sum(self, values: list[Operand]) -> Outcome:
        return Outcome(total=sum(v.value for v in values), steps=[])

    def scale(self, values: list[Operand], factor: float) -> list[Operand]:
        return values
"""
SOURCE = ComponentizePySource(("wit",), "calculator", "calc.app", ("src",))


def _checkout(root: Path, wit: str = PROBE_WIT, app: str = PROBE_APP) -> Path:
    (root / "wit").mkdir(parents=True)
    (root / "wit" / "world.wit").write_text(wit)
    (root / "src" / "calc").mkdir(parents=True)
    (root / "src" / "calc" / "__init__.py").write_text("")
    (root / "src" / "calc" / "app.py").write_text(app)
    return root


# -- cold builds are byte-identical -------------------------------------------------------------

NO_CACHE = {"HATCH_WASM_OCI_NO_CACHE": "1", "HATCH_WASM_OCI_CACHE_REPOSITORY": ""}

DICE_WIT = """\
package demo:dice@0.1.0;

world dice {
  export probe: func() -> string;
  export fresh: func() -> string;
}
"""
# A bundled third-party package (semver, from the build environment) and what the snapshot keeps
# from pre-initialisation; `fresh` draws randomness at run time.
DICE_APP = """\
import os
import random
import secrets
import time
import uuid

import semver
from wit_world import WitWorld as _WitWorld

BUMPED = semver.Version.parse("1.2.3").bump_minor()
AT_INIT = f"{hash('abc')} {random.random()} {time.time()} {BUMPED}"


class WitWorld(_WitWorld):
    def probe(self) -> str:
        return f"{AT_INIT} {hash('abc')}"

    def fresh(self) -> str:
        return f"{os.urandom(16).hex()} {secrets.token_hex(16)} {uuid.uuid4()} {random.random()}"
"""


def _cold_build(
    project: Path, hatch_env: dict[str, str], scratch: Path, hash_seed: str
) -> tuple[str, Path, float]:
    """``hatch build -t wasm-oci`` with the compile cache off, its own TMPDIR, HOME and hash
    seed: the manifest digest, the layer and when the build started."""
    for name in ("tmp", "home"):
        (scratch / name).mkdir(parents=True)
    env = {
        **hatch_env,
        **NO_CACHE,
        "TMPDIR": str(scratch / "tmp"),
        "HOME": str(scratch / "home"),
        "PYTHONHASHSEED": hash_seed,
    }
    started = time.time()
    run = run_hatch(project, "build", "-t", "wasm-oci", env=env)
    assert "Compiling" in run.output and "not reproducible" not in run.output, run.output
    (layout,) = layout_dirs(project)
    index = json.loads((layout / "index.json").read_text())
    digest = index["manifests"][0]["digest"]
    manifest = json.loads(blob(layout, digest).read_text())
    return digest, blob(layout, manifest["layers"][0]["digest"]), started


def _call(engine: wasmtime.Engine, component: wc.Component, name: str) -> str:
    """``name()`` in a new instance of ``component`` (WASI from the host)."""
    linker = wc.Linker(engine)
    linker.add_wasip2()
    store = wasmtime.Store(engine)
    store.set_wasi(wasmtime.WasiConfig())
    instance = linker.instantiate(store, component)
    index = instance.get_export_index(store, name)
    assert index is not None
    func = instance.get_func(store, index)
    assert func is not None
    return str(func(store))


@pytest.mark.slow
def test_cold_builds_of_the_example_project_in_two_checkouts_give_one_digest(
    hatch_env: dict[str, str], tmp_path: Path
) -> None:
    """The issue's done-when: two cold ``hatch build -t wasm-oci`` runs of example-project, in
    two checkout paths, with their own TMPDIR, HOME, hash seed and wall clock, 2 s apart."""
    one = copy_project(EXAMPLE_PROJECT, tmp_path / "one" / "example-project")
    two = copy_project(EXAMPLE_PROJECT, tmp_path / "second" / "deeper" / "example-project")
    first, _, first_started = _cold_build(one, hatch_env, tmp_path / "s1", "1")
    time.sleep(2)
    second, _, second_started = _cold_build(two, hatch_env, tmp_path / "s2", "2")
    assert second_started - first_started >= 2
    assert first == second


@pytest.mark.slow
def test_cold_builds_with_a_bundled_dependency_in_two_checkouts_are_identical(
    hatch_env: dict[str, str], tmp_path: Path
) -> None:
    """Two cold builds (no compile cache) in two checkout paths, with their own TMPDIR, HOME,
    hash seed and wall clock, and host noise (stale bytecode, file times) in the second: one
    digest. What pre-initialisation saw is fixed (hash seed, `random`, the clock at
    SOURCE_DATE_EPOCH); randomness at run time comes from the host, fresh in every instance."""
    config = (
        'dependencies = ["semver>=3"]\n'
        "[tool.hatch.build.targets.wasm-oci.componentize-py]\n"
        'wit-path = "wit"\nworld = "dice"\napp = "dice_app"\npython-path = ["src"]\n'
    )
    files = {"wit/world.wit": DICE_WIT, "src/dice_app.py": DICE_APP}
    one = write_project(tmp_path / "one" / "dice", name="dice", wasm_oci=config, files=files)
    two = write_project(
        tmp_path / "second" / "deeper" / "dice", name="dice", wasm_oci=config, files=files
    )
    (two / "src" / "__pycache__").mkdir()
    (two / "src" / "__pycache__" / "dice_app.cpython-311.pyc").write_bytes(b"stale bytecode")
    os.utime(two / "src" / "dice_app.py", (1_700_000_000, 1_700_000_000))
    first, first_layer, first_started = _cold_build(one, hatch_env, tmp_path / "s1", "1")
    time.sleep(2)
    second, second_layer, second_started = _cold_build(two, hatch_env, tmp_path / "s2", "2")
    assert second_started - first_started >= 2
    a, b = first_layer.read_bytes(), second_layer.read_bytes()
    assert diff(a, b) == [], report(a, b)
    assert first == second
    for checkout in (one, two, tmp_path):
        assert str(checkout).encode() not in a

    engine = wasmtime.Engine()
    component = wc.Component.from_file(engine, str(first_layer))
    init_hash, init_random, init_clock, bumped, run_hash = _call(engine, component, "probe").split()
    assert bumped == "1.3.0"  # semver came from the build environment
    assert float(init_clock) - FIXED_EPOCH < 1  # the clock at pre-initialisation
    assert run_hash == init_hash  # the hash seed is the snapshot's, in every instance
    fresh = [_call(engine, component, "fresh").split() for _ in range(2)]
    for (urandom_a, secret_a, uuid_a, random_a), (urandom_b, secret_b, uuid_b, random_b) in [
        (fresh[0], fresh[1])
    ]:
        assert urandom_a != urandom_b and len(urandom_a) == 32
        assert secret_a != secret_b and uuid_a != uuid_b
        # componentize-py reseeds `random` from the host on the first call of every instance.
        assert random_a != random_b != init_random


def test_a_wit_syntax_error_names_the_projects_file_and_line(tmp_path: Path) -> None:
    root = _checkout(tmp_path / "p", wit=CALC_WIT.replace("  sum: func", "  sum func"))
    logged: list[str] = []
    with pytest.raises(BuildStepError) as caught:
        componentize(
            SOURCE, root=root, workdir=tmp_path, where="W", use_cache=False,
            log=logged.append, verbosity=1,
        )  # fmt: skip
    assert logged[0].startswith(
        "componentize-py: running componentize-py -d wit -w calculator componentize -p src "
    )  # -v: the command line first
    assert str(caught.value) == (
        "W: componentize-py failed (exit status 1): "
        "expected ':', found keyword `func` --> wit/world.wit:22:7"
    )
    assert "componentize-py:             --> wit/world.wit:22:7" in logged  # streamed as it ran


@pytest.mark.slow
def test_a_python_syntax_error_through_hatch_names_the_app_file_and_line(
    hatch_env: dict[str, str], tmp_path: Path
) -> None:
    broken = PROBE_APP.replace("class Ops", "def broken(self:\n\n\nclass Ops")
    line = broken.splitlines().index("def broken(self:") + 1
    project = write_project(
        tmp_path / "broken",
        wasm_oci=(
            "[tool.hatch.build.targets.wasm-oci.componentize-py]\n"
            'wit-path = "wit"\nworld = "calculator"\napp = "calc.app"\npython-path = ["src"]\n'
        ),
        files={
            "wit/world.wit": PROBE_WIT,
            "src/calc/__init__.py": "",
            "src/calc/app.py": broken,
        },
    )
    started = time.monotonic()
    run = run_hatch(project, "build", "-t", "wasm-oci", env=hatch_env, check=False)
    assert run.returncode != 0, run.output
    summary = f"SyntaxError: '(' was never closed (src/calc/app.py, line {line})"
    assert (
        f"wasm-oci: {TARGET}.componentize-py: componentize-py failed (exit status 1): {summary}"
    ) in run.stderr.splitlines()
    # The compiler's own lines were shown once, as they came, with the sandbox path mapped.
    assert run.output.count('File "src/calc/app.py", line') == 1
    assert "/0/" not in run.output
    assert "Traceback" not in run.output
    assert time.monotonic() - started < 300


# -- hatch-wasm-oci reproduce ------------------------------------------------------------------


def _tiny_project(root: Path) -> Path:
    from tests.wasm_fixtures import TINY_COMMAND, TINY_CORE_WAT, TINY_WIT

    return write_project(
        root,
        wasm_oci=f'command = {json.dumps(TINY_COMMAND)}\npath = "build/tiny.wasm"\n',
        files={"tiny.wat": TINY_CORE_WAT, "wit/tiny.wit": TINY_WIT},
    )


def test_reproduce_says_reproducible_for_a_command_source(tmp_path: Path) -> None:
    project = _tiny_project(tmp_path / "tiny")
    run = run_cli("reproduce", "--project", project, env=clean_env(tmp_path / "home"))
    assert run.returncode == 0, run.stderr
    assert re.fullmatch(r"reproducible: sha256:[0-9a-f]{64}\n", run.stdout)
    assert run.stderr.count("\nmade the tiny component\n") == 2  # two builds, streamed
    assert not (project / "dist").exists()  # built in a temporary directory only


def _cli_in(directory: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``python -m hatch_wasm_oci ARGS`` run from ``directory``."""
    return subprocess.run(
        [sys.executable, "-m", "hatch_wasm_oci", *args],
        cwd=directory, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_reproduce_ref_matches_a_layout_or_names_the_sections_that_differ(
    tmp_path: Path, registry_anon: RegistryServer
) -> None:
    """``reproduce REF`` rebuilds the project in the current directory and compares it with a
    layout or a registry artifact: byte for byte, else which sections differ."""
    from hatch_wasm_oci.project.reproduce import cold_build
    from tests.wasm_fixtures import TINY_CORE_WAT

    project = _tiny_project(tmp_path / "tiny")
    published = cold_build(project, tmp_path / "published", log=lambda _line: None)
    (layout,) = (tmp_path / "published").iterdir()
    env = clean_env(tmp_path / "home")
    ref = f"{registry_anon.address}/acme/tiny:1.0.0"
    assert plain_push(layout, ref, env).returncode == 0
    expected = f"reproducible: {published.digest}\n"
    for target in (str(layout), f"{layout}:1.0.0", ref):
        run = _cli_in(project, "reproduce", target, "--plain-http", env=env)
        assert (run.returncode, run.stdout) == (0, expected), run.stderr

    (project / "tiny.wat").write_text(TINY_CORE_WAT.replace("i32.add", "i32.sub"))
    for target in (str(layout), ref):
        run = run_cli("reproduce", target, "--project", project, "--plain-http", env=env)
        assert run.returncode == 1, run.stderr
        first, *sections = run.stdout.splitlines()
        assert first.startswith(f"not reproducible: {target} is {published.digest}, the rebuild ")
        assert sections and all(line.startswith("  core-module[0]/") for line in sections)
        assert any(line.startswith("  core-module[0]/code[0]") for line in sections), sections

    bad = _cli_in(project, "reproduce", str(tmp_path), env=env)
    assert (bad.returncode, bad.stdout) == (2, "")
    assert bad.stderr.startswith("hatch-wasm-oci: ") and len(bad.stderr.splitlines()) == 1
