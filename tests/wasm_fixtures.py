"""Real Wasm binaries for the tests, built with real tools, plus the wasm-tools WIT oracle.

Session fixtures return paths to READ-ONLY files; copy one before changing it.

* ``wasi_wit_dir``: WASI 0.2.12 WIT packages from the npm package ``@bytecodealliance/jco``
  (or the directory in ``HATCH_WASM_OCI_WASI_WIT``); one subdirectory per package.
* ``calc_component``, ``cli_component``, ``http_component``, ``values_component``:
  componentize-py builds, cached
  under ``<repo>/.cache/test-fixtures/`` by a hash of every input and the componentize-py
  version; missing ones are compiled in parallel the first time any of them is requested.
* ``core_module``, ``tiny_component``, ``wit_package``: small binaries made by wasm-tools.

``wit_world(path)`` asks ``wasm-tools component wit`` for a binary's root world and returns its
``(imports, exports)`` names in the form the binary holds them.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = [
    "CALC_APP",
    "CALC_WIT",
    "CORE_MODULE_WAT",
    "TINY_CORE_WAT",
    "TINY_WIT",
    "_component_builds",
    "_wasm_tools_dir",
    "calc_component",
    "cli_component",
    "core_module",
    "http_component",
    "tiny_component",
    "values_component",
    "wasi_wit_dir",
    "wasm_tools",
    "wasm_tools_run",
    "wit_package",
    "wit_world",
]

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / ".cache"
JCO_PACKAGE = "@bytecodealliance/jco@1.35.0"
WASI_VERSION = "0.2.12"
WASI_WIT_ENV = "HATCH_WASM_OCI_WASI_WIT"

CALC_WIT = """\
package acme:calc@1.2.0;

interface types {
  record operand {
    label: string,
    value: f64,
  }

  record outcome {
    total: f64,
    steps: list<string>,
  }
}

interface logging {
  log: func(message: string);
}

interface ops {
  use types.{operand, outcome};

  sum: func(values: list<operand>) -> outcome;
  scale: func(values: list<operand>, factor: f64) -> list<operand>;
}

world calculator {
  import logging;
  export ops;
  export greet: func(name: string) -> string;
}

world client {
  import ops;
}
"""

CALC_APP = """\
from wit_world import WitWorld as _WitWorld, exports
from wit_world.imports import logging
from wit_world.imports.types import Operand, Outcome


class WitWorld(_WitWorld):
    def greet(self, name: str) -> str:
        logging.log(f"greeting {name}")
        return f"Hello, {name}!"


class Ops(exports.Ops):
    def sum(self, values: list[Operand]) -> Outcome:
        steps = [f"+ {v.label} ({v.value})" for v in values]
        return Outcome(total=sum(v.value for v in values), steps=steps)

    def scale(self, values: list[Operand], factor: float) -> list[Operand]:
        return [Operand(label=v.label, value=v.value * factor) for v in values]
"""

CLI_WIT = f"""\
package acme:cli-app@0.1.0;

world app {{
  include wasi:cli/command@{WASI_VERSION};
}}
"""

CLI_APP = """\
import sys

from componentize_py_types import Err
from wit_world import exports


class Run(exports.Run):
    def run(self) -> None:
        print("hello from a componentize-py command")
        print("args:", " ".join(sys.argv[1:]))
        if "fail" in sys.argv[1:]:
            raise Err(None)
        if "exit" in sys.argv[1:]:
            sys.exit(int(sys.argv[-1]))
        if "read" in sys.argv[1:]:
            with open(sys.argv[-1]) as handle:
                print(handle.read())
"""

VALUES_WIT = """\
package acme:values@0.1.0;

interface echo {
  record point { x: s32, y: s32, label: option<string> }
  variant shape { circle(f64), rect(tuple<f32, f32>), dot }
  enum color { red, green, blue }
  flags perms { read, write, exec }

  echo-bool: func(v: bool) -> bool;
  echo-ints: func(a: s8, b: u8, c: s16, d: u16, e: s32, f: u32, g: s64, h: u64)
    -> tuple<s8, u8, s16, u16, s32, u32, s64, u64>;
  echo-floats: func(a: f32, b: f64) -> tuple<f32, f64>;
  echo-char: func(c: char) -> char;
  echo-string: func(s: string) -> string;
  echo-bytes: func(b: list<u8>) -> list<u8>;
  echo-points: func(p: list<point>) -> list<point>;
  echo-shape: func(s: shape) -> shape;
  echo-color: func(c: color) -> color;
  echo-perms: func(p: perms) -> perms;
  echo-option: func(o: option<option<u32>>) -> option<option<u32>>;
  echo-result: func(r: result<string, u32>) -> result<string, u32>;
  echo-unit-result: func(r: result) -> result;
  nothing: func();
  fail: func(message: string) -> string;
  read-file: func(path: string) -> string;
  get-env: func(name: string) -> string;
}

world values {
  export echo;
  export version: func() -> string;
}
"""

VALUES_APP = """\
import os

from componentize_py_types import Err
from wit_world import WitWorld as _WitWorld, exports


class WitWorld(_WitWorld):
    def version(self) -> str:
        return "1.0"


def _identity(self, *args):
    return args[0] if len(args) == 1 else tuple(args)


def _result(self, r):
    if isinstance(r, Err):
        raise r
    return r.value


class Echo(exports.Echo):
    echo_bool = echo_char = echo_string = echo_bytes = echo_points = _identity
    echo_shape = echo_color = echo_perms = echo_option = _identity
    echo_ints = echo_floats = _identity
    echo_result = echo_unit_result = _result

    def nothing(self) -> None:
        pass

    def fail(self, message: str) -> str:
        raise ValueError(message)

    def read_file(self, path: str) -> str:
        with open(path) as handle:
            return handle.read()

    def get_env(self, name: str) -> str:
        return os.environ[name]
"""

HTTP_WIT = f"""\
package acme:http-app@0.1.0;

world app {{
  include wasi:http/proxy@{WASI_VERSION};
}}
"""

HTTP_APP = """\
from componentize_py_types import Ok
from wit_world import exports
from wit_world.imports.types import (
    Fields,
    IncomingRequest,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        response = OutgoingResponse(Fields.from_list([("content-type", b"text/plain")]))
        body = response.body()
        ResponseOutparam.set(response_out, Ok(response))
        with body.write() as stream:
            stream.blocking_write_and_flush(b"hello\\n")
        OutgoingBody.finish(body, None)
"""

TINY_WIT = """\
package acme:tiny@0.1.0;

interface host {
  factor: func() -> u32;
}

interface math {
  scale: func(x: u32) -> u32;
}

world tiny {
  import host;
  export math;
  export add: func(a: u32, b: u32) -> u32;
}
"""

#: Core module behind ``tiny_component``: ``add(a, b) = a + b``; ``math.scale(x) = x * factor()``.
TINY_CORE_WAT = """\
(module
  (import "acme:tiny/host@0.1.0" "factor" (func $factor (result i32)))
  (func (export "add") (param i32 i32) (result i32)
    local.get 0
    local.get 1
    i32.add)
  (func (export "acme:tiny/math@0.1.0#scale") (param i32) (result i32)
    local.get 0
    call $factor
    i32.mul))
"""

TINY_COMMAND = (  # builds build/tiny.wasm from tiny.wat and wit/tiny.wit
    "mkdir -p build && wasm-tools parse tiny.wat -o build/core.wasm"
    " && wasm-tools component embed --world tiny wit/tiny.wit build/core.wasm"
    " -o build/embedded.wasm"
    " && wasm-tools component new build/embedded.wasm -o build/tiny.wasm"
    " && echo made the tiny component"
)

CORE_MODULE_WAT = """\
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "env" "log" (func $log (param i32 i32)))
  (memory (export "memory") 1)
  (global (export "answer") i32 (i32.const 42))
  (func (export "_start"))
  (func (export "add") (param i32 i32) (result i32)
    local.get 0
    local.get 1
    i32.add))
"""


# -- tools -------------------------------------------------------------------------------------


def _tool(name: str) -> str:
    """The path of a command-line tool, preferring the running interpreter's environment."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed (pip install -e '.[test]')")
    return found


def wasm_tools_run(
    *args: str | os.PathLike[str], input: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run ``wasm-tools`` with ``args`` and return the finished process (output captured)."""
    command = [_tool("wasm-tools"), *map(str, args)]
    return subprocess.run(command, input=input, capture_output=True, check=False)


def wasm_tools(*args: str | os.PathLike[str], input: bytes | None = None) -> str:
    """Run ``wasm-tools`` with ``args``; return stdout; fail the test with stderr on error."""
    result = wasm_tools_run(*args, input=input)
    if result.returncode != 0:
        command = " ".join(["wasm-tools", *map(str, args)])
        pytest.fail(f"{command} failed: {result.stderr.decode(errors='replace')}")
    return result.stdout.decode()


_PRINTED_IMPORT = re.compile(r'^  \(import "([^"]+)"', re.MULTILINE)
_PRINTED_EXPORT = re.compile(r'^  \(export .*?\(;\d+;\) "([^"]+)"', re.MULTILINE)


def printed_names(path: str | os.PathLike[str]) -> tuple[list[str], list[str]]:
    """A component's top-level ``(imports, exports)`` in binary order, as ``wasm-tools print
    --skeleton`` shows them (the order rust-oci-wasm's decoder lists them in)."""
    text = wasm_tools("print", "--skeleton", path)
    return _PRINTED_IMPORT.findall(text), _PRINTED_EXPORT.findall(text)


def _read_only(path: Path) -> Path:
    path.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    return path


def _publish(tmp: Path, dest: Path) -> Path:
    """Move a finished file into the cache atomically and make it read-only."""
    _read_only(tmp)
    os.replace(tmp, dest)
    return dest


# -- the WIT oracle ----------------------------------------------------------------------------

_WIT_ITEM = re.compile(r"^  (import|export) (.+)$")
_WIT_PACKAGE = re.compile(r"^package ([^;{\s]+)\s*;", re.MULTILINE)
_WIT_TOP_ITEM = re.compile(r"^(?:world|interface) (%?[a-z][a-z0-9-]*) \{", re.MULTILINE)


def _wit_name(item: str) -> str:
    """``wasi:io/poll@0.2.12;`` -> itself without ``;``; ``greet: func(...)`` -> ``greet``."""
    item = item.rstrip()
    if item.endswith(";") and ": " not in item:
        return item[:-1]
    return item.split(": ", 1)[0].lstrip("%")


def wit_world(path: str | os.PathLike[str]) -> tuple[set[str], set[str]]:
    """The root world's ``(imports, exports)`` per ``wasm-tools component wit``.

    Interface items keep their full name (``wasi:io/streams@0.2.12``), plain items their
    name (``greet``). For a WIT package (no ``world root``) it returns no imports and the
    package's worlds and interfaces, fully qualified (``acme:calc/calculator@1.2.0``).
    """
    text = wasm_tools("component", "wit", path)
    lines = text.splitlines()
    try:
        start = lines.index("world root {")
    except ValueError:
        match = _WIT_PACKAGE.search(text)
        assert match, f"no package line in wasm-tools output for {path}"
        package = match.group(1)
        namespace_name, _, version = package.partition("@")
        suffix = f"@{version}" if version else ""
        first_nested = text.find("\npackage ", match.end())
        own = text[: first_nested if first_nested >= 0 else len(text)]
        items = {
            f"{namespace_name}/{name.lstrip('%')}{suffix}" for name in _WIT_TOP_ITEM.findall(own)
        }
        return set(), items
    imports: set[str] = set()
    exports: set[str] = set()
    for line in lines[start + 1 :]:
        if line == "}":
            break
        match = _WIT_ITEM.match(line)
        if match:
            (imports if match.group(1) == "import" else exports).add(_wit_name(match.group(2)))
    return imports, exports


# -- WASI WIT ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def wasi_wit_dir() -> Path:
    """WASI 0.2.12 WIT packages (``wasi-cli/package.wit``, ``wasi-http/package.wit`` ...)."""
    override = os.environ.get(WASI_WIT_ENV)
    if override:
        path = Path(override)
        if not (path / "wasi-cli").is_dir():
            pytest.fail(f"{WASI_WIT_ENV}={override} does not hold WASI WIT packages")
        return path
    target = CACHE / "wasi-wit" / WASI_VERSION
    if (target / "wasi-cli" / "package.wit").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail(f"npm is needed to fetch {JCO_PACKAGE} (or set {WASI_WIT_ENV})")
        result = subprocess.run(
            [npm, "pack", JCO_PACKAGE, "--silent", "--pack-destination", scratch],
            capture_output=True,
            check=False,
            cwd=scratch,
        )
        tarballs = list(Path(scratch).glob("*.tgz"))
        if result.returncode != 0 or not tarballs:
            pytest.fail(f"npm pack {JCO_PACKAGE} failed: {result.stderr.decode(errors='replace')}")
        prefix = f"package/lib/wit/builtin/{WASI_VERSION}/"
        extracted = Path(scratch) / "wit"
        with tarfile.open(tarballs[0]) as archive:
            for member in archive.getmembers():
                if not member.isfile() or not member.name.startswith(prefix):
                    continue
                relative = Path(member.name[len(prefix) :])
                if ".." in relative.parts:
                    continue
                source = archive.extractfile(member)
                assert source is not None
                (extracted / relative).parent.mkdir(parents=True, exist_ok=True)
                (extracted / relative).write_bytes(source.read())
        if not (extracted / "wasi-cli" / "package.wit").is_file():
            pytest.fail(f"{JCO_PACKAGE} has no {prefix}wasi-cli/package.wit")
        try:
            os.replace(extracted, target)
        except OSError:
            if not (target / "wasi-cli" / "package.wit").is_file():  # lost a race: fine
                raise
    return target


# -- componentize-py builds --------------------------------------------------------------------


@dataclass(frozen=True)
class _ComponentSpec:
    name: str
    world: str
    wit: str
    app: str
    wasi: bool


_SPECS = {
    "calc": _ComponentSpec("calc", "calculator", CALC_WIT, CALC_APP, wasi=False),
    "cli": _ComponentSpec("cli", "app", CLI_WIT, CLI_APP, wasi=True),
    "http": _ComponentSpec("http", "app", HTTP_WIT, HTTP_APP, wasi=True),
    "values": _ComponentSpec("values", "values", VALUES_WIT, VALUES_APP, wasi=False),
}


def _componentize_py_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("componentize-py")
    except PackageNotFoundError:
        result = subprocess.run(
            [_tool("componentize-py"), "--version"], capture_output=True, check=False
        )
        return result.stdout.decode().strip()


def _tree_files(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def _spec_inputs(spec: _ComponentSpec, wasi_wit: Path | None) -> dict[str, bytes]:
    inputs = {"wit/world.wit": spec.wit.encode(), "app/app.py": spec.app.encode()}
    if wasi_wit is not None:
        for relative, data in _tree_files(wasi_wit).items():
            inputs[f"wit/deps/{relative}"] = data
    return inputs


def _cache_key(spec: _ComponentSpec, inputs: Mapping[str, bytes], tool_version: str) -> str:
    digest = hashlib.sha256()
    for part in (spec.name, spec.world, tool_version):
        digest.update(part.encode() + b"\0")
    for relative in sorted(inputs):
        digest.update(relative.encode() + b"\0")
        digest.update(hashlib.sha256(inputs[relative]).digest())
    return digest.hexdigest()


class _Build:
    """A componentize-py compile running in the background."""

    def __init__(self, spec: _ComponentSpec, inputs: Mapping[str, bytes], dest: Path) -> None:
        self.spec = spec
        self.dest = dest
        self.workdir = Path(tempfile.mkdtemp(prefix=f"build-{spec.name}-", dir=dest.parent))
        for relative, data in inputs.items():
            (self.workdir / relative).parent.mkdir(parents=True, exist_ok=True)
            (self.workdir / relative).write_bytes(data)
        # componentize-py adds VIRTUAL_ENV's (else the host's) site-packages to the guest
        # path: point it at an empty one so the component holds only the app.
        empty_venv = self.workdir / "empty-venv"
        site = empty_venv / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
        (site / "site-packages").mkdir(parents=True)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.workdir),
            "VIRTUAL_ENV": str(empty_venv),
        }
        self.output = self.workdir / "out.wasm"
        command = [
            _tool("componentize-py"),
            "--wit-path",
            "wit",
            "--world",
            spec.world,
            "componentize",
            "app",
            "--python-path",
            "app",
            "--output",
            str(self.output),
        ]
        self.command = command
        self.process = subprocess.Popen(
            command,
            cwd=self.workdir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )

    def wait(self) -> Path:
        output, _ = self.process.communicate()
        try:
            if self.process.returncode != 0 or not self.output.is_file():
                pytest.fail(
                    f"componentize-py ({self.spec.name}) failed:\n"
                    + output.decode(errors="replace")
                )
            return _publish(self.output, self.dest)
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)


class _ComponentBuilds:
    """Starts every missing componentize-py build at once; each fixture waits for its own."""

    def __init__(self, wasi_wit: Path) -> None:
        self.wasi_wit = wasi_wit
        self.dir = CACHE / "test-fixtures"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.version = _componentize_py_version()
        self.ready: dict[str, Path] = {}
        self.running: dict[str, _Build] = {}

    def start_all(self) -> None:
        for spec in _SPECS.values():
            if spec.name in self.ready or spec.name in self.running:
                continue
            inputs = _spec_inputs(spec, self.wasi_wit if spec.wasi else None)
            dest = self.dir / f"{_cache_key(spec, inputs, self.version)}.wasm"
            if dest.is_file():
                self.ready[spec.name] = dest
            else:
                self.running[spec.name] = _Build(spec, inputs, dest)

    def get(self, name: str) -> Path:
        if name not in self.ready:
            self.start_all()
        if name in self.running:
            self.ready[name] = self.running.pop(name).wait()
        return self.ready[name]

    def close(self) -> None:
        for build in self.running.values():
            build.process.kill()
            build.process.wait()
            shutil.rmtree(build.workdir, ignore_errors=True)
        self.running.clear()


@pytest.fixture(scope="session")
def _component_builds(wasi_wit_dir: Path) -> Iterator[_ComponentBuilds]:
    builds = _ComponentBuilds(wasi_wit_dir)
    yield builds
    builds.close()


@pytest.fixture(scope="session")
def calc_component(_component_builds: _ComponentBuilds) -> Path:
    """componentize-py build of world ``acme:calc/calculator@1.2.0`` (records, lists, greet)."""
    return _component_builds.get("calc")


@pytest.fixture(scope="session")
def cli_component(_component_builds: _ComponentBuilds) -> Path:
    """componentize-py build targeting ``wasi:cli/command@0.2.12`` (exports ``wasi:cli/run``)."""
    return _component_builds.get("cli")


@pytest.fixture(scope="session")
def values_component(_component_builds: _ComponentBuilds) -> Path:
    """componentize-py build of ``acme:values@0.1.0``: an ``echo`` interface returning its
    argument for every kind of value, plus ``fail`` (raises ValueError), ``read-file`` and
    ``get-env`` (need --dir / --env)."""
    return _component_builds.get("values")


@pytest.fixture(scope="session")
def http_component(_component_builds: _ComponentBuilds) -> Path:
    """componentize-py build targeting ``wasi:http/proxy@0.2.12``."""
    return _component_builds.get("http")


# -- small binaries made by wasm-tools ---------------------------------------------------------


@pytest.fixture(scope="session")
def _wasm_tools_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("wasm-fixtures")


@pytest.fixture(scope="session")
def core_module(_wasm_tools_dir: Path) -> Path:
    """A core module (imports ``wasi_snapshot_preview1/fd_write``, ``env/log``; exports 4)."""
    wat = _wasm_tools_dir / "core.wat"
    wat.write_text(CORE_MODULE_WAT)
    out = _wasm_tools_dir / "core.wasm"
    wasm_tools("parse", wat, "-o", out)
    return _read_only(out)


@pytest.fixture(scope="session")
def tiny_component(_wasm_tools_dir: Path) -> Path:
    """A small component needing no WASI: imports ``acme:tiny/host@0.1.0`` (``factor``),
    exports ``add: func(a: u32, b: u32) -> u32`` (a + b) and ``acme:tiny/math@0.1.0``
    (``scale(x) = x * factor()``)."""
    wat = _wasm_tools_dir / "tiny.wat"
    wat.write_text(TINY_CORE_WAT)
    wit = _wasm_tools_dir / "tiny.wit"
    wit.write_text(TINY_WIT)
    core = _wasm_tools_dir / "tiny-core.wasm"
    embedded = _wasm_tools_dir / "tiny-embedded.wasm"
    out = _wasm_tools_dir / "tiny.wasm"
    wasm_tools("parse", wat, "-o", core)
    wasm_tools("component", "embed", "--world", "tiny", wit, core, "-o", embedded)
    wasm_tools("component", "new", embedded, "-o", out)
    return _read_only(out)


@pytest.fixture(scope="session")
def wit_package(_wasm_tools_dir: Path) -> Path:
    """``acme:calc@1.2.0`` encoded as a WIT package: worlds calculator and client,
    interfaces types, logging and ops."""
    wit = _wasm_tools_dir / "calc.wit"
    wit.write_text(CALC_WIT)
    out = _wasm_tools_dir / "calc-package.wasm"
    wasm_tools("component", "wit", "--wasm", wit, "-o", out)
    return _read_only(out)
