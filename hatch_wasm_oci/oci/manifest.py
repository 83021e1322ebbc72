"""The Wasm image manifest and the image index: build, write, parse, and pick from an index.

A Wasm OCI artifact's manifest has the Wasm config and exactly one ``application/wasm`` layer.
Parsing accepts what the image spec allows (no ``mediaType``, absent or null annotations,
unknown fields, any key order); writing is compact with sorted keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hatch_wasm_oci.errors import ArtifactError
from hatch_wasm_oci.files.json_input import JsonInputError, parse_json_object
from hatch_wasm_oci.oci import media_types as mt
from hatch_wasm_oci.oci.config import canonical_json
from hatch_wasm_oci.oci.descriptor import Descriptor, Platform, string_map

# Index entries are tried in this order: a component, then a plain module.
WASM_PLATFORMS = (
    Platform(mt.ARCHITECTURE, mt.COMPONENT_OS),
    Platform(mt.ARCHITECTURE, mt.MODULE_OS),
)
INDEX_MEDIA_TYPES = (mt.INDEX, mt.DOCKER_MANIFEST_LIST)
MANIFEST_ACCEPT = ", ".join([mt.MANIFEST, *INDEX_MEDIA_TYPES])
"""The ``Accept`` header for a Wasm artifact: a manifest, or an index that lists one."""


def _document(data: bytes, what: str) -> dict[str, Any]:
    try:
        return parse_json_object(data, what, mt.MAX_DOCUMENT_SIZE)
    except JsonInputError as exc:
        raise ArtifactError(str(exc)) from None


def is_index(data: bytes, content_type: str | None = None) -> bool:
    """Whether a document is an image index: by its Content-Type, else by its own mediaType
    (or, with neither, a ``manifests`` list and no ``layers``)."""
    if content_type in INDEX_MEDIA_TYPES:
        return True
    try:
        doc = parse_json_object(data, "the document", mt.MAX_DOCUMENT_SIZE)
    except JsonInputError:
        return False
    declared = doc.get("mediaType")
    if declared is not None:
        return declared in INDEX_MEDIA_TYPES
    return isinstance(doc.get("manifests"), list) and "layers" not in doc


@dataclass(frozen=True)
class WasmManifest:
    """An image manifest holding one Wasm artifact."""

    config: Descriptor
    layer: Descriptor
    annotations: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The manifest as written (always with ``mediaType``; annotations only if any)."""
        doc: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": mt.MANIFEST,
            "config": self.config.to_json(),
            "layers": [self.layer.to_json()],
        }
        if self.annotations:
            doc["annotations"] = dict(sorted(self.annotations.items()))
        return doc

    def to_bytes(self) -> bytes:
        """Canonical bytes; ArtifactError past the document limit every command applies."""
        data = canonical_json(self.to_json())
        if len(data) > mt.MAX_DOCUMENT_SIZE:
            largest = max(self.annotations.items(), key=lambda kv: len(kv[1]), default=None)
            hint = (
                f" (largest annotation: {largest[0]}, {len(largest[1])} bytes)" if largest else ""
            )
            raise ArtifactError(
                f"the manifest would be {len(data)} bytes, over the {mt.MAX_DOCUMENT_SIZE}-byte "
                f"limit that verify, push and registries apply{hint}"
            )
        return data

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> WasmManifest:
        """Parse a manifest object; ArtifactError naming the first rule it breaks."""
        if doc.get("schemaVersion") != 2:
            raise ArtifactError("schemaVersion is not 2")
        media_type = doc.get("mediaType")
        if media_type is not None and media_type != mt.MANIFEST:
            raise ArtifactError(f"mediaType {str(media_type)[:100]!r} is not {mt.MANIFEST}")
        config = Descriptor.from_json(doc.get("config"))
        if config.media_type != mt.WASM_CONFIG:
            raise ArtifactError(
                f"config mediaType {config.media_type[:100]!r} is not {mt.WASM_CONFIG}"
            )
        layers = doc.get("layers")
        if not isinstance(layers, list) or len(layers) != 1:
            count = len(layers) if isinstance(layers, list) else 0
            raise ArtifactError(f"a Wasm artifact has exactly one layer, this one has {count}")
        layer = Descriptor.from_json(layers[0])
        if layer.media_type != mt.WASM_LAYER:
            raise ArtifactError(
                f"layer mediaType {layer.media_type[:100]!r} is not {mt.WASM_LAYER}"
            )
        annotations = string_map(doc.get("annotations"), "the manifest's annotations")
        return cls(config, layer, annotations)

    @classmethod
    def parse(cls, data: bytes) -> WasmManifest:
        """Parse manifest bytes (bounded JSON) with :meth:`from_json`'s rules."""
        return cls.from_json(_document(data, "the manifest"))


@dataclass(frozen=True)
class ImageIndex:
    """An OCI image index (or Docker manifest list): the manifests it lists."""

    manifests: tuple[Descriptor, ...]

    @classmethod
    def parse(cls, data: bytes) -> ImageIndex:
        """Parse index bytes; ArtifactError when it is not an index."""
        doc = _document(data, "the index")
        if doc.get("schemaVersion") != 2:
            raise ArtifactError("the index's schemaVersion is not 2")
        media_type = doc.get("mediaType")
        if media_type is not None and media_type not in INDEX_MEDIA_TYPES:
            raise ArtifactError(f"mediaType {str(media_type)[:100]!r} is not an image index")
        entries = doc.get("manifests")
        if not isinstance(entries, list):
            raise ArtifactError("the index has no manifests list")
        manifests = []
        for i, entry in enumerate(entries):
            try:
                manifests.append(Descriptor.from_json(entry))
            except ArtifactError as exc:
                raise ArtifactError(f"the index's manifests[{i}]: {exc}") from None
        return cls(tuple(manifests))

    def wasm_manifest(self) -> Descriptor:
        """The one Wasm manifest: platform wasm/wasip2, else wasm/wasip1; ArtifactError listing
        what the index holds when there are several candidates or none."""
        for platform in WASM_PLATFORMS:
            found = [d for d in self.manifests if d.platform == platform]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise ArtifactError(
                    f"the index lists {len(found)} {platform} manifests; pull one by digest: "
                    + self.describe()
                )
        raise ArtifactError(
            "the index holds no wasm/wasip2 or wasm/wasip1 manifest: " + self.describe()
        )

    def describe(self) -> str:
        """What the index holds, one entry per manifest: ``platform digest``."""
        if not self.manifests:
            return "it is empty"
        return ", ".join(
            f"{d.platform or 'no platform'} {d.digest}" for d in self.manifests[:20]
        ) + (f", and {len(self.manifests) - 20} more" if len(self.manifests) > 20 else "")
