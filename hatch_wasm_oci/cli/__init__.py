"""The ``hatch-wasm-oci`` command line.

Imports the core layers; never Hatch, never ``plugin``.
"""
