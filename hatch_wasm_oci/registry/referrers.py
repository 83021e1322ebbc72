"""Finding and recording a manifest's referrers in a registry (distribution-spec 1.1).

A registry with the referrers API answers ``GET /v2/<name>/referrers/<digest>`` with an image
index of them. Without it (distribution 2.8, many others) the referrers are listed in an image
index under the fallback tag ``sha256-<hex of the subject digest>``; other tools (GHCR's
attestations, cosign, oras) write there too, so it is read, merged and written back, never
replaced by our entries alone. That tag is the only one under ``sha256-*`` ever written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hatch_wasm_oci.errors import ArtifactError, RegistryError
from hatch_wasm_oci.files.json_input import JsonInputError, parse_json_object
from hatch_wasm_oci.oci import media_types as mt
from hatch_wasm_oci.oci.descriptor import Descriptor
from hatch_wasm_oci.oci.manifest import INDEX_MEDIA_TYPES
from hatch_wasm_oci.oci.referrers import MAX_REFERRERS, fallback_tag
from hatch_wasm_oci.registry.client import RegistryClient
from hatch_wasm_oci.registry.transport import Response

INDEX_ACCEPT = ", ".join(INDEX_MEDIA_TYPES)


@dataclass(frozen=True)
class Listing:
    """What a registry holds for one subject: the entries, and where they were found
    (``api``, ``tag`` or ``none``); ``index`` is the fallback tag's parsed document."""

    entries: tuple[Descriptor, ...]
    source: str
    index: dict[str, Any] | None = None


def _read(response: Response, action: str, what: str) -> bytes:
    received = bytearray()
    for chunk in response.iter_content(65536):
        received += chunk
        if len(received) > mt.MAX_DOCUMENT_SIZE:
            response.close()
            raise RegistryError(f"{action}: {what} is larger than {mt.MAX_DOCUMENT_SIZE} bytes")
    return bytes(received)


def _entries(data: bytes, action: str, what: str) -> tuple[dict[str, Any], list[Descriptor]]:
    try:
        doc = parse_json_object(data, what, mt.MAX_DOCUMENT_SIZE)
    except JsonInputError as exc:
        raise RegistryError(f"{action}: {exc}") from None
    manifests = doc.get("manifests")
    if doc.get("schemaVersion") != 2 or not isinstance(manifests, list):
        raise RegistryError(f"{action}: {what} is not an image index")
    if len(manifests) > MAX_REFERRERS:
        raise RegistryError(
            f"{action}: {what} lists {len(manifests)} referrers, over the limit of {MAX_REFERRERS}"
        )
    entries = []
    for i, entry in enumerate(manifests):
        try:
            entries.append(Descriptor.from_json(entry))
        except ArtifactError as exc:
            raise RegistryError(f"{action}: {what}: manifests[{i}]: {exc}") from None
    return doc, entries


def list_referrers(client: RegistryClient, repo: str, digest: str, action: str) -> Listing:
    """The referrers of ``digest`` in ``repo``: from the referrers API when the registry has
    it, else from the fallback tag (none when that tag does not exist). RegistryError when
    either holds something that is no bounded image index."""
    response = client.request(
        "GET",
        f"/v2/{repo}/referrers/{digest}",
        repository=repo,
        action=action,
        what="manifest",
        headers={"Accept": mt.INDEX},
    )
    if response.status_code == 200:
        data = _read(response, action, "the referrers API's answer")
        try:
            _, entries = _entries(data, action, "the referrers API's answer")
            return Listing(tuple(entries), "api")
        except RegistryError:
            if response.headers.get("Content-Type", "").split(";")[0].strip() == mt.INDEX:
                raise
            # A 200 that is no index (a catch-all page) means there is no API: the tag decides.
    else:
        response.close()
    tag = fallback_tag(digest)
    response = client.request(
        "GET",
        f"/v2/{repo}/manifests/{tag}",
        repository=repo,
        action=action,
        what="manifest",
        headers={"Accept": INDEX_ACCEPT},
    )
    if response.status_code == 404:
        response.close()
        return Listing((), "none")
    if response.status_code != 200:
        raise client.error(response, action=action, repository=repo, what="manifest")
    data = _read(response, action, f"the referrers tag {tag}")
    doc, entries = _entries(data, action, f"the referrers tag {tag}")
    return Listing(tuple(entries), "tag", doc)


def merged_index(existing: dict[str, Any] | None, added: list[Descriptor]) -> bytes:
    """The fallback tag's index with ``added`` appended: every entry already there is kept
    exactly as it was (other tools' fields included); an entry of the same digest is not
    listed twice."""
    doc = dict(existing or {})
    kept = list(doc.get("manifests") or [])
    listed = {entry.get("digest") for entry in kept if isinstance(entry, dict)}
    kept += [entry.to_json() for entry in added if entry.digest not in listed]
    doc["schemaVersion"] = 2
    doc["mediaType"] = mt.INDEX
    doc["manifests"] = kept
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
