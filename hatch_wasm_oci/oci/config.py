"""The Wasm OCI artifact documents: config blob, image manifest, and their canonical bytes.

Follows the CNCF TAG Runtime "Wasm OCI Artifact layout" (adopted with WASI 0.2.1).
Every builder here is deterministic: the same inputs give byte-identical JSON.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from hatch_wasm_oci.errors import WasmOciError

if TYPE_CHECKING:
    from hatch_wasm_oci.wasm.binary import WasmInfo

MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
CONFIG_MEDIA_TYPE = "application/vnd.wasm.config.v0+json"
LAYER_MEDIA_TYPE = "application/wasm"
ARCHITECTURE = "wasm"

# The timestamp hatchling stamps on reproducible wheels when SOURCE_DATE_EPOCH is unset.
DEFAULT_EPOCH = 1580601600


def canonical_json(obj: Any) -> bytes:
    """Compact UTF-8 JSON with sorted keys: the one serialisation used for every blob."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


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


def _sorted_unique(names: Iterable[str]) -> list[str]:
    return sorted(set(names))


def wasm_config(
    info: WasmInfo,
    layer_digests: Iterable[str],
    *,
    created: str,
    author: str | None = None,
    target: str | None = None,
) -> dict[str, Any]:
    """The ``application/vnd.wasm.config.v0+json`` document for one Wasm binary.

    Components (and encoded WIT packages) get ``os: wasip2`` and the ``component`` object with
    their top-level import and export names; core modules get ``os: wasip1`` and no component.
    """
    config: dict[str, Any] = {
        "created": created,
        "architecture": ARCHITECTURE,
        "os": info.os,
        "layerDigests": list(layer_digests),
    }
    if author:
        config["author"] = author
    if info.os == "wasip2":
        component: dict[str, Any] = {
            "exports": _sorted_unique(info.exports),
            "imports": _sorted_unique(info.imports),
        }
        if target:
            component["target"] = target
        config["component"] = component
    return config


def descriptor_json(
    media_type: str, digest: str, size: int, annotations: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """An OCI content descriptor."""
    desc: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": size}
    if annotations:
        desc["annotations"] = dict(sorted(annotations.items()))
    return desc


def image_manifest(
    config: Mapping[str, Any],
    layer: Mapping[str, Any],
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """An OCI image manifest with the Wasm config descriptor and its single Wasm layer."""
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": dict(config),
        "layers": [dict(layer)],
    }
    if annotations:
        manifest["annotations"] = dict(sorted(annotations.items()))
    return manifest
