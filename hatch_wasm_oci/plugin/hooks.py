"""Hatch plugin registration: the ``wasm-oci`` builder, build hook and publisher.

Imports stay inside the hook functions: hatchling build environments do not have
``hatch`` installed, and loading this module must stay cheap.
"""

from __future__ import annotations

from typing import Any

from hatchling.plugin import hookimpl


@hookimpl
def hatch_register_builder() -> Any:
    from hatch_wasm_oci.plugin.builder import WasmOciBuilder

    return WasmOciBuilder


@hookimpl
def hatch_register_build_hook() -> Any:
    from hatch_wasm_oci.plugin.build_hook import WasmOciBuildHook

    return WasmOciBuildHook


@hookimpl
def hatch_register_publisher() -> Any:
    from hatch_wasm_oci.plugin.publisher import WasmOciPublisher

    return WasmOciPublisher
