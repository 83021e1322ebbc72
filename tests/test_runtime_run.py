"""``hatch-wasm-oci run`` and ``hatch_wasm_oci.load()`` on real componentize-py components and a
wasm-tools module, under wasmtime: every kind of value through the guest and back, commands,
exit statuses, traps, missing capabilities, the compiled-code cache."""

from __future__ import annotations

import hashlib
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import wasmtime.component as wc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hatch_wasm_oci.errors import ComponentTrap, UnknownExportError, ValueTypeError
from hatch_wasm_oci.runtime.component import LoadedComponent, load
from hatch_wasm_oci.runtime.engine import MAGIC, cache_key, compile_binary
from hatch_wasm_oci.runtime.values import Err, Ok, Some, Variant
from tests.wasm_fixtures import wasm_tools
from tests.wave_strategies import wit_values

ECHO = "acme:values/echo@0.1.0"

HELLO_MODULE_WAT = """\
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello from a core module\\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 25))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (call $proc_exit (i32.const 3))))
"""


LOOP_MODULE_WAT = """\
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start") (loop $forever (br $forever))))
"""


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One compiled cache for this module (in-process loads and CLI runs share it)."""
    path = tmp_path_factory.mktemp("runtime-cache")
    old = os.environ.get("HATCH_WASM_OCI_CACHE")
    os.environ["HATCH_WASM_OCI_CACHE"] = str(path)
    yield path
    if old is None:
        del os.environ["HATCH_WASM_OCI_CACHE"]
    else:
        os.environ["HATCH_WASM_OCI_CACHE"] = old


@pytest.fixture(scope="module")
def values(values_component: Path, cache_dir: Path) -> LoadedComponent:
    return load(values_component)


def run(*args: str | os.PathLike[str], cache: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "HATCH_WASM_OCI_CACHE": str(cache), **env}
    return subprocess.run(
        [sys.executable, "-m", "hatch_wasm_oci", "run", *map(str, args)],
        capture_output=True,
        text=True,
        env=environ,
        timeout=300,
        check=False,
    )


def test_every_kind_of_value_goes_through_the_guest_and_back(values: LoadedComponent) -> None:
    echo = values.echo
    assert echo.echo_bool(True) is True
    ints = (-128, 255, -32768, 65535, -(2**31), 2**32 - 1, -(2**63), 2**64 - 1)
    assert echo.echo_ints(*ints) == ints
    f32, f64 = echo.echo_floats(0.1, 0.1)
    assert f64 == 0.1 and f32 == pytest.approx(0.1) and f32 != 0.1  # rounded to 32 bits
    assert math.isinf(echo.echo_floats(math.inf, 1)[0])
    assert echo.echo_char("😀") == "😀"
    assert echo.echo_string("a\0é\n") == "a\0é\n"
    assert echo.echo_bytes(b"\x00\xff") == b"\x00\xff"
    assert echo.echo_bytes([1, 2]) == b"\x01\x02"
    points = [{"x": 1, "y": -2}, {"x": 3, "y": 4, "label": "p"}]
    assert echo.echo_points(points) == [
        {"x": 1, "y": -2, "label": None},
        {"x": 3, "y": 4, "label": "p"},
    ]
    assert echo.echo_shape(Variant("circle", 2.5)) == Variant("circle", 2.5)
    assert echo.echo_shape(Variant("rect", (1.5, 2))) == Variant("rect", (1.5, 2.0))
    assert echo.echo_shape("dot") == Variant("dot")
    assert echo.echo_color("blue") == "blue"
    assert echo.echo_perms({"read", "exec"}) == {"read", "exec"}
    assert echo.echo_perms(set()) == set()
    assert echo.echo_option(None) is None
    assert echo.echo_option(Some(None)) == Some(None)
    assert echo.echo_option(Some(3)) == Some(3)
    assert echo.echo_result(Ok("x")) == Ok("x")
    assert echo.echo_result(Err(7)) == Err(7)
    assert echo.echo_unit_result(Ok()) == Ok()
    assert echo.echo_unit_result(r=Err()) == Err()
    assert echo.nothing() is None
    assert values.version() == "1.0"
    assert values.function("version")() == "1.0"
    assert values[f"{ECHO}#echo-color"]("red") == "red"
    assert values.function("echo.echo-color")("green") == "green"


def test_python_values_that_do_not_fit_are_typed_errors(values: LoadedComponent) -> None:
    signature = "echo-points: func(p: list<point>) -> list<point>"
    with pytest.raises(ValueTypeError) as caught:
        values.echo.echo_points([{"x": 1}])
    assert str(caught.value) == (
        f"{ECHO}#echo-points: argument p[0]: expected point, got dict {{'x': 1}} "
        f"(missing field y); expected {signature}"
    )
    with pytest.raises(ValueTypeError, match="takes 1 argument\\(s\\), got 2"):
        values.echo.echo_color("red", "blue")
    with pytest.raises(ValueTypeError, match="unknown argument colour"):
        values.echo.echo_color(colour="red")
    with pytest.raises(ValueTypeError, match="expected color, got str 'pink' \\(cases: red, g"):
        values.echo.echo_color("pink")
    with pytest.raises(UnknownExportError) as unknown:
        values.function("nope")
    assert f"{ECHO}#echo-bool: func(v: bool) -> bool" in str(unknown.value)


def test_a_trap_names_the_python_exception_and_the_instance_recovers(
    values: LoadedComponent,
) -> None:
    with pytest.raises(ComponentTrap) as caught:
        values.echo.fail("boom")
    assert str(caught.value) == (
        f"{ECHO}#fail trapped: wasm trap: wasm `unreachable` instruction executed "
        "(the guest raised ValueError: boom)"
    )
    assert values.echo.echo_color("red") == "red"  # instantiated afresh after the trap


def test_invoke_prints_wave(values_component: Path, cache_dir: Path) -> None:
    done = run(
        values_component,
        "--invoke",
        'echo-points([{x: 1, y: 2}, {x: 3, y: 4, label: some("p")}])',
        cache=cache_dir,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == '[{x: 1, y: 2}, {x: 3, y: 4, label: some("p")}]\n'  # as wasmtime
    for call, printed in [
        (f"{ECHO}#echo-option(some(none))", "some(none)"),
        ("acme:values/echo.echo-result@0.1.0(err(3))", "err(3)"),  # wasmtime's form
        ("echo.echo-shape(rect((1.5, 2)))", "rect((1.5, 2))"),
        ("nothing()", "()"),
    ]:
        done = run("--invoke", call, values_component, cache=cache_dir)
        assert (done.returncode, done.stdout) == (0, printed + "\n"), done.stderr


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            "echo-color(pink)",
            f"hatch-wasm-oci: {ECHO}#echo-color: argument c: column 12: expected a case of "
            "color (red, green, blue), found 'pink'; expected echo-color: func(c: color) -> color",
        ),
        (
            "echo-color()",
            f"hatch-wasm-oci: {ECHO}#echo-color: missing argument(s) c; "
            "expected echo-color: func(c: color) -> color",
        ),
        ("nope()", "hatch-wasm-oci: "),
        ("echo-color(red", "hatch-wasm-oci: column 15: expected ')' to end the call"),
        (
            'fail("boom")',
            f"hatch-wasm-oci: {ECHO}#fail trapped: wasm trap: wasm `unreachable` instruction "
            "executed (the guest raised ValueError: boom)",
        ),
        (
            'read-file("/data/x.txt")',
            "the guest sees no host directories unless given: add --dir HOST::/data",
        ),
        ('get-env("SHOP")', "the guest sees no environment variables unless given: add --env SHOP"),
    ],
)
def test_invoke_errors_are_one_line(
    values_component: Path, cache_dir: Path, call: str, message: str
) -> None:
    done = run(values_component, "--invoke", call, cache=cache_dir)
    trap = "trapped" in message or "unless given" in message
    assert done.returncode == (134 if trap else 2)  # a trap: 128 + SIGABRT, as wasmtime run
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("hatch-wasm-oci: ") and message in last
    assert (
        'Traceback (most recent call last):\n  File "/' not in done.stderr.split("hatch-wasm")[-1]
    )
    if call == "nope()":
        assert "no exported function nope; exports: " in last and "echo-bool" in last


def test_capabilities_only_when_given(
    values_component: Path, cache_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "x.txt").write_text("stock")
    done = run(
        values_component,
        "--dir",
        f"{tmp_path}::/data",
        "--invoke",
        'read-file("/data/x.txt")',
        cache=cache_dir,
    )
    assert (done.returncode, done.stdout) == (0, '"stock"\n'), done.stderr
    done = run(
        values_component, "--env", "SHOP=acme", "--invoke", 'get-env("SHOP")', cache=cache_dir
    )
    assert (done.returncode, done.stdout) == (0, '"acme"\n'), done.stderr
    done = run(
        values_component,
        "--env",
        "SHOP",
        "--invoke",
        'get-env("SHOP")',
        cache=cache_dir,
        SHOP="host",
    )
    assert (done.returncode, done.stdout) == (0, '"host"\n'), done.stderr
    # HOME is set on the host, and not visible to the guest unless given.
    done = run(values_component, "--invoke", 'get-env("HOME")', cache=cache_dir)
    assert done.returncode == 134 and "add --env HOME" in done.stderr


def test_command_component_gets_its_arguments_and_its_status_propagates(
    cli_component: Path, cache_dir: Path
) -> None:
    # Unknown options (also abbreviations of run's own) and all after `--` go to the guest.
    done = run(
        cli_component, "a", "--b", "--plain", "--di", "x", "--", "--env", "y", cache=cache_dir
    )
    assert done.returncode == 0, done.stderr
    assert (
        done.stdout == "hello from a componentize-py command\nargs: a --b --plain --di x --env y\n"
    )
    failed = run(cli_component, "fail", cache=cache_dir)
    assert failed.returncode == 1
    assert failed.stdout.endswith("args: fail\n")


def test_command_sees_a_directory_only_when_given(
    cli_component: Path, cache_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "stock.txt").write_text("12 apples")
    done = run(cli_component, "read", "/data/stock.txt", cache=cache_dir)
    assert done.returncode == 134
    assert "FileNotFoundError" in done.stderr  # the guest's own traceback, streamed
    assert done.stderr.strip().splitlines()[-1] == (
        "hatch-wasm-oci: wasi:cli/run@0.2.12#run trapped: wasm trap: wasm "
        "`unreachable` instruction executed (the guest raised FileNotFoundError: [Errno 44] No "
        "such file or directory: '/data/stock.txt'); the guest sees no host directories unless "
        "given: add --dir HOST::/data"
    )
    done = run(
        cli_component, "--dir", f"{tmp_path}::/data", "read", "/data/stock.txt", cache=cache_dir
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith("args: read /data/stock.txt\n12 apples\n")


def test_core_module_runs_as_a_wasip1_command(
    tmp_path: Path, cache_dir: Path, core_module: Path
) -> None:
    wat = tmp_path / "hello.wat"
    wat.write_text(HELLO_MODULE_WAT)
    module = tmp_path / "hello.wasm"
    wasm_tools("parse", wat, "-o", module)
    done = run(module, cache=cache_dir)
    assert (done.returncode, done.stdout) == (3, "hello from a core module\n"), done.stderr
    refused = run(core_module, cache=cache_dir)
    assert refused.returncode == 2
    assert refused.stderr.strip().endswith(
        "imports env.log, which the WASI preview 1 host does not provide"
    )


def test_timeout_interrupts_a_guest_that_never_ends(tmp_path: Path, cache_dir: Path) -> None:
    wat = tmp_path / "loop.wat"
    wat.write_text(LOOP_MODULE_WAT)
    module = tmp_path / "loop.wasm"
    wasm_tools("parse", wat, "-o", module)
    done = run(module, "--timeout", "0.5", cache=cache_dir)
    assert done.returncode == 134  # a trap (interrupt), as wasmtime run -W timeout=...
    assert done.stderr == f"hatch-wasm-oci: {module} timed out after 0.5 s (--timeout)\n"
    done = run(module, "--timeout", "0", cache=cache_dir)
    assert done.stderr == (
        "hatch-wasm-oci: --timeout takes a number of seconds above 0 and at most 31536000 "
        "(a year), got 0.0\n"
    )


def test_http_component_is_refused(http_component: Path, cache_dir: Path) -> None:
    done = run(http_component, cache=cache_dir)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"hatch-wasm-oci: {http_component}: is a wasi:http/proxy component: serve it with "
        "`hatch-wasm-oci serve` (or call a function with --invoke)"
    )


def test_not_a_target(tmp_path: Path, cache_dir: Path, wit_package: Path) -> None:
    text = tmp_path / "x.wasm"
    text.write_text("hello")
    done = run(text, cache=cache_dir)
    assert done.returncode == 2 and done.stderr.startswith(f"hatch-wasm-oci: {text}: ")
    done = run(wit_package, cache=cache_dir)
    assert done.stderr.strip().endswith("is a WIT package (types only), not a component to run")
    done = run(tmp_path / "missing.wasm", cache=cache_dir)
    assert "no such file, OCI layout or registry reference" in done.stderr


def test_a_missing_path_is_not_taken_for_a_docker_hub_reference(
    tmp_path: Path, cache_dir: Path
) -> None:
    (tmp_path / "dist" / "wasm-oci").mkdir(parents=True)
    for target in ("dist/wasm-oci/nope-1.0", "dist/wasm-oci/nope:1.0"):
        done = subprocess.run(
            [sys.executable, "-m", "hatch_wasm_oci", "run", target],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env={**os.environ, "HATCH_WASM_OCI_CACHE": str(cache_dir)},
            timeout=60,
            check=False,
        )
        assert done.returncode == 2
        assert done.stderr == (
            f"hatch-wasm-oci: {target}: no such file or OCI layout (dist/wasm-oci/ exists; a "
            "registry reference starts with its host, e.g. localhost:5000/REPO:TAG)\n"
        )


class _NoCompile:
    """Stands in for wasmtime's compiler where a test requires the cache to answer."""

    def __init__(self, *args: object) -> None:
        raise AssertionError("compiled instead of using the cache")


def test_compiled_cache_is_used_and_a_bad_entry_is_rebuilt(
    tiny_component: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wasm = tiny_component.read_bytes()
    digest = "sha256:" + hashlib.sha256(wasm).hexdigest()
    compile_binary(wasm, digest, component=True, cache=tmp_path)
    (entry,) = (tmp_path / "compiled").iterdir()
    good = entry.read_bytes()
    assert good.startswith(MAGIC)

    real = wc.Component
    with monkeypatch.context() as patched:
        patched.setattr(wc, "Component", type("C", (_NoCompile, real), {}))
        component = compile_binary(wasm, digest, component=True, cache=tmp_path)
        assert component.get_export_index("add") is not None  # deserialized from the entry

    # Corrupted code under an intact header, or garbage: recompiled and rewritten.
    for bad in (good[:-100] + b"\0" * 100, b"garbage"):
        entry.write_bytes(bad)
        compile_binary(wasm, digest, component=True, cache=tmp_path)
        assert entry.read_bytes() == good

    # An intact entry copied under another binary's key is not that binary's code.
    other = wasm + b"\x00\x05\x01xpad"  # the same component plus a custom section
    other_digest = "sha256:" + hashlib.sha256(other).hexdigest()
    copied = tmp_path / "compiled" / f"{cache_key(other_digest, 'component')}.cwasm"
    copied.write_bytes(good)
    with monkeypatch.context() as patched:
        patched.setattr(wc, "Component", type("C", (_NoCompile, real), {}))
        with pytest.raises(AssertionError, match="compiled instead"):
            compile_binary(other, other_digest, component=True, cache=tmp_path)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_random_values_survive_the_round_trip_through_wasmtime(
    values: LoadedComponent, data: st.DataObject
) -> None:
    """Any value of each echo function's parameter types comes back equal (f32 rounded)."""
    for name in (
        "echo-points",
        "echo-shape",
        "echo-perms",
        "echo-option",
        "echo-result",
        "echo-string",
        "echo-bytes",
        "echo-ints",
        "echo-floats",
        "echo-char",
    ):
        function = values.function(name)
        args = [data.draw(wit_values(ty)) for _, ty in function.type.params]
        result = function(*args)
        expected = args[0] if len(args) == 1 else tuple(args)
        assert result == expected, (name, args)


def test_a_trap_in_a_project_names_the_project_files_not_guest_paths(
    values_component: Path, cache_dir: Path, tmp_path: Path
) -> None:
    """componentize-py runs the app from ``/0/app.py`` (the first python-path entry): a run of
    the project's own build shows the guest's traceback with the project's paths, as the build
    shows compiler errors; a component outside any project keeps the guest's paths."""
    project = tmp_path / "project"
    for directory in ("dist", "wit", "pkg"):
        (project / directory).mkdir(parents=True)
    (project / "pyproject.toml").write_text(
        '[project]\nname = "values"\nversion = "0.1.0"\n'
        "[tool.hatch.build.targets.wasm-oci]\n"
        'componentize-py = { wit-path = "wit", world = "values", app = "app", '
        'python-path = ["pkg"] }\n'
    )
    wasm = project / "dist" / "values.wasm"
    wasm.write_bytes(values_component.read_bytes())
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "hatch_wasm_oci",
            "run",
            "dist/values.wasm",
            "--invoke",
            'fail("boom")',
        ],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env={**os.environ, "HATCH_WASM_OCI_CACHE": str(cache_dir)},
    )
    assert done.returncode == 134, done.stderr
    assert 'File "pkg/app.py", line ' in done.stderr, done.stderr
    assert "/0/app.py" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].endswith("(the guest raised ValueError: boom)")

    # From elsewhere the same project file is named relative to where the user stands.
    done = run(wasm, "--invoke", 'fail("boom")', cache=cache_dir)
    assert f'File "{os.path.relpath(project / "pkg", Path.cwd())}/app.py"' in done.stderr

    # Outside a project nothing is rewritten.
    outside = tmp_path / "values.wasm"
    outside.write_bytes(values_component.read_bytes())
    done = run(outside, "--invoke", 'fail("boom")', cache=cache_dir)
    assert 'File "/0/app.py"' in done.stderr, done.stderr


def test_a_library_lists_its_world_not_componentize_py_internals(
    values_component: Path, cache_dir: Path
) -> None:
    done = run(values_component, cache=cache_dir)
    assert done.returncode == 2
    line = done.stderr.strip().splitlines()[-1]
    assert "exports no wasi:cli/run" in line and f"{ECHO}#echo-bool" in line, line
    assert "exports#init" not in line and "stub-wasi" not in line, line
    done = run(values_component, "--invoke", "nope()", cache=cache_dir)
    assert "no exported function nope; exports: " in done.stderr
    assert "exports#init" not in done.stderr
