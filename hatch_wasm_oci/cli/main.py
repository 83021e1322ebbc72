"""The ``hatch-wasm-oci`` command: inspect, pack and verify Wasm OCI artifacts; push and pull.

Every deliberate failure prints one line, ``hatch-wasm-oci: <what went wrong>``, and exits 2.
Subcommands import what they need when they run, so ``inspect`` starts fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hatch_wasm_oci import __version__
from hatch_wasm_oci.errors import WasmOciError

PROG = "hatch-wasm-oci"


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def inspect_wasm(path: Path) -> dict[str, Any]:
    """What ``inspect`` shows for a ``.wasm``: kind, size, metadata and the derived config."""
    from hatch_wasm_oci.files.digest import file_digest
    from hatch_wasm_oci.oci import config as oci_config
    from hatch_wasm_oci.wasm.binary import read_wasm

    info = read_wasm(path)
    digest = file_digest(path)
    metadata = {k: v for k, v in info.metadata._asdict().items() if v}
    return {
        "path": str(path),
        "kind": info.kind.value,
        "size": info.size,
        "digest": digest,
        "metadata": metadata,
        "config": oci_config.wasm_config(info, [digest], created=oci_config.created_timestamp()),
    }


def inspect_layout(path: Path) -> dict[str, Any]:
    """What ``inspect`` shows for a layout: its tags, and each manifest with its config."""
    from hatch_wasm_oci.oci.layout_reader import OciLayout

    layout = OciLayout.open(path)
    manifests = []
    seen: set[str] = set()
    referrers = layout.referrers()
    seen.update(desc.digest for desc, _ in referrers)
    for desc in layout.manifests():
        if desc.digest in seen:
            continue
        seen.add(desc.digest)
        manifest = layout.manifest(desc)
        manifests.append(
            {
                "digest": desc.digest,
                "size": desc.size,
                "manifest": manifest,
                "config": layout.config_of(manifest),
            }
        )
    return {
        "layout": str(path),
        "tags": {tag: d.digest for tag, d in sorted(layout.tags().items())},
        "manifests": manifests,
        "referrers": [
            {
                "digest": desc.digest,
                "artifactType": referrer.artifact_type,
                "subject": referrer.subject.digest,
                "layers": [layer.to_json() for layer in referrer.layers],
            }
            for desc, referrer in referrers
        ],
    }


def _cmd_inspect(args: argparse.Namespace) -> int:
    path = Path(args.path)
    if not path.exists() and "/" in args.path and not args.path.startswith((".", "/")):
        from hatch_wasm_oci.registry.pull import describe_remote  # a registry reference

        _print_json(describe_remote(args.path, plain_http=args.plain_http, ca_file=args.ca_file))
        return 0
    _print_json(inspect_layout(path) if path.is_dir() else inspect_wasm(path))
    return 0


def _parse_annotations(pairs: Sequence[str]) -> dict[str, str]:
    annotations: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise WasmOciError(f"--annotation takes KEY=VALUE, got {pair!r}")
        annotations[key.strip()] = value
    return annotations


def _check_target(args: argparse.Namespace) -> None:
    """``--target`` only if the component targets that world (``wasm-tools component targets``
    against ``--wit``, default ``./wit``), else one line naming the first missing item."""
    from hatch_wasm_oci.oci.config import validate_target
    from hatch_wasm_oci.project.world import verify_target

    validate_target(args.target)  # the grammar's own one-line message first
    wit_paths = [Path(p) for p in args.wit] or ([Path("wit")] if Path("wit").is_dir() else [])
    problem = verify_target(args.target, wit_paths, Path(args.wasm))
    if problem:
        raise WasmOciError(f"--target: {problem}")


def _cmd_pack(args: argparse.Namespace) -> int:
    from hatch_wasm_oci.oci.layout import pack

    if args.target is not None:
        _check_target(args)
    result = pack(
        Path(args.wasm),
        Path(args.output),
        tags=args.tag or ["latest"],
        annotations=_parse_annotations(args.annotation),
        target=args.target,
        author=args.author,
        tar=args.tar,
    )
    for warning in result.warnings:
        print(f"{PROG}: warning: {warning}", file=sys.stderr)
    for tag in result.tags:
        print(f"{result.layout}:{tag}@{result.manifest.digest}")
    if result.tar:
        print(f"{result.tar}")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from hatch_wasm_oci.oci.layout_reader import OciLayout

    layout = OciLayout.open(Path(args.layout))
    layout.verify()
    manifests = {d.digest for d in layout.manifests()}
    referrers = len(layout.referrers())
    tags = ", ".join(sorted(layout.tags())) or "none"
    extra = f", {referrers} referrer(s)" if referrers else ""
    print(f"{layout.path}: ok ({len(manifests) - referrers} manifest(s){extra}, tags: {tags})")
    return 0


INSPECT_EXAMPLES = """\
examples:
  hatch-wasm-oci inspect greeter.wasm                   # the config a build would give it
  hatch-wasm-oci inspect dist/wasm-oci/greeter-0.1.0    # a layout: tags, manifests, config
  hatch-wasm-oci inspect ghcr.io/acme/greeter:0.1.0     # its manifest and referrers
  hatch-wasm-oci inspect 127.0.0.1:5000/acme/greeter:0.1.0 --plain-http
"""

VERIFY_EXAMPLES = """\
examples:
  hatch-wasm-oci verify dist/wasm-oci/greeter-0.1.0
  hatch-wasm-oci pull ghcr.io/acme/greeter:0.1.0 -o pulled
  hatch-wasm-oci verify pulled/layout
"""


def _add_core_commands(commands: Any) -> None:
    """``inspect``, ``pack`` and ``verify``."""
    inspect = commands.add_parser(
        "inspect",
        help="show the Wasm OCI config of a .wasm, or the contents of a layout",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=INSPECT_EXAMPLES,
    )
    inspect.add_argument(
        "path",
        metavar="PATH",
        help="a .wasm file, an OCI layout directory, or a registry reference (REPO:TAG): its "
        "manifest and the referrers the registry holds for it",
    )
    inspect.add_argument(
        "--plain-http", action="store_true", help="for a reference: HTTP, not HTTPS"
    )
    inspect.add_argument("--ca-file", metavar="PATH", type=Path, help="for a reference: a CA")
    inspect.set_defaults(handler=_cmd_inspect)

    pack = commands.add_parser("pack", help="write a .wasm as a Wasm OCI artifact layout")
    pack.add_argument("wasm", metavar="WASM", help="the component or module")
    pack.add_argument("-o", "--output", required=True, metavar="LAYOUT_DIR")
    pack.add_argument(
        "-t", "--tag", action="append", default=[], help="tag to write (repeatable; default latest)"
    )
    pack.add_argument(
        "--annotation", action="append", default=[], metavar="KEY=VALUE", help="manifest annotation"
    )
    pack.add_argument(
        "--target", metavar="WORLD", help="the world it targets, e.g. wasi:http/proxy@0.2.0"
    )
    pack.add_argument(
        "--wit",
        action="append",
        default=[],
        metavar="PATH",
        help="WIT defining the --target world (repeatable; default ./wit): the component must "
        "target it, as `wasm-tools component targets` checks",
    )
    pack.add_argument("--author", help="config author (default: the authors annotation)")
    pack.add_argument("--tar", action="store_true", help="also write LAYOUT_DIR.tar")
    pack.set_defaults(handler=_cmd_pack)

    verify = commands.add_parser(
        "verify",
        help="re-hash and check every blob of a layout",
        description="Re-hash every blob LAYOUT_DIR's index reaches and check each manifest\n"
        "and Wasm OCI config against the spec; one line names the first problem.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=VERIFY_EXAMPLES,
    )
    verify.add_argument("layout", metavar="LAYOUT_DIR")
    verify.set_defaults(handler=_cmd_verify)


def _add_registry_commands(commands: Any) -> None:
    from hatch_wasm_oci.cli.registry import add_commands  # argparse only; registry code is lazy

    add_commands(commands)


def _add_wit_commands(commands: Any) -> None:
    from hatch_wasm_oci.cli.wit import add_commands

    add_commands(commands)


def _add_run_command(commands: Any) -> None:
    from hatch_wasm_oci.cli.run import add_command  # argparse only; wasmtime is lazy

    add_command(commands)


def _add_serve_command(commands: Any) -> None:
    from hatch_wasm_oci.cli.serve import add_command

    add_command(commands)


def _add_reproduce_command(commands: Any) -> None:
    from hatch_wasm_oci.cli.reproduce import add_command

    add_command(commands)


def _add_init_command(commands: Any) -> None:
    from hatch_wasm_oci.cli.init import add_command

    add_command(commands)


_COMMANDS: dict[str, Callable[[Any], None]] = {
    "inspect": _add_core_commands,
    "pack": _add_core_commands,
    "verify": _add_core_commands,
    "push": _add_registry_commands,
    "pull": _add_registry_commands,
    "tags": _add_registry_commands,
    "wit": _add_wit_commands,
    "run": _add_run_command,
    "serve": _add_serve_command,
    "reproduce": _add_reproduce_command,
    "init": _add_init_command,
}
"""Which function adds each command's sub-parser."""


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser of ``hatch-wasm-oci``: every command, or with ``command`` (a known
    command name) only the sub-parsers that define it, which is all parsing that command needs
    (building all of them is a fifth of a fast command's run time)."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="Build, inspect, verify and ship Wasm OCI artifacts."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    if command in _COMMANDS:
        _COMMANDS[command](commands)
    else:
        for add in dict.fromkeys(_COMMANDS.values()):
            add(commands)
    return parser


class _Terminated(BaseException):
    """SIGTERM arrived: unwinds like Ctrl-C, so every writer removes what it staged."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise _Terminated


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    import signal

    words = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(words[0] if words else None).parse_args(words)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return int(args.handler(args))
    except (WasmOciError, OSError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except _Terminated:
        print(f"{PROG}: terminated", file=sys.stderr)
        return 143
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
