"""The ``run`` subcommand: run a component or module from a file, a layout or a registry."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hatch_wasm_oci.errors import ComponentTrap, WasmOciError

#: The exit status of a trap (one line on stderr): 128 + SIGABRT, as with `wasmtime run`.
TRAP_STATUS = 134

DESCRIPTION = """\
Run TARGET: a .wasm, an OCI layout directory (DIR or DIR:TAG) or a registry reference
(REPO:TAG, REPO@sha256:...; blobs kept in the local content store, compiled code cached).
A component exporting wasi:cli/run, or a WASI preview 1 module, runs as a command with ARGS
and its exit status; --invoke 'f(1, "x")' calls any exported function (also
'ns:pkg/iface@1.0.0#f(...)' or 'iface.f(...)') with arguments and result in WAVE, the syntax
of `wasmtime run --invoke`. The guest sees no host directory or variable unless given.
Options may follow TARGET; everything after `--` goes to the guest.
"""

EXAMPLES = """\
examples:
  hatch-wasm-oci run dist/wasm-oci/greeter-0.1.0 -- Ada         # a command, with arguments
  hatch-wasm-oci run greeter.wasm --invoke 'hello("Ada")'        # call one export
  hatch-wasm-oci run ghcr.io/acme/greeter:0.1.0 --dir data::/data --env LANG
"""


def add_command(subparsers: Any) -> None:
    """Add ``run`` to the ``hatch-wasm-oci`` argument parser."""
    run = subparsers.add_parser(
        "run",
        help="run a component or module from a .wasm, a layout or a registry reference",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EXAMPLES,
    )
    _run_options(run)
    run.add_argument("target", metavar="TARGET")
    run.add_argument("args", metavar="ARGS", nargs=argparse.REMAINDER)
    run.set_defaults(handler=_cmd_run)


def _run_options(run: argparse.ArgumentParser) -> None:
    run.add_argument("--invoke", metavar="CALL", help="call an export, e.g. 'summarize()'")
    run.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME[=VALUE]",
        help="give the guest this variable (NAME alone: the host's value); repeatable",
    )
    run.add_argument(
        "--dir",
        action="append",
        default=[],
        metavar="HOST[::GUEST]",
        help="give the guest this host directory (at GUEST, default the same path); repeatable",
    )
    run.add_argument(
        "--offline", action="store_true", help="use the local store only, never the registry"
    )
    run.add_argument(
        "--plain-http", action="store_true", help="talk HTTP, not HTTPS, to the registry"
    )
    run.add_argument("--ca-file", metavar="PATH", type=Path, help="trust this PEM CA bundle")
    run.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=float,
        help="interrupt the guest after this long (default: no limit)",
    )


def _options_after_target(args: argparse.Namespace) -> None:
    """Options of ``run`` may also follow TARGET; ARGS after ``--`` all go to the guest."""
    rest = list(args.args)
    guest_tail: list[str] = []
    if "--" in rest:
        cut = rest.index("--")
        rest, guest_tail = rest[:cut], rest[cut + 1 :]
    later = argparse.ArgumentParser(prog="hatch-wasm-oci run", add_help=False, allow_abbrev=False)
    _run_options(later)
    parsed, guest = later.parse_known_args(rest)
    for key in ("invoke", "ca_file", "timeout"):
        if getattr(parsed, key) is not None:
            setattr(args, key, getattr(parsed, key))
    for key in ("offline", "plain_http"):
        setattr(args, key, getattr(args, key) or getattr(parsed, key))
    args.env = [*args.env, *parsed.env]
    args.dir = [*args.dir, *parsed.dir]
    args.args = [*guest, *guest_tail]


def _env(pairs: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not name:
            raise WasmOciError(f"--env takes NAME or NAME=VALUE, got {pair!r}")
        if not sep:
            if name not in os.environ:
                raise WasmOciError(f"--env {name}: not set in this environment")
            value = os.environ[name]
        env[name] = value
    return env


def _dirs(specs: list[str]) -> list[tuple[str, str]]:
    dirs = []
    for spec in specs:
        host, sep, guest = spec.partition("::")
        if not host or (sep and not guest):
            raise WasmOciError(f"--dir takes HOST or HOST::GUEST, got {spec!r}")
        if not Path(host).is_dir():
            raise WasmOciError(f"--dir {host}: not a directory")
        dirs.append((host, guest or host))
    return dirs


def _cmd_run(args: argparse.Namespace) -> int:
    from hatch_wasm_oci.runtime import guest_thread

    try:
        return _run(args)
    except ComponentTrap as trap:
        print(f"hatch-wasm-oci: {trap}", file=sys.stderr)
        return TRAP_STATUS
    except BaseException as exc:
        if guest_thread.abandoned is exc:  # a signal while the guest runs: end as wasmtime does
            guest_thread.end_by_signal(
                signal.SIGINT if isinstance(exc, KeyboardInterrupt) else signal.SIGTERM
            )
        raise


def _guest_paths(target: str) -> Callable[[str], str] | None:
    """For a file or layout inside a componentize-py project (``dist/wasm-oci/...``), the
    mapping of guest paths (``/0/app.py``) in the guest's stderr back to the project's files,
    as the build maps compiler errors; None elsewhere (a registry reference, no project)."""
    from hatch_wasm_oci.cli.wit import project_settings
    from hatch_wasm_oci.project.componentize import sandbox_paths
    from hatch_wasm_oci.project.settings import ComponentizePySource
    from hatch_wasm_oci.runtime.target import local_path

    path = local_path(target)
    if path is None:
        return None
    cwd = Path.cwd()
    for directory in path.resolve().parents:
        if (directory / "pyproject.toml").is_file() or (directory / "hatch.toml").is_file():
            try:
                settings = project_settings(directory)
            except (WasmOciError, OSError):  # the run does not depend on the project settings
                return None
            if settings is None or not isinstance(settings.source, ComponentizePySource):
                return None
            python_path = settings.source.python_path or (".",)
            shown = [os.path.relpath(directory / entry, cwd) for entry in python_path]
            return sandbox_paths(shown)
    return None


def _run(args: argparse.Namespace) -> int:
    from hatch_wasm_oci.runtime import wave
    from hatch_wasm_oci.runtime.command import run_command
    from hatch_wasm_oci.runtime.component import LoadedComponent, WasiOptions
    from hatch_wasm_oci.runtime.engine import check_timeout
    from hatch_wasm_oci.runtime.store import RegistryOptions
    from hatch_wasm_oci.runtime.target import resolve

    _options_after_target(args)
    options = RegistryOptions(
        plain_http=args.plain_http, ca_file=args.ca_file, offline=args.offline
    )
    name = Path(args.target).name or args.target
    try:
        check_timeout(args.timeout)
    except ValueError as exc:
        raise WasmOciError(f"--timeout {exc}") from None
    wasi = WasiOptions(
        args=[name, *args.args],
        env=_env(args.env),
        dirs=_dirs(args.dir),
        stdin=True,
        timeout=args.timeout,
        stderr_lines=_guest_paths(args.target),
    )
    if args.invoke is None:
        return run_command(resolve(args.target, options), wasi)
    invocation = wave.parse_invocation(args.invoke)
    if args.args:
        raise WasmOciError("--invoke takes its arguments inside the call, not after TARGET")
    component = LoadedComponent(resolve(args.target, options), wasi)
    function = component.function(invocation.name)
    try:
        values = wave.parse_arguments(invocation.arguments, function.type, invocation.column)
    except WasmOciError as exc:
        raise type(exc)(f"{function.name}: {exc}") from None
    result = function.call_checked(values)
    result_type = function.type.result
    print("()" if result_type is None else wave.write(result, result_type), flush=True)
    return 0
