"""Media types, platform names and size limits of Wasm OCI artifacts: one set for every command.

The size limits are the ones ``pack``, ``hatch build``, ``verify``, ``push`` and ``pull`` apply
alike, so a layout that one command writes is one every other command accepts.
"""

from __future__ import annotations

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
WASM_CONFIG = "application/vnd.wasm.config.v0+json"
WASM_LAYER = "application/wasm"
#: Referrers (image-spec 1.1 ``subject``): the empty config and the two documents a build attaches.
EMPTY = "application/vnd.oci.empty.v1+json"
SBOM = "application/vnd.cyclonedx+json"
PROVENANCE = "application/vnd.in-toto+json"

ARCHITECTURE = "wasm"
COMPONENT_OS = "wasip2"
MODULE_OS = "wasip1"

# Manifests, indexes and configs: distribution's default manifest limit, and ours for every
# document we write or read (a 6 MiB annotation is refused by pack, not only by push).
MAX_DOCUMENT_SIZE = 4 << 20
