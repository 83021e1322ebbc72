"""The error of the ``wit`` layer."""

from __future__ import annotations

from hatch_wasm_oci.errors import WasmOciError


class WitError(WasmOciError):
    """A WIT dependency cannot be resolved, fetched or written; the message names the package."""
