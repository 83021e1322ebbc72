"""Build WebAssembly components into Wasm OCI artifacts and publish them to OCI registries.

The core (binary reader, config, layout, registry) works without Hatch; the Hatch
builder, build hook and publisher in this package are thin adapters over it.
"""

__version__ = "0.1.0"
