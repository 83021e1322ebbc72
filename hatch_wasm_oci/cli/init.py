"""``hatch-wasm-oci init [DIR] --world {library,command,http}``: start a project that builds."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_command(subparsers: Any) -> None:
    """Add ``init`` to the ``hatch-wasm-oci`` argument parser."""
    from hatch_wasm_oci.project.scaffold import WORLDS

    init = subparsers.add_parser(
        "init",
        help="write a new componentize-py project (pyproject, WIT, app, .gitignore, README)",
        description=(
            "Write a new project into DIR (default .) that `hatch build -t wasm-oci` builds as "
            "it is. library: exports an interface (call it with `run --invoke`); command: "
            "wasi:cli/run (`run`); http: wasi:http/proxy (`serve`). Each world includes "
            "wasi:cli/imports@0.2.12 (what componentize-py links), so the build verifies its "
            "target; the first build fetches that WASI WIT into wit/deps/."
        ),
        epilog="example: hatch-wasm-oci init greeter --world command && cd greeter && "
        "hatch build -t wasm-oci",
    )
    init.add_argument("directory", metavar="DIR", nargs="?", default=".", type=Path)
    init.add_argument("--world", choices=WORLDS, default="library")
    init.add_argument("--name", help="the project name (default: DIR's name)")
    init.set_defaults(handler=_cmd_init)


def _cmd_init(args: argparse.Namespace) -> int:
    from hatch_wasm_oci.project.scaffold import write_scaffold

    for path in write_scaffold(args.directory, args.world, args.name):
        print(path)
    return 0
