"""The build inputs a provenance referrer records, read back and compared.

``reproduce REF`` reads the in-toto/SLSA statement attached to REF's manifest (see
:mod:`hatch_wasm_oci.project.provenance`) and the one its own rebuild wrote, and names each
input that differs. The recorded statement is hostile input: its size is capped, its shape
checked, and anything wrong with it is one :class:`~hatch_wasm_oci.errors.LayoutError` line.
It is unsigned, so it says only what its builder claimed.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hatch_wasm_oci.errors import LayoutError
from hatch_wasm_oci.files.json_input import JsonInputError, parse_json_object
from hatch_wasm_oci.oci import media_types as mt
from hatch_wasm_oci.project.provenance import (
    BUILD_TYPE,
    DSSE_ENVELOPE,
    PREDICATE_TYPE,
    STATEMENT_TYPE,
)

#: A provenance statement of ours is a few kilobytes; a larger one is refused unread.
MAX_PROVENANCE_SIZE = 1 << 20
#: More recorded inputs than this is no statement of ours.
MAX_INPUTS = 512
SOURCE_TREE = "source tree"
EPOCH = "SOURCE_DATE_EPOCH"
COMPILE_KEY = "compile cache key"
SETTINGS = "build settings"
BUILD_ENV = "build environment"
#: More recorded distributions than this is no statement of ours.
MAX_DISTRIBUTIONS = 4096
#: How many distributions of each kind of difference one line names.
SHOWN_DISTRIBUTIONS = 4

Inputs = dict[str, str]


def find_provenance(layout_path: Path, subject: str, what: str) -> Inputs | None:
    """The inputs the provenance referrer of ``subject`` in the layout records; None when the
    layout holds no hatch-wasm-oci provenance for it; LayoutError on a broken one."""
    from hatch_wasm_oci.oci.layout_reader import OciLayout

    layout = OciLayout.open(layout_path)
    for _desc, referrer in layout.referrers(subject):
        if referrer.artifact_type != mt.PROVENANCE or len(referrer.layers) != 1:
            continue
        (layer,) = referrer.layers
        if layer.size > MAX_PROVENANCE_SIZE:
            raise LayoutError(f"{what}: the provenance is larger than {MAX_PROVENANCE_SIZE} bytes")
        data = layout.read_document(layer)
        inputs = parse_provenance(data, what, layer.media_type)
        if inputs is not None:
            return inputs
    return None


def parse_provenance(data: bytes, what: str, media_type: str = mt.PROVENANCE) -> Inputs | None:
    """The inputs recorded in a statement (bare, or in a DSSE envelope): None when it is an
    in-toto statement of another kind (not ours to read); LayoutError when it is junk."""

    def junk(reason: str) -> LayoutError:
        return LayoutError(f"{what}: the provenance {reason}")

    try:
        doc = parse_json_object(data, "it", MAX_PROVENANCE_SIZE)
        if media_type == DSSE_ENVELOPE or "payloadType" in doc:
            payload = doc.get("payload")
            if doc.get("payloadType") != mt.PROVENANCE:
                raise junk(f"is a DSSE envelope whose payloadType is not {mt.PROVENANCE}")
            if not isinstance(payload, str):
                raise junk("is a DSSE envelope without a payload")
            try:
                raw = base64.b64decode(payload, validate=True)
            except (binascii.Error, ValueError):
                raise junk("is a DSSE envelope whose payload is not base64") from None
            doc = parse_json_object(raw, "its payload", MAX_PROVENANCE_SIZE)
    except JsonInputError as exc:
        raise junk(str(exc).removeprefix("it ")) from None
    if doc.get("_type") != STATEMENT_TYPE:
        raise junk(f"is not an in-toto Statement v1 (_type is not {STATEMENT_TYPE})")
    predicate = doc.get("predicate")
    if doc.get("predicateType") != PREDICATE_TYPE or not isinstance(predicate, dict):
        return None
    definition = predicate.get("buildDefinition")
    if not isinstance(definition, dict) or definition.get("buildType") != BUILD_TYPE:
        return None
    return _inputs(definition, junk)


def _inputs(definition: Mapping[str, Any], junk: Any) -> Inputs:
    deps = definition.get("resolvedDependencies")
    internal = definition.get("internalParameters")
    if not isinstance(deps, list) or len(deps) > MAX_INPUTS or not isinstance(internal, dict):
        raise junk("has no resolvedDependencies list or internalParameters object")
    inputs: Inputs = {}
    for dep in deps:
        if not isinstance(dep, dict) or not isinstance(dep.get("name"), str):
            raise junk("has a resolvedDependencies entry without a name")
        name = _text(dep["name"])
        digest, uri = dep.get("digest"), dep.get("uri")
        if isinstance(digest, dict) and isinstance(digest.get("sha256"), str):
            label = SOURCE_TREE if name == "source-tree" else name
            inputs[label] = "sha256:" + _text(digest["sha256"])
        elif isinstance(uri, str) and "@" in uri:
            inputs[name] = _text(uri.rpartition("@")[2])
        else:
            raise junk(f"has a resolvedDependencies entry {name!r} without a digest or version")
    epoch = internal.get(EPOCH)
    if epoch is not None and not isinstance(epoch, str):
        raise junk(f"has a {EPOCH} that is not a string")
    inputs[EPOCH] = "unset" if epoch is None else _text(epoch)
    environment = internal.get("buildEnvironment")
    if environment is not None:
        if (
            not isinstance(environment, list)
            or len(environment) > MAX_DISTRIBUTIONS
            or not all(
                isinstance(d, str) and "==" in d and len(d) <= 200 and d.isprintable()
                for d in environment
            )
        ):
            raise junk("has a buildEnvironment that is not a list of name==version strings")
        inputs[BUILD_ENV] = "\n".join(sorted(environment))
    key = internal.get("compileCacheKey")
    if isinstance(key, dict) and isinstance(key.get("sha256"), str):
        inputs[COMPILE_KEY] = "sha256:" + _text(key["sha256"])
    external = definition.get("externalParameters")
    if external is not None:
        from hatch_wasm_oci.oci.config import canonical_json

        inputs[SETTINGS] = canonical_json(external).decode()
    return inputs


def _text(value: str) -> str:
    """A recorded string fit for one output line: printable, at most 200 characters."""
    clean = "".join(c if c.isprintable() else "?" for c in value[:200])
    return clean + ("…" if len(value) > 200 else "")


def _short(value: str) -> str:
    algorithm, sep, hexpart = value.partition(":")
    if sep and algorithm == "sha256" and len(hexpart) == 64:
        return f"sha256:{hexpart[:12]}…"
    return value


def changed_inputs(recorded: Inputs, rebuilt: Inputs) -> list[str]:
    """One line per input that differs (``name: old → new``); the compile cache key only
    when nothing it is derived from differs (then what only it covers changed: the
    installed distributions)."""
    lines = []
    for name in sorted(set(recorded) | set(rebuilt), key=_order):
        if name in (COMPILE_KEY, BUILD_ENV):
            continue
        old, new = recorded.get(name, "absent"), rebuilt.get(name, "absent")
        if old == new:
            continue
        if name == SETTINGS:
            lines.append(f"{SETTINGS} ([tool.hatch.build.targets.wasm-oci]) differ")
        elif name == EPOCH and old != "unset":
            lines.append(f"{name}: {old} → {new} (set {EPOCH}={old} to rebuild as recorded)")
        elif name in (EPOCH, SOURCE_TREE) or name.endswith("wkg.lock"):
            lines.append(f"{name}: {_short(old)} → {_short(new)}")
        else:
            lines.append(f"{name} {old} → {new}")
    env_old, env_new = recorded.get(BUILD_ENV), rebuilt.get(BUILD_ENV)
    if env_old is not None and env_new is not None and env_old != env_new:
        lines.append(f"{BUILD_ENV}: {_distribution_changes(env_old, env_new)}")
    key_old, key_new = recorded.get(COMPILE_KEY), rebuilt.get(COMPILE_KEY)
    if not lines and key_old != key_new and key_old and key_new:
        lines.append(
            f"{COMPILE_KEY}: {_short(key_old)} → {_short(key_new)} (the build environment's "
            "installed distributions or the build Python differ)"
        )
    return lines


def _distribution_changes(old: str, new: str) -> str:
    """``1 changed (hatchling 1.33.0 → 1.34.0), 2 only here (pytest 8.3.0, …), 1 only where it
    was built (uv 0.5.0); …``: each group counted, its first few named."""
    before = dict(line.split("==", 1) for line in old.splitlines())
    after = dict(line.split("==", 1) for line in new.splitlines())
    both, here, there = (
        before.keys() & after.keys(),
        after.keys() - before.keys(),
        before.keys() - after.keys(),
    )
    groups = [
        (
            "changed",
            [f"{n} {before[n]} → {after[n]}" for n in sorted(both) if before[n] != after[n]],
        ),
        ("only here", [f"{n} {after[n]}" for n in sorted(here)]),
        ("only where it was built", [f"{n} {before[n]}" for n in sorted(there)]),
    ]
    parts = []
    for label, items in groups:
        if items:
            shown = ", ".join(items[:SHOWN_DISTRIBUTIONS]) + (
                ", …" if len(items) > SHOWN_DISTRIBUTIONS else ""
            )
            parts.append(f"{len(items)} {label} ({shown})")
    return ", ".join(parts) + "; rebuild where the recorded distributions are installed"


def _order(name: str) -> tuple[int, str]:
    first = {SOURCE_TREE: 0, SETTINGS: 1, EPOCH: 3}
    return (first.get(name, 2), name)
