"""Running components on wasmtime: load, call exports with Python values, run commands.

Loads from a file, a layout or a registry reference. Imports ``registry``, ``oci``, ``wasm``,
``files``; the only layer that imports ``wasmtime`` (on first use: ``load`` and ``run``).
The value classes below need no wasmtime.
"""

from hatch_wasm_oci.runtime.values import Err, Ok, ResultError, Some, Variant

__all__ = ["Err", "Ok", "ResultError", "Some", "Variant"]
