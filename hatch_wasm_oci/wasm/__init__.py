"""WebAssembly binaries: the streaming reader, LEB128, the wasm-metadata writer.

Imports only ``files`` and ``errors``.
"""
