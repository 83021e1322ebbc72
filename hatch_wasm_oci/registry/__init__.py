"""OCI registries: transport, auth challenges, credentials, references, push and pull.

Imports ``oci`` and ``files``, never ``wasm`` internals or Hatch.
"""
