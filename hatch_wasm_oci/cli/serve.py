"""The ``serve`` subcommand: serve a wasi:http/proxy component with ``wasmtime serve``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

DESCRIPTION = """\
Serve TARGET, a wasi:http/proxy component (one exporting wasi:http/incoming-handler): a .wasm,
an OCI layout (DIR or DIR:TAG) or a registry reference (REPO:TAG, REPO@sha256:...; through the
local content store, as for `run`). The verified bytes are handed to the wasmtime CLI
(`wasmtime serve`, from $HATCH_WASM_OCI_WASMTIME or PATH); the URL it listens on is printed
once it listens. Ctrl-C stops it. The guest sees no host directory or variable unless given.
"""


def add_command(subparsers: Any) -> None:
    """Add ``serve`` to the ``hatch-wasm-oci`` argument parser."""
    from hatch_wasm_oci.runtime.serve import DEFAULT_ADDR  # no wasmtime import

    serve = subparsers.add_parser(
        "serve",
        help="serve a wasi:http/proxy component with the wasmtime CLI",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("target", metavar="TARGET")
    serve.add_argument(
        "--addr",
        default=DEFAULT_ADDR,
        metavar="IP:PORT",
        help=f"where to listen (default {DEFAULT_ADDR}: this machine only; port 0: any free)",
    )
    serve.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME[=VALUE]",
        help="give the guest this variable (NAME alone: the host's value); repeatable",
    )
    serve.add_argument(
        "--dir",
        action="append",
        default=[],
        metavar="HOST[::GUEST]",
        help="give the guest this host directory (at GUEST, default the same path); repeatable",
    )
    serve.add_argument(
        "--offline", action="store_true", help="use the local store only, never the registry"
    )
    serve.add_argument(
        "--plain-http", action="store_true", help="talk HTTP, not HTTPS, to the registry"
    )
    serve.add_argument("--ca-file", metavar="PATH", type=Path, help="trust this PEM CA bundle")
    serve.set_defaults(handler=_cmd_serve)


def _cmd_serve(args: argparse.Namespace) -> int:
    from hatch_wasm_oci.cli.run import _dirs, _env
    from hatch_wasm_oci.files.cache_home import enabled_cache_root
    from hatch_wasm_oci.runtime import serve
    from hatch_wasm_oci.runtime.store import RegistryOptions
    from hatch_wasm_oci.runtime.target import resolve

    addr = serve.parse_addr(args.addr)
    env, dirs = serve.guest_environment(_env(args.env)), _dirs(args.dir)
    serve.find_wasmtime()  # before any download
    options = RegistryOptions(
        plain_http=args.plain_http, ca_file=args.ca_file, offline=args.offline
    )
    artifact = resolve(args.target, options)
    return serve.serve(
        artifact,
        addr=addr,
        env=env,
        dirs=dirs,
        cache=enabled_cache_root() is not None,
        announce=lambda url: print(url, flush=True),
    )
