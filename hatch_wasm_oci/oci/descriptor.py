"""OCI content descriptors: what a manifest, an index or ``index.json`` points at."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from hatch_wasm_oci.errors import ArtifactError
from hatch_wasm_oci.files.digest import DIGEST_PATTERN


class Platform(NamedTuple):
    """The ``platform`` of an index entry (only the fields used to pick a Wasm manifest)."""

    architecture: str
    os: str

    def __str__(self) -> str:
        return f"{self.architecture}/{self.os}"


def string_map(obj: Any, what: str) -> dict[str, str]:
    """An ``annotations`` object: absent or null is empty; else every key and value a string."""
    if obj is None:
        return {}
    if not isinstance(obj, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in obj.items()
    ):
        raise ArtifactError(f"{what} are not a map of strings")
    return dict(obj)


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor; unknown fields (``urls``, ``data``) are ignored when parsing
    and never written. ``artifact_type`` is a referrer's ``artifactType`` (index entries)."""

    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] = field(default_factory=dict)
    platform: Platform | None = field(default=None, compare=False)
    artifact_type: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The descriptor as written: mediaType, digest, size, artifactType if any, then sorted
        annotations if any."""
        desc: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.artifact_type is not None:
            desc["artifactType"] = self.artifact_type
        if self.annotations:
            desc["annotations"] = dict(sorted(self.annotations.items()))
        return desc

    def with_annotations(self, annotations: Mapping[str, str]) -> Descriptor:
        """A copy with ``annotations`` added (they win over existing keys)."""
        merged = {**self.annotations, **annotations}
        return Descriptor(
            self.media_type, self.digest, self.size, merged, self.platform, self.artifact_type
        )

    @classmethod
    def from_json(cls, obj: Any) -> Descriptor:
        """Parse a descriptor; ArtifactError when a required field is missing or mistyped."""
        if not isinstance(obj, dict):
            raise ArtifactError("a descriptor is not a JSON object")
        media_type, digest, size = obj.get("mediaType"), obj.get("digest"), obj.get("size")
        if not isinstance(media_type, str) or not isinstance(digest, str):
            raise ArtifactError("a descriptor lacks a string mediaType or digest")
        if not re.fullmatch(DIGEST_PATTERN, digest):
            raise ArtifactError(f"unsupported or malformed digest {digest[:80]!r}")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ArtifactError(f"descriptor {digest} has no valid size")
        annotations = string_map(obj.get("annotations"), f"descriptor {digest}'s annotations")
        platform = None
        raw = obj.get("platform")
        if isinstance(raw, dict):
            arch, os_name = raw.get("architecture"), raw.get("os")
            if isinstance(arch, str) and isinstance(os_name, str):
                platform = Platform(arch, os_name)
        artifact_type = obj.get("artifactType")
        if artifact_type is not None and not isinstance(artifact_type, str):
            raise ArtifactError(f"descriptor {digest}'s artifactType is not a string")
        return cls(media_type, digest, size, annotations, platform, artifact_type)
