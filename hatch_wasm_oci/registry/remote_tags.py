"""What a repository's tags point at now: digest and version, read before a push moves them."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from hatch_wasm_oci.errors import RegistryError
from hatch_wasm_oci.files.json_input import JsonInputError, parse_json_object
from hatch_wasm_oci.oci import media_types as mt
from hatch_wasm_oci.oci.annotations import VERSION
from hatch_wasm_oci.oci.manifest import MANIFEST_ACCEPT
from hatch_wasm_oci.registry.push import PushOptions
from hatch_wasm_oci.registry.reference import Reference


@dataclass(frozen=True)
class RemoteTag:
    """A tag that exists in the registry: the digest it names and that manifest's version."""

    tag: str
    digest: str
    version: str | None


def remote_tags(
    repository: Reference, tags: Iterable[str], options: PushOptions
) -> dict[str, RemoteTag]:
    """The tags among ``tags`` that ``repository`` already has (absent ones are left out).

    Credentials, TLS, retries and the connection are those the push will use. Manifests are
    read up to the document size limit; one that does not parse has no version.
    """
    client = options.client(repository)
    repo = repository.repository
    client.want(repo, "pull", "push")
    found: dict[str, RemoteTag] = {}
    for tag in dict.fromkeys(tags):
        action = f"reading tag {repository.repo_ref}:{tag}"
        response = client.request(
            "GET",
            f"/v2/{repo}/manifests/{tag}",
            repository=repo,
            action=action,
            what="manifest",
            headers={"Accept": MANIFEST_ACCEPT},
        )
        if response.status_code == 404:
            response.close()
            continue
        if response.status_code != 200:
            raise client.error(response, action=action, repository=repo, what="manifest")
        received = bytearray()
        for chunk in response.iter_content(65536):
            received += chunk
            if len(received) > mt.MAX_DOCUMENT_SIZE:
                raise RegistryError(f"{action} failed: the manifest is larger than 4 MiB")
        data = bytes(received)
        version: str | None = None
        try:
            document = parse_json_object(data, "manifest", mt.MAX_DOCUMENT_SIZE)
            annotations = document.get("annotations")
            if isinstance(annotations, dict) and isinstance(
                annotations.get(VERSION), str
            ):
                version = annotations[VERSION]
        except JsonInputError:
            pass
        found[tag] = RemoteTag(tag, "sha256:" + hashlib.sha256(data).hexdigest(), version)
    return found
