"""The Wasm OCI artifact: its model, tag rules, and the OCI image layout writer and reader.

Imports ``wasm`` and ``files``.
"""
