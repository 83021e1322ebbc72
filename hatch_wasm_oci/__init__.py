"""Build WebAssembly components into Wasm OCI artifacts and publish them to OCI registries.

The core (binary reader, config, layout, registry) works without Hatch; the Hatch
builder, build hook and publisher in this package are thin adapters over it.
``hatch_wasm_oci.load(target)`` runs a component's exports on wasmtime (imported on first use).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["__version__", "load"]

if TYPE_CHECKING:
    from hatch_wasm_oci.runtime.component import load


def __getattr__(name: str) -> Any:
    if name == "load":
        from hatch_wasm_oci.runtime.component import load

        return load
    raise AttributeError(f"module 'hatch_wasm_oci' has no attribute {name!r}")
