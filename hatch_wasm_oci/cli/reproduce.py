"""``hatch-wasm-oci reproduce``: would a fresh machine publish the same digest?"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``reproduce`` (argparse only; the build code loads when it runs)."""
    reproduce = subparsers.add_parser(
        "reproduce",
        help="build the project as usual and again from a clean compile cache; compare digests",
        description=(
            "Build the project's wasm-oci artifact twice in a temporary directory: as `hatch "
            "build` would (compile caches allowed) and from a clean local cache without the "
            "registry cache. Prints 'reproducible' and exits 0 when the manifest digests agree; "
            "otherwise names the sections where the components differ and exits 1."
        ),
    )
    reproduce.add_argument("project", nargs="?", default=".", help="project directory (default .)")
    reproduce.add_argument("--version", help="the project version, when it is dynamic")
    reproduce.set_defaults(handler=_cmd_reproduce)


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from hatch_wasm_oci.project.reproduce import check_reproducible

    def log(line: str) -> None:
        print(line, file=sys.stderr)

    result = check_reproducible(Path(args.project), version=args.version, log=log)
    if result.reproducible:
        print(f"reproducible: {result.digest}")
        return 0
    print(f"not reproducible: {result.digest} as built, {result.clean_digest} from a clean cache")
    for line in result.differences:
        print(f"  {line}")
    return 1
