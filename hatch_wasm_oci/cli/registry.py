"""The ``push``, ``pull`` and ``tags`` subcommands of ``hatch-wasm-oci`` (registry code is
loaded lazily)."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Any


def add_commands(subparsers: Any) -> None:
    """Add ``push``, ``pull`` and ``tags`` to the ``hatch-wasm-oci`` argument parser."""
    push = subparsers.add_parser(
        "push",
        help="push an OCI layout's manifests to registry references",
        description=(
            "Push the manifests of LAYOUT_DIR, byte for byte. REPO:TAG pushes the layout's "
            "manifest tagged TAG (or its only manifest); REPO alone pushes every tag of the "
            "layout; REPO@sha256:... pushes that manifest by digest. Credentials: "
            "HATCH_WASM_OCI_USERNAME/HATCH_WASM_OCI_PASSWORD or HATCH_WASM_OCI_TOKEN, then the "
            "docker config ($DOCKER_CONFIG or ~/.docker), then anonymous."
        ),
    )
    push.add_argument("layout", metavar="LAYOUT_DIR")
    push.add_argument("references", metavar="REF", nargs="+")
    _transport_options(push)
    push.add_argument(
        "--dry-run", action="store_true", help="print what would be pushed; contact nothing"
    )
    push.add_argument("--summary", metavar="FILE", type=Path, help="write a JSON summary here")
    push.add_argument(
        "--force",
        action="store_true",
        help="move a version tag (1.2.3) that names another manifest, or a tag back to an "
        "older version",
    )
    _output_options(push)
    push.set_defaults(handler=_cmd_push)

    pull = subparsers.add_parser(
        "pull",
        help="pull a Wasm OCI artifact: the .wasm and an OCI layout, digests verified",
    )
    pull.add_argument("reference", metavar="REF")
    pull.add_argument("-o", "--output", metavar="DIR", type=Path, required=True)
    pull.add_argument("--force", action="store_true", help="replace an existing DIR/<title>.wasm")
    pull.add_argument(
        "--referrers",
        action="store_true",
        help="also fetch the artifact's referrers (SBOM, provenance, attestations) into the layout",
    )
    _transport_options(pull)
    _output_options(pull)
    pull.set_defaults(handler=_cmd_pull)

    tags = subparsers.add_parser(
        "tags",
        help="list a repository's tags",
        description="List the tags of REPO (REGISTRY/NAMESPACE/NAME), one a line.",
        epilog="example: hatch-wasm-oci tags ghcr.io/acme/greeter",
    )
    tags.add_argument("reference", metavar="REPO")
    _transport_options(tags)
    tags.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="json: {repository, tags} on stdout",
    )
    tags.set_defaults(handler=_cmd_tags)


def _transport_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--plain-http", action="store_true", help="talk HTTP, not HTTPS, to the registry"
    )
    parser.add_argument(
        "--ca-file", metavar="PATH", type=Path, help="trust this PEM CA bundle for TLS"
    )


def _output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="no progress or per-blob lines on stderr"
    )
    parser.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="json: print the summary as JSON on stdout (for scripts)",
    )


def _reporter(args: argparse.Namespace) -> Any:
    from hatch_wasm_oci.registry.progress import Reporter

    return Reporter("quiet" if args.quiet else "auto")


def _print_json(data: Any) -> None:
    import json

    print(json.dumps(data, indent=2))


def _cmd_push(args: argparse.Namespace) -> int:
    from hatch_wasm_oci.oci.layout_reader import OciLayout
    from hatch_wasm_oci.registry.push import (
        PushOptions,
        chunked_above_from_env,
        dry_run,
        dry_run_lines,
        plan_push,
        push,
    )

    layout = OciLayout.open(args.layout)
    targets = plan_push(layout, args.references)
    if args.dry_run:
        result = dry_run(targets)
        if args.format == "text":
            for line in dry_run_lines(targets):
                print(line)
    else:
        options = PushOptions(
            plain_http=args.plain_http,
            ca_file=args.ca_file,
            chunked_above=chunked_above_from_env(),
            progress=_reporter(args),
        )
        targets = check_tags_before_push(
            layout, targets, options, force=args.force, quiet=args.quiet
        )
        result = push(layout, targets, options)
        if args.format == "text":
            for ref in result.references:
                print(ref.line)
            for entry in result.referrers:
                print(f"  referrer {entry.artifact_type} {entry.digest}")
        for warning in result.warnings:
            print(f"hatch-wasm-oci: warning: {warning}", file=sys.stderr)
    if args.summary:
        from hatch_wasm_oci.files.atomic import write_json

        write_json(args.summary, result.summary())
    if args.format == "json":
        _print_json(result.summary())
    return 0


def check_tags_before_push(
    layout: Any, targets: list[Any], options: Any, *, force: bool, quiet: bool
) -> list[Any]:
    """The targets whose tags may move (as ``hatch publish`` decides); refusals are errors."""
    import sys

    from hatch_wasm_oci.errors import WasmOciError
    from hatch_wasm_oci.project.publish_plan import (
        PlannedPush,
        TagRules,
        check_tags,
        layout_version,
    )
    from hatch_wasm_oci.registry.remote_tags import remote_tags

    wanted: dict[str, tuple[Any, set[str]]] = {}
    for target in targets:
        wanted.setdefault(target.repository.repo_ref, (target.repository, set()))[1].update(
            target.tags
        )
    remote = {
        repo: remote_tags(ref, sorted(tags), options) for repo, (ref, tags) in wanted.items()
    }
    plan = PlannedPush(layout, targets, layout_version(layout))
    check = check_tags(plan, remote, TagRules(force=force, force_hint="--force"))
    if check.refused:
        raise WasmOciError("; ".join(check.refused))
    if not quiet:
        for line in check.moved:
            print(line, file=sys.stderr)
    return check.kept


def _cmd_pull(args: argparse.Namespace) -> int:
    from hatch_wasm_oci.registry.pull import pull

    result = pull(
        args.reference,
        args.output,
        force=args.force,
        plain_http=args.plain_http,
        ca_file=args.ca_file,
        progress=_reporter(args),
        referrers=args.referrers,
    )
    for warning in result.warnings:
        print(f"hatch-wasm-oci: warning: {warning}", file=sys.stderr)
    _keep_in_store(result.layout, result.reference, result.digest)
    pinned = result.reference if "@" in result.reference else f"{result.reference}@{result.digest}"
    if args.format == "json":
        _print_json(
            {
                "reference": result.reference,
                "pinned": pinned,
                "digest": result.digest,
                "wasm": str(result.wasm),
                "layout": str(result.layout),
                "size": result.size,
                "referrers": [
                    {
                        "digest": r.digest,
                        "artifactType": r.artifact_type,
                        "fetched": result.fetched,
                    }
                    for r in result.referrers
                ],
            }
        )
    else:
        print(f"{pinned} -> {result.wasm} (layout {result.layout})")
        how = "fetched" if result.fetched else "in the registry; pull --referrers fetches it"
        for r in result.referrers:
            print(f"  referrer {r.artifact_type or 'unknown type'} {r.digest} ({how})")
    return 0


def _cmd_tags(args: argparse.Namespace) -> int:
    from hatch_wasm_oci.errors import WasmOciError
    from hatch_wasm_oci.registry.push import PushOptions
    from hatch_wasm_oci.registry.reference import parse_reference
    from hatch_wasm_oci.registry.tag_list import list_tags

    ref = parse_reference(args.reference)
    if ref.tag or ref.digest:
        raise WasmOciError(f"{args.reference}: give the repository alone, without a tag or digest")
    client = PushOptions(plain_http=args.plain_http, ca_file=args.ca_file).client(ref)
    client.want(ref.repository, "pull")
    tags = list_tags(client, ref.repository)
    if args.format == "json":
        _print_json({"repository": ref.repo_ref, "tags": tags})
    else:
        for tag in tags:
            print(tag)
    return 0


def _keep_in_store(layout: Path, reference: str, digest: str) -> None:
    """Put what ``pull`` fetched into the local content store that ``run`` reads (best
    effort: the pull succeeded; the store only saves ``run`` a download)."""
    from hatch_wasm_oci.errors import WasmOciError
    from hatch_wasm_oci.files.cache_home import user_cache_root
    from hatch_wasm_oci.runtime.store import ContentStore

    with contextlib.suppress(OSError, WasmOciError):
        ContentStore(user_cache_root() / "store").keep(layout, reference, digest)
