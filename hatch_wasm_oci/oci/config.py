"""The Wasm OCI config blob (``application/vnd.wasm.config.v0+json``): build, write, parse.

Follows the CNCF TAG Runtime "Wasm OCI Artifact layout" and the reference implementation
(bytecodealliance ``oci-wasm``). Writing is strict and deterministic: compact JSON with sorted
keys, no ``null`` fields. Parsing is as tolerant as the spec and the reference tools: ``author``
and ``target`` may be null or absent, unknown fields and any key order are accepted.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, NamedTuple

from hatch_wasm_oci.errors import ArtifactError, WasmOciError
from hatch_wasm_oci.files.digest import DIGEST_PATTERN
from hatch_wasm_oci.files.json_input import JsonInputError, parse_json_object
from hatch_wasm_oci.oci import media_types as mt

if TYPE_CHECKING:
    from hatch_wasm_oci.wasm.binary import WasmInfo

# Kept for callers that import them from here.
MANIFEST_MEDIA_TYPE = mt.MANIFEST
INDEX_MEDIA_TYPE = mt.INDEX
CONFIG_MEDIA_TYPE = mt.WASM_CONFIG
LAYER_MEDIA_TYPE = mt.WASM_LAYER
ARCHITECTURE = mt.ARCHITECTURE

# The timestamp hatchling stamps on reproducible wheels when SOURCE_DATE_EPOCH is unset.
DEFAULT_EPOCH = 1580601600

# Patterns are strings matched with re.fullmatch, whose cache compiles each on first use:
# compiling them at import cost `inspect` ~5 ms, and most runs never match them.
_RFC3339 = (
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-](\d{2}):(\d{2}))"
)
# WIT identifiers: kebab-case words, each all lower- or all upper-case, optionally %-escaped.
_WIT_ID = r"%?(?:[a-z][a-z0-9]*|[A-Z][A-Z0-9]*)(?:-(?:[a-z][a-z0-9]*|[A-Z][A-Z0-9]*))*"
_SEMVER = (
    r"(?:0|[1-9]\d*)\.(?:0|[1-9]\d*)\.(?:0|[1-9]\d*)"
    r"(?:-(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*)?"
    r"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?"
)
SEMVER_PATTERN = _SEMVER
TARGET_PATTERN = rf"{_WIT_ID}:{_WIT_ID}/{_WIT_ID}(?:@{_SEMVER})?"


def canonical_json(obj: Any) -> bytes:
    """Compact UTF-8 JSON with sorted keys: the one serialisation used for every blob."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def is_rfc3339(text: str) -> bool:
    """Whether ``text`` is an RFC 3339 date-time (``2024-05-01T12:00:00Z``, offsets, fractions)."""
    match = re.fullmatch(_RFC3339, text)
    if not match:
        return False
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    try:
        datetime(year, month, day, hour, minute, min(second, 59))
    except ValueError:
        return False
    offset_ok = match.group(9) is None or (int(match.group(9)) < 24 and int(match.group(10)) < 60)
    return second <= 60 and offset_ok


def validate_target(target: str) -> str:
    """Return ``target`` if it names a world as ``ns:pkg/world[@version]``, else WasmOciError."""
    if not re.fullmatch(TARGET_PATTERN, target):
        raise WasmOciError(
            f"target {target[:200]!r} is not a world name: use ns:pkg/world@version, "
            "e.g. wasi:http/proxy@0.2.0"
        )
    return target


def created_timestamp(environ: Mapping[str, str] | None = None) -> str:
    """RFC 3339 UTC time from SOURCE_DATE_EPOCH, else a fixed default; never the wall clock."""
    env = os.environ if environ is None else environ
    raw = env.get("SOURCE_DATE_EPOCH", "").strip()
    epoch = DEFAULT_EPOCH
    if raw:
        try:
            epoch = int(raw)
        except ValueError:
            raise WasmOciError(
                f"SOURCE_DATE_EPOCH must be a whole number of seconds, got {raw!r}"
            ) from None
    try:
        if epoch < 0:
            raise ValueError
        stamp = datetime.fromtimestamp(epoch, tz=timezone.utc)
    except (ValueError, OverflowError, OSError):
        raise WasmOciError(f"SOURCE_DATE_EPOCH is out of range: {raw!r}") from None
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


class Component(NamedTuple):
    """The config's ``component`` object: top-level import and export names, optional world."""

    imports: tuple[str, ...]
    exports: tuple[str, ...]
    target: str | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"exports": list(self.exports), "imports": list(self.imports)}
        if self.target is not None:
            doc["target"] = self.target
        return doc

    @classmethod
    def from_json(cls, obj: Any) -> Component:
        """Parse ``component``; ArtifactError naming the first field that breaks the rules."""
        if not isinstance(obj, dict):
            raise ArtifactError("component is not an object")
        names: dict[str, tuple[str, ...]] = {}
        for key in ("imports", "exports"):
            value = obj.get(key)
            if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
                raise ArtifactError(f"component.{key} is not a list of names")
            names[key] = tuple(value)
        target = obj.get("target")
        if target is not None:
            if not isinstance(target, str):
                raise ArtifactError("component.target is neither null nor a string")
            if not re.fullmatch(TARGET_PATTERN, target):
                raise ArtifactError(
                    f"component.target {target[:200]!r} is not a world name (ns:pkg/world@version)"
                )
        return cls(names["imports"], names["exports"], target)


class WasmConfig(NamedTuple):
    """An ``application/vnd.wasm.config.v0+json`` document."""

    created: str
    os: str
    layer_digests: tuple[str, ...]
    component: Component | None = None
    author: str | None = None
    architecture: str = mt.ARCHITECTURE

    def to_json(self) -> dict[str, Any]:
        """The document as written: null fields (author, target, component) left out."""
        doc: dict[str, Any] = {
            "created": self.created,
            "architecture": self.architecture,
            "os": self.os,
            "layerDigests": list(self.layer_digests),
        }
        if self.author:
            doc["author"] = self.author
        if self.component is not None:
            doc["component"] = self.component.to_json()
        return doc

    def to_bytes(self) -> bytes:
        """Canonical bytes; ArtifactError past the document size limit."""
        data = canonical_json(self.to_json())
        if len(data) > mt.MAX_DOCUMENT_SIZE:
            raise ArtifactError(
                f"the config would be {len(data)} bytes, over the {mt.MAX_DOCUMENT_SIZE}-byte "
                "limit for OCI documents"
            )
        return data

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> WasmConfig:
        """Parse a config object; ArtifactError naming the first rule it breaks."""
        if doc.get("architecture") != mt.ARCHITECTURE:
            raise ArtifactError("architecture is not 'wasm'")
        os_name = doc.get("os")
        if os_name not in (mt.MODULE_OS, mt.COMPONENT_OS):
            raise ArtifactError(f"os {str(os_name)[:80]!r} is neither wasip1 nor wasip2")
        digests = doc.get("layerDigests")
        if not isinstance(digests, list) or not all(
            isinstance(d, str) and re.fullmatch(DIGEST_PATTERN, d) for d in digests
        ):
            raise ArtifactError("layerDigests is not a list of sha256 digests")
        created = doc.get("created")
        if not isinstance(created, str):
            raise ArtifactError("created is missing")
        if not is_rfc3339(created):
            raise ArtifactError(f"created {created[:80]!r} is not an RFC 3339 time")
        author = doc.get("author")
        if author is not None and not isinstance(author, str):
            raise ArtifactError("author is neither null nor a string")
        raw_component = doc.get("component")
        if os_name == mt.COMPONENT_OS and raw_component is None:
            raise ArtifactError("a wasip2 config must have a component object")
        component = None if raw_component is None else Component.from_json(raw_component)
        return cls(created, os_name, tuple(digests), component, author)

    @classmethod
    def parse(cls, data: bytes) -> WasmConfig:
        """Parse config bytes (bounded JSON) with :meth:`from_json`'s rules."""
        try:
            doc = parse_json_object(data, "the config", mt.MAX_DOCUMENT_SIZE)
        except JsonInputError as exc:
            raise ArtifactError(str(exc)) from None
        return cls.from_json(doc)


def config_for(
    info: WasmInfo,
    layer_digests: Iterable[str],
    *,
    created: str,
    author: str | None = None,
    target: str | None = None,
) -> WasmConfig:
    """The config for one Wasm binary: components (and encoded WIT packages) get ``wasip2`` and
    their top-level import and export names in the binary's order (as rust-oci-wasm lists them);
    core modules get ``wasip1`` and no component."""
    if target is not None:
        validate_target(target)
    component = None
    if info.os == mt.COMPONENT_OS:
        component = Component(tuple(info.imports), tuple(info.exports), target)
    return WasmConfig(created, info.os, tuple(layer_digests), component, author or None)


def wasm_config(
    info: WasmInfo,
    layer_digests: Iterable[str],
    *,
    created: str,
    author: str | None = None,
    target: str | None = None,
) -> dict[str, Any]:
    """:func:`config_for` as the JSON object written to the layout."""
    return config_for(info, layer_digests, created=created, author=author, target=target).to_json()
