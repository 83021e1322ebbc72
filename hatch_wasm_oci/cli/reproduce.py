"""``hatch-wasm-oci reproduce [REF]``: does a build from scratch give the same bytes?"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``reproduce`` (argparse only; the build code loads when it runs)."""
    reproduce = subparsers.add_parser(
        "reproduce",
        help="build the project from scratch twice, or once against REF; compare digests",
        description=(
            "Build the project's wasm-oci artifact from scratch (no compile cache) in a "
            "temporary directory. Without REF, build it twice and compare; with REF (an OCI "
            "layout DIR[:TAG] or a registry reference), compare the build with that artifact. "
            "Prints 'reproducible: DIGEST' and exits 0 when the manifest digests agree; "
            "otherwise names the sections where the components differ and exits 1. With REF, "
            "when the artifact has a provenance referrer (in the layout, or the registry's "
            "referrers, which are pulled), the difference is explained from it first: each "
            "recorded build input that changed (source tree, wkg.lock, toolchain versions, "
            "SOURCE_DATE_EPOCH, settings), or that none did, so the compiler is not "
            "deterministic here. The provenance is unsigned: it says what its builder claimed. "
            "A provenance that is not a well-formed statement is an error (exit 2)."
        ),
    )
    reproduce.add_argument(
        "ref", nargs="?", help="the artifact to match: DIR[:TAG] or REGISTRY/REPO[:TAG|@DIGEST]"
    )
    reproduce.add_argument(
        "--project", type=Path, default=Path("."), help="project directory (default .)"
    )
    reproduce.add_argument("--version", help="the project version, when it is dynamic")
    reproduce.add_argument(
        "--plain-http", action="store_true", help="talk HTTP, not HTTPS, to the registry"
    )
    reproduce.add_argument("--ca-file", metavar="PATH", type=Path, help="trust this PEM CA bundle")
    reproduce.set_defaults(handler=_cmd_reproduce)


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from hatch_wasm_oci.project.reproduce import check_against, check_reproducible

    def log(line: str) -> None:
        print(line, file=sys.stderr)

    if args.ref is None:
        result = check_reproducible(args.project, version=args.version, log=log)
        if not result.reproducible:
            print(f"not reproducible: {result.expected} first, {result.built} second")
    else:
        result = check_against(
            args.project, args.ref, version=args.version, plain_http=args.plain_http,
            ca_file=args.ca_file, log=log,
        )  # fmt: skip
        if not result.reproducible:
            print(f"not reproducible: {args.ref} is {result.expected}, the rebuild {result.built}")
    for note in result.notes:
        log(f"hatch-wasm-oci: {note}")
    if result.reproducible:
        print(f"reproducible: {result.built}")
        return 0
    for line in (*result.record, *result.differences):
        print(f"  {line}")
    return 1
