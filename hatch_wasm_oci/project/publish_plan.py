"""Publishing rules: which layouts go, and which registry tags a push may move.

* By default only the layouts of the project's current version are pushed; the others are
  reported as skipped.
* Two layouts that claim one reference with different manifests are refused before anything
  is pushed.
* A tag whose manifest in the registry has a newer ``org.opencontainers.image.version`` (PEP 440
  order) is not moved back unless forced; ``skip-existing`` leaves tags that already name the
  same manifest alone; ``immutable-tags`` refuses to move any existing tag.
* A SemVer version tag (``2.0.0``, ``v2.0.0``) that names another manifest is not moved unless
  forced: a released version's bytes do not change under its users. Moving tags (``latest``,
  ``1.2``, ``main``) move, with a line saying from which digest.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.version import InvalidVersion, Version

from hatch_wasm_oci.errors import WasmOciError
from hatch_wasm_oci.oci.annotations import VERSION
from hatch_wasm_oci.oci.layout_reader import OciLayout
from hatch_wasm_oci.registry.push import PushTarget
from hatch_wasm_oci.registry.remote_tags import RemoteTag
from hatch_wasm_oci.wit.semver import Version as SemVer

#: ``versions`` values that select every layout.
ALL_VERSIONS = ("all", "*")


class PublishRefused(WasmOciError):
    """A publish that would have done something wrong; ``problems`` has one line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


def _same_version(a: str, b: str) -> bool:
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


def newer(a: str | None, b: str | None) -> bool:
    """Whether version ``a`` is newer than ``b`` in PEP 440 order (False when either is not
    a PEP 440 version: such a pair has no order)."""
    if a is None or b is None:
        return False
    try:
        return Version(a) > Version(b)
    except InvalidVersion:
        return False


def layout_version(layout: OciLayout) -> str | None:
    """The layout's version: its manifests' ``org.opencontainers.image.version``, else what
    follows the last ``-`` of its directory name (``<name>-<version>``, as the builder names
    it), else None."""
    for descriptor in layout.manifests():
        try:
            annotations = layout.manifest(descriptor).get("annotations")
        except WasmOciError:
            continue
        if isinstance(annotations, Mapping) and isinstance(
            annotations.get(VERSION), str
        ):
            return str(annotations[VERSION])
    _, dash, version = layout.path.name.rpartition("-")
    return version if dash and version else None


def select_layouts(
    layouts: Sequence[tuple[Path, str | None]], versions: Sequence[str], current: str
) -> tuple[list[Path], list[str]]:
    """The layouts to push and one line per skipped one.

    ``versions`` names the versions wanted (``all`` for every layout); empty means ``current``.
    """
    wanted = list(versions) or [current]
    take_all = any(v in ALL_VERSIONS for v in wanted)
    chosen: list[Path] = []
    skipped: list[str] = []
    for path, version in layouts:
        if take_all or (version is not None and any(_same_version(version, w) for w in wanted)):
            chosen.append(path)
        else:
            why = f"version {version}" if version else "no version"
            skipped.append(
                f"skipped {path} ({why}, not {' or '.join(wanted)}; "
                "push it with -o versions=VERSION or versions=all)"
            )
    if not chosen:
        raise WasmOciError(
            f"no layout of version {' or '.join(wanted)} among {len(layouts)} found; build it "
            "with `hatch build -t wasm-oci` or choose others with -o versions=VERSION (or all)"
        )
    return chosen, skipped


@dataclass(frozen=True)
class PlannedPush:
    """The push targets of one layout, with the layout's version."""

    layout: OciLayout
    targets: list[PushTarget]
    version: str | None


def conflicts(plans: Iterable[PlannedPush]) -> list[str]:
    """One line per reference that two layouts would point at different manifests."""
    claims: dict[str, tuple[str, Path]] = {}
    found: list[str] = []
    for plan in plans:
        for target in plan.targets:
            for tag in target.tags:
                ref = f"{target.repository.repo_ref}:{tag}"
                digest = target.manifest.digest
                earlier = claims.setdefault(ref, (digest, plan.layout.path))
                if earlier[0] != digest:
                    found.append(
                        f"{ref} is claimed by {earlier[1]} ({earlier[0]}) and by "
                        f"{plan.layout.path} ({digest}); nothing was pushed — push one of them "
                        "(-o versions=VERSION) or give explicit tags"
                    )
    return found


@dataclass(frozen=True)
class TagRules:
    """The publisher's options that decide whether an existing tag may move."""

    skip_existing: bool = False
    immutable_tags: bool = False
    force: bool = False
    #: How the user forces a move, for the hints (``--force`` on the CLI).
    force_hint: str = "-o force=true"


def version_tag(tag: str) -> bool:
    """Whether ``tag`` names one release: a SemVer version, optionally after a ``v``."""
    return SemVer.parse(tag.removeprefix("v")) is not None


@dataclass
class TagCheck:
    """What :func:`check_tags` decided for one layout."""

    kept: list[PushTarget]
    skipped: list[str]  #: one line per reference left alone (skip-existing)
    refused: list[str]  #: one line per tag that may not move
    moved: list[str]  #: one line per tag that moves from another manifest


def check_tags(
    plan: PlannedPush, remote: Mapping[str, Mapping[str, RemoteTag]], rules: TagRules
) -> TagCheck:
    """Apply ``rules`` to ``plan`` given the registry's tags (``remote[repo_ref][tag]``)."""
    kept: list[PushTarget] = []
    skipped: list[str] = []
    refused: list[str] = []
    moved: list[str] = []
    for target in plan.targets:
        repo = target.repository.repo_ref
        digest = target.manifest.digest
        tags: list[str] = []
        for tag in target.tags:
            there = remote.get(repo, {}).get(tag)
            if there is None:
                tags.append(tag)
            elif there.digest == digest:
                if rules.skip_existing:
                    skipped.append(f"exists {repo}:{tag}@{digest} (skip-existing)")
                else:
                    tags.append(tag)
            elif rules.immutable_tags:
                refused.append(
                    f"{repo}:{tag} already names {there.digest}; immutable-tags forbids moving "
                    "it — hint: publish under a new tag"
                )
            elif version_tag(tag) and not rules.force:
                refused.append(
                    f"{repo}:{tag} already names {there.digest}, not {digest}; a version tag "
                    f"does not move — hint: publish a new version, or {rules.force_hint} moves it"
                )
            elif newer(there.version, plan.version) and not rules.force:
                refused.append(
                    f"{repo}:{tag} names version {there.version} ({there.digest}); not moving it "
                    f"back to {plan.version} — hint: {rules.force_hint} moves it anyway"
                )
            else:
                tags.append(tag)
                moved.append(f"moved {repo}:{tag} from {there.digest} to {digest}")
        if tags or not target.tags:
            kept.append(dataclasses.replace(target, tags=tuple(tags)))
    return TagCheck(kept, skipped, refused, moved)
