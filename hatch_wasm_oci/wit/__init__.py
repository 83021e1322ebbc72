"""WIT packages from OCI registries, the way wkg does it: resolve, ``wit/deps/``, ``wkg.lock``.

Also encodes a project's own WIT as a package. Imports ``registry``, ``oci``, ``wasm``,
``files``.
"""
