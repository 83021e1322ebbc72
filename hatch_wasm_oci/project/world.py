"""A verified ``component.target``: a world the component really targets, as wasm-tools decides.

A component targets a world when every import of the component is an import of the world and
every export of the world is exported by the component, with matching types: the rule of
``wasm-tools component targets WIT COMPONENT --world WORLD``, which is what runs here. WIT is
read by wasm-tools (the reference WIT parser), never by regular expressions.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hatch_wasm_oci.errors import WasmOciError
from hatch_wasm_oci.files.json_input import parse_json_object
from hatch_wasm_oci.oci.config import validate_target
from hatch_wasm_oci.wit import wasm_tools
from hatch_wasm_oci.wit.names import PackageName
from hatch_wasm_oci.wit.semver import Version

_MISSING = re.compile(r"missing (import|export) named `([^`]+)`")
_WASI_IMPORT = re.compile(r"missing import named `wasi:[a-z0-9-]+/[a-z0-9-]+@([^`]+)`")
#: ``wasm-tools component wit --json`` of a large WIT tree stays well below this.
MAX_WIT_JSON = 64 << 20


def world_name_problem(text: str) -> str | None:
    """None if ``text`` names a world (``ns:pkg/world@version``, the config's grammar), else
    why not."""
    try:
        validate_target(text)
    except WasmOciError as exc:
        return str(exc)
    return None


def targets(wit: Path, component: Path, world: str) -> str | None:
    """None when ``component`` targets ``world`` of ``wit`` (``wasm-tools component targets``),
    else the reason in one line: the first missing import or export when that is it."""
    result = wasm_tools.run("component", "targets", wit, component, "--world", world)
    if result.returncode == 0:
        return None
    missing = _MISSING.search(result.stderr)
    if missing:
        return f"missing {missing.group(1)} named `{missing.group(2)}`"
    return wasm_tools.first_error(result.stderr)


@dataclass(frozen=True)
class Resolution:
    """What wasm-tools resolved from one WIT path: its root package and every package's worlds."""

    wit: Path
    root: PackageName
    worlds: dict[str, tuple[str, ...]]  # package name (ns:pkg@version) -> world names

    def qualified(self, world: str) -> str | None:
        """The qualified name of ``world``: a bare name is looked up in the root package (as
        componentize-py picks it), a qualified one in every package; None if not defined."""
        if ":" not in world:
            if world not in self.worlds.get(str(self.root), ()):
                return None
            version = f"@{self.root.version}" if self.root.version else ""
            return f"{self.root.ref}/{world}{version}"
        ref, _, version = world.partition("@")
        package, _, name = ref.partition("/")
        wanted = f"{package}@{version}" if version else package
        matches = [
            p
            for p, names in self.worlds.items()
            if name in names and (p == wanted or (not version and p.partition("@")[0] == package))
        ]
        return world if len(matches) == 1 else None

    def root_worlds(self) -> list[str]:
        """Every world of the root package, qualified."""
        return [q for w in self.worlds.get(str(self.root), ()) if (q := self.qualified(w))]


def resolve(wit: Path) -> Resolution:
    """``wit`` (a directory with ``deps/``, or a ``.wit`` file) as wasm-tools resolves it;
    WasmOciError when it does not resolve."""
    root = wasm_tools.root_package(wit)
    result = wasm_tools.run("component", "wit", wit, "--json")
    if result.returncode != 0:
        raise WasmOciError(f"invalid WIT in {wit}: {wasm_tools.first_error(result.stderr)}")
    document = parse_json_object(result.stdout, f"the WIT of {wit}", MAX_WIT_JSON)
    worlds: dict[str, tuple[str, ...]] = {}
    for entry in document.get("packages", []):
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            names = entry.get("worlds")
            worlds[entry["name"]] = tuple(names) if isinstance(names, dict) else ()
    return Resolution(wit, root, worlds)


def find_world(wit_paths: Sequence[Path], world: str) -> tuple[Resolution, str] | None:
    """The first WIT path that defines ``world``, and the world's qualified name."""
    for wit in wit_paths:
        resolution = resolve(wit)
        qualified = resolution.qualified(world)
        if qualified is not None:
            return resolution, qualified
    return None


def verify_target(target: str, wit_paths: Sequence[Path], component: Path) -> str | None:
    """Why ``component`` does not target the world ``target`` (None when it does), one line."""
    problem = world_name_problem(target)
    if problem:
        return problem
    if not wit_paths:
        return f"no WIT to check world {target} against (put it in wit/, dependencies in wit/deps/)"
    found = find_world(wit_paths, target)
    if found is None:
        return f"world {target} is not defined in {', '.join(str(p) for p in wit_paths)}"
    reason = targets(found[0].wit, component, found[1])
    return f"the component does not target {target}: {reason}" if reason else None


def default_target(
    wit_paths: Sequence[Path], world: str, component: Path
) -> tuple[str | None, str | None]:
    """A componentize-py build's target: ``world`` if the component targets it, else the first
    other world of the same package it targets; else None and a one-line warning saying why and
    how to get a verified target. Returns (target, warning)."""
    found = find_world(wit_paths, world)
    if found is None:
        return None, f"component.target is null: world {world!r} was not found in the WIT"
    resolution, qualified = found
    reason = targets(resolution.wit, component, qualified)
    if reason is None:
        return qualified, None
    for candidate in resolution.root_worlds():
        if candidate != qualified and targets(resolution.wit, component, candidate) is None:
            return candidate, None
    return None, (
        f"component.target is null: the component does not target {qualified} ({reason}, "
        f"which componentize-py links); {_include_advice(resolution, qualified, reason)}"
    )


def _include_advice(resolution: Resolution, world: str, reason: str) -> str:
    """How to make a componentize-py build target ``world``: the exact ``include`` line that
    brings in the WASI imports componentize-py links, at the wasi:cli version the project's
    WIT already has (else the version componentize-py linked), and where its WIT goes."""
    parsed = [
        Version.parse(n.partition("@")[2]) for n in resolution.worlds if n.startswith("wasi:cli@")
    ]
    have = [v for v in parsed if v is not None]
    linked = _WASI_IMPORT.search(reason)
    if have:
        version, deps = str(max(have)), ""
    elif linked:
        version = linked.group(1)
        deps = (
            f" with the wasi:cli@{version} WIT in {resolution.wit}/deps/ "
            "(`hatch-wasm-oci wit fetch`)"
        )
    else:
        return (
            "for a verified target set `target` to a world the component targets, or use stub-wasi"
        )
    name = world.partition("/")[2].partition("@")[0]
    return (
        f"for a verified target add `include wasi:cli/imports@{version};` to world {name}"
        f"{deps}, or use stub-wasi"
    )
