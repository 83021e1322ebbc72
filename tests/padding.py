"""Growing a real Wasm file to any size while it stays valid (for size and kill tests)."""

from __future__ import annotations

from pathlib import Path

from hatch_wasm_oci.wasm.leb128 import encode_u32 as leb128


def append_custom_section(path: Path, name: str, size: int) -> None:
    """Append a custom section of ``size`` zero bytes (a valid Wasm file stays valid)."""
    encoded = name.encode()
    payload_len = len(leb128(len(encoded))) + len(encoded) + size
    with path.open("ab") as fh:
        fh.write(b"\x00" + leb128(payload_len) + leb128(len(encoded)) + encoded)
        chunk = bytes(1 << 20)
        left = size
        while left:
            n = min(left, len(chunk))
            fh.write(chunk[:n])
            left -= n
