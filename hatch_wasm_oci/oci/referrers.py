"""Referrers (image-spec 1.1): manifests whose ``subject`` is another manifest.

A build attaches its SBOM and provenance this way: one image manifest per document, with
``subject`` the component's manifest, ``artifactType`` the document's media type, the empty
config (``application/vnd.oci.empty.v1+json``, the 2-byte ``{}``) and one layer holding the
document. In an image layout a referrer is an untagged ``index.json`` entry that carries its
``artifactType`` (as ORAS writes them); in a registry it is found through the referrers API or
the ``sha256-<hex>`` fallback tag index (distribution-spec 1.1).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hatch_wasm_oci.errors import ArtifactError
from hatch_wasm_oci.files.json_input import JsonInputError, parse_json_object
from hatch_wasm_oci.oci import media_types as mt
from hatch_wasm_oci.oci.config import canonical_json
from hatch_wasm_oci.oci.descriptor import Descriptor, string_map

if TYPE_CHECKING:
    from hatch_wasm_oci.oci.layout import LayoutWriter

EMPTY_DATA = b"{}"
EMPTY_CONFIG = Descriptor(mt.EMPTY, "sha256:" + hashlib.sha256(EMPTY_DATA).hexdigest(), 2)
#: A referrer holds a few documents, not an image: more layers than this is refused.
MAX_LAYERS = 16
#: The referrers of one manifest that are read from a referrers list (API answer or tag index).
MAX_REFERRERS = 256
#: The fallback tag of a subject manifest: ``sha256-<hex>``.
FALLBACK_PREFIX = "sha256-"


def fallback_tag(subject_digest: str) -> str:
    """The referrers fallback tag of a manifest digest (``sha256:ab..`` -> ``sha256-ab..``)."""
    algorithm, _, hexpart = subject_digest.partition(":")
    if algorithm != "sha256" or len(hexpart) != 64:
        raise ArtifactError(f"no fallback tag for digest {subject_digest[:80]!r}")
    return f"{FALLBACK_PREFIX}{hexpart}"


def looks_like_referrer(doc: Mapping[str, Any]) -> bool:
    """Whether a parsed manifest names a ``subject`` (and so is a referrer, not an artifact)."""
    return "subject" in doc


@dataclass(frozen=True)
class Referrer:
    """An image manifest attached to ``subject``: its type, config and layers."""

    subject: Descriptor
    artifact_type: str
    layers: tuple[Descriptor, ...]
    config: Descriptor = EMPTY_CONFIG
    annotations: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The manifest as written (``mediaType`` always; annotations only if any)."""
        doc: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": mt.MANIFEST,
            "artifactType": self.artifact_type,
            "config": self.config.to_json(),
            "layers": [layer.to_json() for layer in self.layers],
            "subject": self.subject.to_json(),
        }
        if self.annotations:
            doc["annotations"] = dict(sorted(self.annotations.items()))
        return doc

    def to_bytes(self) -> bytes:
        """Canonical bytes (compact, sorted keys)."""
        return canonical_json(self.to_json())

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Referrer:
        """Parse a referrer manifest; ArtifactError naming the first rule it breaks. Without
        ``artifactType`` the config's media type is the type (image-spec 1.1)."""
        if doc.get("schemaVersion") != 2:
            raise ArtifactError("schemaVersion is not 2")
        media_type = doc.get("mediaType")
        if media_type is not None and media_type != mt.MANIFEST:
            raise ArtifactError(f"mediaType {str(media_type)[:100]!r} is not {mt.MANIFEST}")
        try:
            subject = Descriptor.from_json(doc.get("subject"))
            config = Descriptor.from_json(doc.get("config"))
        except ArtifactError as exc:
            raise ArtifactError(f"subject or config: {exc}") from None
        layers = doc.get("layers")
        if not isinstance(layers, list) or len(layers) > MAX_LAYERS:
            raise ArtifactError(f"layers is not a list of at most {MAX_LAYERS} descriptors")
        artifact_type = doc.get("artifactType", config.media_type)
        if not isinstance(artifact_type, str) or not artifact_type:
            raise ArtifactError("artifactType is not a string")
        annotations = string_map(doc.get("annotations"), "the referrer's annotations")
        parsed = tuple(Descriptor.from_json(layer) for layer in layers)
        return cls(subject, artifact_type[:200], parsed, config, annotations)

    @classmethod
    def parse(cls, data: bytes) -> Referrer:
        """Parse manifest bytes (bounded JSON) with :meth:`from_json`'s rules."""
        try:
            doc = parse_json_object(data, "the referrer", mt.MAX_DOCUMENT_SIZE)
        except JsonInputError as exc:
            raise ArtifactError(str(exc)) from None
        return cls.from_json(doc)


def document_referrer(
    subject: Descriptor,
    artifact_type: str,
    document: bytes,
    *,
    title: str,
    annotations: Mapping[str, str] | None = None,
    layer_media_type: str | None = None,
) -> Referrer:
    """The referrer carrying one ``document`` (its layer's media type is ``artifact_type``
    unless ``layer_media_type`` says otherwise, e.g. a DSSE envelope around a statement)."""
    from hatch_wasm_oci.oci.annotations import TITLE

    layer = Descriptor(
        layer_media_type or artifact_type,
        "sha256:" + hashlib.sha256(document).hexdigest(),
        len(document),
        {TITLE: title},
    )
    return Referrer(
        Descriptor(subject.media_type, subject.digest, subject.size),
        artifact_type,
        (layer,),
        annotations=dict(annotations or {}),
    )


def index_entry(referrer: Referrer, data: bytes) -> Descriptor:
    """The descriptor listing a referrer in ``index.json`` or a referrers index: its digest,
    size, ``artifactType`` and annotations."""
    return Descriptor(
        mt.MANIFEST,
        "sha256:" + hashlib.sha256(data).hexdigest(),
        len(data),
        dict(referrer.annotations),
        None,
        referrer.artifact_type,
    )


def referrers_index(entries: list[Descriptor]) -> bytes:
    """An image index listing ``entries`` (the referrers API's answer and the fallback tag)."""
    return canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": mt.INDEX,
            "manifests": [entry.to_json() for entry in entries],
        }
    )


def describe(entry: Descriptor) -> str:
    """One line for a referrer: ``artifactType digest``."""
    return f"{entry.artifact_type or 'unknown type'} {entry.digest}"


def add_to_layout(writer: LayoutWriter, referrer: Referrer, document: bytes) -> Descriptor:
    """Store ``referrer`` with its empty config and its one ``document`` layer in a layout being
    written, listed untagged in ``index.json``; returns its index entry."""
    writer.add_blob(EMPTY_DATA)
    digest, _ = writer.add_blob(document)
    if digest != referrer.layers[0].digest:
        raise ArtifactError("the document does not match the referrer's layer")
    data = referrer.to_bytes()
    writer.add_blob(data)
    entry = index_entry(referrer, data)
    writer.add_untagged(entry)
    return entry
