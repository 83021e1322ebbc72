"""The rules that tie a Wasm artifact's manifest, config and layer together.

``verify`` and ``pull`` both call these, so they accept and reject the same artifacts with the
same messages.
"""

from __future__ import annotations

from hatch_wasm_oci.errors import ArtifactError
from hatch_wasm_oci.oci.config import WasmConfig
from hatch_wasm_oci.oci.manifest import WasmManifest

WASM_MAGIC = b"\0asm"
# What a layer's head must hold: the magic and a 4-byte version/layer field.
LAYER_HEAD_SIZE = 8


def parse_config_of(manifest: WasmManifest, data: bytes) -> WasmConfig:
    """The config blob ``data`` of ``manifest``, parsed and matched against its layer."""
    try:
        config = WasmConfig.parse(data)
    except ArtifactError as exc:
        raise ArtifactError(f"config {manifest.config.digest}: {exc}") from None
    if list(config.layer_digests) != [manifest.layer.digest]:
        raise ArtifactError(
            f"config {manifest.config.digest}: layerDigests do not list the manifest's layers"
        )
    return config


def check_layer_head(manifest: WasmManifest, head: bytes) -> None:
    """ArtifactError unless the layer is a non-empty Wasm binary (judged by its first bytes)."""
    layer = manifest.layer
    if layer.size == 0 or not head:
        raise ArtifactError(f"layer {layer.digest} is empty")
    if head[:4] != WASM_MAGIC or layer.size < LAYER_HEAD_SIZE:
        raise ArtifactError(f"layer {layer.digest} is not a Wasm binary (no \\0asm header)")
