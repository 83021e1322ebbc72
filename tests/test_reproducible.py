"""Reproducible compiles: the section differ, the controlled compiler run (staged inputs, clean
environment), live output with a one-line summary naming the project's file and line, and cold
componentize-py builds in two checkouts compared section by section."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

import pytest
import wasmtime
import wasmtime.component as wc

from hatch_wasm_oci.files.user_key import key_dir
from hatch_wasm_oci.project import compile_cache
from hatch_wasm_oci.project.componentize import (
    FIXED_EPOCH,
    BuildStepError,
    componentize,
    error_summary,
    input_key,
    run_step,
    sandbox_paths,
)
from hatch_wasm_oci.project.settings import ComponentizePySource
from hatch_wasm_oci.wasm.diff import diff, leaves, report
from tests.hatch_fixtures import run_hatch, write_project
from tests.registry_fixtures import clean_env, run_cli
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


def _probe(path: Path) -> list[str]:
    engine = wasmtime.Engine()
    component = wc.Component.from_file(engine, str(path))
    linker = wc.Linker(engine)
    linker.add_wasip2()
    with linker.root() as root, root.add_instance("acme:calc/logging@1.2.0") as logging:
        logging.add_func("log", lambda _store, _message: None)
    store = wasmtime.Store(engine)
    store.set_wasi(wasmtime.WasiConfig())
    instance = linker.instantiate(store, component)
    index = instance.get_export_index(store, "probe")
    assert index is not None
    func = instance.get_func(store, index)
    assert func is not None
    return str(func(store)).split()


#: Where two cold componentize-py 0.25 compiles of the same staged inputs still differ: the
#: main core module's data section (the snapshot of the Python heap, and so its length in the
#: section headers) and one global of the second core module (an address inside that heap).
SNAPSHOT_LEAVES = {
    "core-module[0]/header",
    "core-module[0]/data[0]/header",
    "core-module[0]/data[0]",
    "core-module[1]/global[0]",
}


@pytest.mark.slow
def test_cold_compiles_in_two_checkouts_differ_only_in_the_heap_snapshot(tmp_path: Path) -> None:
    one = _checkout(tmp_path / "one" / "inventory")
    two = _checkout(tmp_path / "second" / "deeper" / "path" / "inventory")
    # Host noise that must not reach the compiler: bytecode caches, file times, an activated
    # virtual environment, a PATH with other tools.
    cache = two / "src" / "calc" / "__pycache__"
    cache.mkdir()
    (cache / "app.cpython-311.pyc").write_bytes(b"stale bytecode")
    for file in (two / "src" / "calc").iterdir():
        os.utime(file, (1_700_000_000, 1_700_000_000))
    results = []
    for root, venv in ((one, None), (two, str(tmp_path / "some-venv"))):
        logged: list[str] = []
        saved = os.environ.get("VIRTUAL_ENV")
        if venv is not None:
            os.environ["VIRTUAL_ENV"] = venv
        try:
            work = root.parent / "work"
            work.mkdir()
            results.append(
                componentize(
                    SOURCE, root=root, workdir=work, where="W", use_cache=False,
                    log=logged.append, waiting=logged.append,
                )
            )  # fmt: skip
        finally:
            if venv is not None:
                if saved is None:
                    os.environ.pop("VIRTUAL_ENV", None)
                else:
                    os.environ["VIRTUAL_ENV"] = saved
        assert "componentize-py: Component built successfully" in logged
    first, second = results
    assert first.key == second.key  # the input key ignores the checkout path and host noise
    a, b = first.path.read_bytes(), second.path.read_bytes()
    for checkout in (one, two, tmp_path):
        assert str(checkout).encode() not in a + b
    differences = diff(a, b)
    print("\n".join(["cold compile differences:", *(d.line() for d in differences)]))
    assert {d.path for d in differences} <= SNAPSHOT_LEAVES
    # The upstream cause (bytecodealliance/componentize-py#247): pre-initialisation runs with a
    # random hash seed, a randomly seeded `random` and the wall clock, all kept in the snapshot.
    hash_one, random_one, clock_one = _probe(first.path)
    hash_two, random_two, _ = _probe(second.path)
    assert (hash_one, random_one) != (hash_two, random_two)
    assert float(clock_one) > FIXED_EPOCH + 10 * 365 * 86400  # the real clock, not ours


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


def test_reproduce_says_reproducible_for_a_command_source(tmp_path: Path) -> None:
    from tests.wasm_fixtures import TINY_COMMAND, TINY_CORE_WAT, TINY_WIT

    project = write_project(
        tmp_path / "tiny",
        wasm_oci=f'command = {json.dumps(TINY_COMMAND)}\npath = "build/tiny.wasm"\n',
        files={"tiny.wat": TINY_CORE_WAT, "wit/tiny.wit": TINY_WIT},
    )
    run = run_cli("reproduce", project, env=clean_env(tmp_path / "home"))
    assert run.returncode == 0, run.stderr
    assert re.fullmatch(r"reproducible: sha256:[0-9a-f]{64}\n", run.stdout)
    assert "made the tiny component" in run.stderr  # the command's output, streamed
    assert not (project / "dist").exists()  # built in a temporary directory only


@pytest.mark.slow
def test_reproduce_names_the_sections_a_clean_compile_changes(
    tmp_path: Path, calc_component: Path
) -> None:
    """The usual build reuses the cached compile (here: the fixture's); the clean one compiles:
    componentize-py's heap snapshot differs, and the command says where."""
    from tests.wasm_fixtures import CALC_APP

    project = write_project(
        tmp_path / "calc",
        wasm_oci=(
            "[tool.hatch.build.targets.wasm-oci.componentize-py]\n"
            'wit-path = "wit"\nworld = "calculator"\napp = "app"\npython-path = ["app"]\n'
        ),
        files={"wit/world.wit": CALC_WIT, "app/app.py": CALC_APP},
    )
    source = ComponentizePySource(("wit",), "calculator", "app", ("app",))
    cache = tmp_path / "component-cache"
    key = input_key(source, project, exclude=[project / "dist"])
    assert compile_cache.save(cache, key, calc_component, notice=pytest.fail) is not None
    state = str(key_dir().parent)  # the CLI seals with this process's user key
    env = clean_env(tmp_path / "home", HATCH_WASM_OCI_CACHE=str(cache), XDG_STATE_HOME=state)
    run = run_cli("reproduce", project, env=env)
    assert run.returncode == 1, run.stderr
    lines = run.stdout.splitlines()
    assert re.fullmatch(
        r"not reproducible: sha256:[0-9a-f]{64} as built, sha256:[0-9a-f]{64} from a clean cache",
        lines[0],
    )
    assert any(line.startswith("  core-module[0]/data[0] (") for line in lines[1:])
    assert "Reusing the component compiled from identical inputs" in run.stderr
    assert "componentize-py: Component built successfully" in run.stderr
