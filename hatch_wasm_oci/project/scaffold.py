"""``hatch-wasm-oci init``: a new componentize-py project that builds as written.

Three worlds: ``library`` (exports one interface), ``command`` (``wasi:cli/run``) and ``http``
(``wasi:http/proxy``). Each includes ``wasi:cli/imports@0.2.12``, the WASI imports
componentize-py links into every component, so each build records a verified
``component.target``; the first ``hatch build`` fetches the WASI 0.2.12 WIT into ``wit/deps/``
(and locks it in ``wkg.lock``).
Nothing is written when any of the files already exists.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from hatch_wasm_oci.errors import WasmOciError

WORLDS = ("library", "command", "http")
WASI_VERSION = "0.2.12"
#: The app module; componentize-py generates a module named after the world, so a world is
#: never called this.
APP_MODULE = "app"
_NAME = re.compile(r"[a-z][a-z0-9]*(?:-[a-z][a-z0-9]*)*")


def project_name(text: str) -> str:
    """A kebab-case WIT identifier from a directory or project name (``My_App2`` -> ``my-app2``);
    WasmOciError when nothing usable is left."""
    words = [w for w in re.split(r"[^a-z0-9]+", text.lower()) if w]
    while words and words[0][0].isdigit():
        words.pop(0)
    name = "-".join(w if w[0].isalpha() else f"v{w}" for w in words)
    if not name or not _NAME.fullmatch(name):
        raise WasmOciError(
            f"{text!r} gives no project name (letters, digits and dashes, starting with a "
            "letter): pass --name NAME"
        )
    return name


def _world_name(name: str) -> str:
    return f"{name}-world" if name.replace("-", "_") == APP_MODULE else name


def _wit(world: str, name: str) -> str:
    head = f"package local:{name}@0.1.0;\n\n"
    # componentize-py links these WASI imports into every component: with them in the world,
    # the component targets it (a verified component.target, not null and a warning).
    imports = f"  include wasi:cli/imports@{WASI_VERSION};\n"
    if world == "library":
        return head + (
            "interface greet {\n  hello: func(name: string) -> string;\n}\n\n"
            f"world {_world_name(name)} {{\n{imports}  export greet;\n}}\n"
        )
    if world == "command":
        return head + (
            f"world {_world_name(name)} {{\n{imports}"
            f"  export wasi:cli/run@{WASI_VERSION};\n}}\n"
        )
    return head + (
        f"world {_world_name(name)} {{\n  include wasi:http/proxy@{WASI_VERSION};\n{imports}}}\n"
    )


_APPS = {
    "library": '''\
from wit_world import exports


class Greet(exports.Greet):
    def hello(self, name: str) -> str:
        return f"Hello, {name}!"
''',
    "command": '''\
import sys

from wit_world import exports


class Run(exports.Run):
    def run(self) -> None:
        print("Hello from Python!", sys.argv[1:])
''',
    "http": '''\
from componentize_py_types import Ok
from wit_world import exports
from wit_world.imports.wasi_http_types import (
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
            stream.blocking_write_and_flush(b"Hello from Python!\\n")
        OutgoingBody.finish(body, None)
''',
}

_TRY = {
    "library": "hatch-wasm-oci run dist/wasm-oci/{dist}-0.1.0 --invoke 'hello(\"Ada\")'",
    "command": "hatch-wasm-oci run dist/wasm-oci/{dist}-0.1.0",
    "http": "hatch-wasm-oci serve dist/wasm-oci/{dist}-0.1.0",
}


def _pyproject(name: str) -> str:
    return f"""\
[build-system]
requires = ["hatchling", "hatch-wasm-oci"]
build-backend = "hatchling.build"

[project]
name = "{name}"
version = "0.1.0"
requires-python = ">=3.10"

[tool.hatch.build.targets.wasm-oci]
componentize-py = {{ wit-path = "wit", world = "{_world_name(name)}", app = "{APP_MODULE}", \
python-path = ["src"] }}
# repository = "ghcr.io/OWNER/{name}"   # where `hatch publish -p wasm-oci` pushes
"""


def _readme(name: str, world: str) -> str:
    dist = name.replace("-", "_")
    return f"""\
# {name}

A WebAssembly component ({world} world) written in Python, built with
[hatch-wasm-oci](https://pypi.org/project/hatch-wasm-oci/).

```console
hatch build -t wasm-oci        # -> dist/wasm-oci/{dist}-0.1.0/ (an OCI image layout)
{_TRY[world].format(dist=dist)}
```

The WIT world is in `wit/world.wit`, the code in `src/{APP_MODULE}.py` (the app module may
not share the world's name: componentize-py generates a module named after the world).
Commit `wkg.lock` when the build writes one; `wit/deps/` is fetched again when missing.
"""


GITIGNORE = "dist/\nwit/deps/\n__pycache__/\n*.pyc\n.venv/\n"


def scaffold_files(world: str, name: str) -> dict[str, str]:
    """The files of a new project (relative path -> text)."""
    if world not in WORLDS:
        raise WasmOciError(f"unknown world {world!r} (choose {', '.join(WORLDS)})")
    return {
        "pyproject.toml": _pyproject(name),
        "wit/world.wit": _wit(world, name),
        f"src/{APP_MODULE}.py": _APPS[world],
        ".gitignore": GITIGNORE,
        "README.md": _readme(name, world),
    }


def write_scaffold(directory: Path, world: str, name: str | None = None) -> list[Path]:
    """Write a new project into ``directory`` (created if missing); the paths written.

    Refused, with nothing written, when any of the files exists already."""
    name = project_name(name if name is not None else directory.resolve().name)
    files = scaffold_files(world, name)
    existing = [rel for rel in files if os.path.lexists(directory / rel)]
    if existing:
        raise WasmOciError(
            f"{directory}: {', '.join(existing)} already exist(s); nothing was written "
            "(init starts a new project)"
        )
    if directory.exists() and not directory.is_dir():
        raise WasmOciError(f"{directory}: not a directory")
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with tempfile.TemporaryDirectory(prefix=".hatch-wasm-oci-init-", dir=directory) as scratch:
        for rel, text in files.items():
            staged = Path(scratch) / rel
            staged.parent.mkdir(parents=True, exist_ok=True)
            staged.write_text(text, encoding="utf-8")
        try:
            for rel in files:
                target = directory / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(Path(scratch) / rel), target)
                written.append(target)
        except BaseException:
            for path in written:
                path.unlink(missing_ok=True)
            raise
    return written
