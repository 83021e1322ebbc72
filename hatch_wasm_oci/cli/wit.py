"""``hatch-wasm-oci wit fetch|update [DIR]``: WIT dependencies into ``wit/deps/`` and ``wkg.lock``;
``wit publish DIR REF``: any WIT package to a registry.

DIR is the project (default ``.``): the WIT directories its componentize-py ``wit-path`` names
(else its ``wit/`` directory), ``wkg.lock`` beside each. A ``wit-dependencies`` table in its
``[tool.hatch.build.targets.wasm-oci]`` is laid over the wasm-pkg config, as in a build.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hatch_wasm_oci.errors import WasmOciError

if TYPE_CHECKING:
    from hatch_wasm_oci.project.settings import WasmOciSettings


def add_commands(subparsers: Any) -> None:
    """Add ``wit fetch``, ``wit update`` and ``wit publish`` to the argument parser."""
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
    publish = actions.add_parser(
        "publish",
        help="encode any WIT package directory and push it to REF (as wkg publish does)",
        description=(
            "Encode the WIT package in DIR with wasm-tools (name and version as wasm-metadata) "
            "and push it as a Wasm OCI artifact. REF is the repository (REGISTRY/NS/NAME: the "
            "tag is the package version) or REPO:TAG. Seeds a private mirror for `wit fetch`."
        ),
        epilog=(
            "example: hatch-wasm-oci wit publish wasi-io --deps WASI_DIR --plain-http "
            "localhost:5000/wasi/io"
        ),
    )
    publish.add_argument("directory", metavar="DIR", type=Path, help="the WIT package")
    publish.add_argument("reference", metavar="REF")
    publish.add_argument(
        "--deps",
        metavar="DIR",
        type=Path,
        help="a directory of WIT packages (one per subdirectory) to resolve DIR's foreign "
        "packages against, when DIR has no deps/ of its own",
    )
    publish.add_argument(
        "--plain-http", action="store_true", help="talk HTTP, not HTTPS, to the registry"
    )
    publish.add_argument(
        "--ca-file", metavar="PATH", type=Path, help="trust this PEM CA bundle for TLS"
    )
    publish.add_argument(
        "--force", action="store_true", help="move a version tag that names another manifest"
    )
    publish.set_defaults(handler=_cmd_wit_publish)


def wit_directory(directory: Path) -> Path:
    """The project's WIT directory: ``DIR/wit``, or DIR itself when it holds ``.wit`` files."""
    if (directory / "wit").is_dir():
        return directory / "wit"
    if directory.is_dir() and any(directory.glob("*.wit")):
        return directory
    raise WasmOciError(f"{directory}: no wit/ directory and no .wit files")


def _load_toml(path: Path) -> dict[str, Any] | None:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    if not path.is_file():
        return None
    try:
        document: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
        return document
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise WasmOciError(f"{path}: not valid TOML ({exc})") from None


def project_settings(directory: Path) -> WasmOciSettings | None:
    """The settings of the project at ``directory``: its ``wasm-oci`` target (else hook) table
    of hatch.toml or pyproject.toml, checked as ``hatch build`` checks it; None without one."""
    from hatch_wasm_oci.project.settings import parse_settings

    hatch_toml = _load_toml(directory / "hatch.toml")
    if hatch_toml is not None and "build" in hatch_toml:
        build, prefix = hatch_toml["build"], "hatch.toml build"
    else:
        pyproject = _load_toml(directory / "pyproject.toml") or {}
        build, prefix = pyproject.get("tool", {}).get("hatch", {}).get("build", {}), (
            "tool.hatch.build"
        )
    for rest, hook in (("targets", False), ("hooks", True)):
        section = build.get(rest, {}) if isinstance(build, dict) else {}
        if isinstance(section, dict) and "wasm-oci" in section:
            where = f"{prefix}.{rest}.wasm-oci"
            return parse_settings(section["wasm-oci"], root=directory, table=where, hook=hook)
    return None


def project_wit(directory: Path) -> tuple[list[Path], Any, str]:
    """The WIT directories a build of the project at ``directory`` uses (componentize-py's
    ``wit-path``), its ``wit-dependencies`` table (or None) and that table's TOML path
    (:func:`project_settings`). Without such a table: ``wit_directory``."""
    from hatch_wasm_oci.project.settings import ComponentizePySource

    settings = project_settings(directory)
    if settings is None:
        return [wit_directory(directory)], None, "wit-dependencies"
    option = settings.wit_dependencies
    overrides = option if isinstance(option, Mapping) else None
    source = settings.source
    if not isinstance(source, ComponentizePySource):
        return [wit_directory(directory)], overrides, settings.key("wit-dependencies")
    wit_dirs = [directory / rel for rel in source.wit_paths if (directory / rel).is_dir()]
    if not wit_dirs:
        where = settings.key("componentize-py", "wit-path")
        raise WasmOciError(f"{where}: names no WIT directory (its deps/ would go there)")
    return wit_dirs, overrides, settings.key("wit-dependencies")


def _cmd_wit(args: argparse.Namespace) -> int:
    import os

    from hatch_wasm_oci.wit.cache import BlobCache, default_cache_root
    from hatch_wasm_oci.wit.config import load_config
    from hatch_wasm_oci.wit.fetch import Mode, fetch_dependencies

    directory: Path = args.directory
    wit_dirs, overrides, where = project_wit(directory)
    mode = Mode.UPDATE if args.wit_command == "update" else Mode.FETCH
    if args.locked:
        if mode is Mode.UPDATE:
            raise WasmOciError("wit update rewrites the lock: --locked does not apply")
        mode = Mode.LOCKED
    config = load_config(os.environ, overrides, where)
    cache = BlobCache(default_cache_root())
    for wit_dir in wit_dirs:
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


def _cmd_wit_publish(args: argparse.Namespace) -> int:
    import tempfile

    from hatch_wasm_oci.cli.registry import check_tags_before_push
    from hatch_wasm_oci.oci.layout_reader import OciLayout
    from hatch_wasm_oci.project.wit_package import pack_wit_directory
    from hatch_wasm_oci.registry.push import PushOptions, plan_push, push

    with tempfile.TemporaryDirectory(prefix="hatch-wasm-oci-wit-publish-") as scratch:
        packed = pack_wit_directory(args.directory, Path(scratch) / "layout", deps=args.deps)
        layout = OciLayout.open(packed.layout)
        targets = plan_push(layout, [args.reference])
        options = PushOptions(plain_http=args.plain_http, ca_file=args.ca_file)
        targets = check_tags_before_push(layout, targets, options, force=args.force, quiet=False)
        result = push(layout, targets, options)
    for ref in result.references:
        print(ref.line)
    return 0
