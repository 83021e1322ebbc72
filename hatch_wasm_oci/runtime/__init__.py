"""Running components on wasmtime: load, call exports with Python values, run commands.

Loads from a file, a layout or a registry reference. Imports ``registry``, ``oci``, ``wasm``,
``files``.
"""
