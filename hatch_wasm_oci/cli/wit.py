"""``hatch-wasm-oci wit fetch|update [DIR]``: WIT dependencies into ``wit/deps/`` and ``wkg.lock``.

DIR is the project (default ``.``): its ``wit/`` directory, ``wkg.lock`` beside it. A
``wit-dependencies`` table in its ``[tool.hatch.build.targets.wasm-oci]`` is laid over the
wasm-pkg config, as in a build.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from hatch_wasm_oci.errors import WasmOciError


def add_commands(subparsers: Any) -> None:
    """Add ``wit fetch`` and ``wit update`` to the ``hatch-wasm-oci`` argument parser."""
    wit = subparsers.add_parser("wit", help="fetch a project's WIT dependencies (as wkg does)")
    actions = wit.add_subparsers(dest="wit_command", metavar="ACTION", required=True)
    for name, help_text in (
        ("fetch", "resolve the WIT's foreign packages (locked ones as locked) into wit/deps/"),
        ("update", "resolve every foreign package anew, ignoring and rewriting wkg.lock"),
    ):
        action = actions.add_parser(name, help=help_text)
        action.add_argument(
            "directory",
            metavar="DIR",
            nargs="?",
            default=".",
            type=Path,
            help="the project (its wit/ directory, wkg.lock beside it); default .",
        )
        action.add_argument(
            "--locked",
            action="store_true",
            help="fail unless wkg.lock covers every package (and never write it)",
        )
        action.add_argument(
            "--ca-file", metavar="PATH", type=Path, help="trust this PEM CA bundle for TLS"
        )
        action.set_defaults(handler=_cmd_wit)


def wit_directory(directory: Path) -> Path:
    """The project's WIT directory: ``DIR/wit``, or DIR itself when it holds ``.wit`` files."""
    if (directory / "wit").is_dir():
        return directory / "wit"
    if directory.is_dir() and any(directory.glob("*.wit")):
        return directory
    raise WasmOciError(f"{directory}: no wit/ directory and no .wit files")


def _plugin_table(directory: Path) -> dict[str, Any] | None:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    pyproject = directory / "pyproject.toml"
    if not pyproject.is_file():
        return None
    try:
        document = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise WasmOciError(f"{pyproject}: not valid TOML ({exc})") from None
    target = document.get("tool", {}).get("hatch", {}).get("build", {}).get("targets", {})
    table = target.get("wasm-oci", {}).get("wit-dependencies")
    return table if isinstance(table, dict) else None


def _cmd_wit(args: argparse.Namespace) -> int:
    import os

    from hatch_wasm_oci.wit.cache import BlobCache, default_cache_root
    from hatch_wasm_oci.wit.config import load_config
    from hatch_wasm_oci.wit.fetch import Mode, fetch_dependencies

    directory: Path = args.directory
    wit_dir = wit_directory(directory)
    mode = Mode.UPDATE if args.wit_command == "update" else Mode.FETCH
    if args.locked:
        if mode is Mode.UPDATE:
            raise WasmOciError("wit update rewrites the lock: --locked does not apply")
        mode = Mode.LOCKED
    where = "tool.hatch.build.targets.wasm-oci.wit-dependencies"
    config = load_config(os.environ, _plugin_table(directory), where)
    cache = BlobCache(default_cache_root())
    result = fetch_dependencies(
        wit_dir,
        config=config,
        cache=cache,
        mode=mode,
        ca_file=args.ca_file,
        log=lambda line: print(line, file=sys.stderr),
    )
    for package in result.written:
        print(f"{wit_dir / 'deps' / package.dir_name / 'package.wit'}  {package}")
    state = "written" if result.lock_written else "unchanged"
    print(f"{result.lock_path}: {len(result.locked)} package(s), {state}")
    return 0
