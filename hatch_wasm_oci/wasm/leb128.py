"""LEB128 integers as the WebAssembly binary format encodes them."""

from __future__ import annotations

U32_MAX_BYTES = 5


def encode_u32(value: int) -> bytes:
    """Encode ``value`` (0 <= value < 2**32) as unsigned LEB128 in the fewest bytes."""
    if not 0 <= value < 1 << 32:
        raise ValueError(f"{value} does not fit in a u32")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


class LebError(Exception):
    """A LEB128 integer is truncated, too long or too large; ``index`` is where it starts.

    ``truncated`` tells the first case (the data ended inside the integer) from the others.
    """

    def __init__(self, message: str, index: int, *, truncated: bool = False) -> None:
        super().__init__(message)
        self.index = index
        self.truncated = truncated


def decode_unsigned(data: bytes, index: int, bits: int = 32) -> tuple[int, int]:
    """Decode an unsigned LEB128 of at most ``bits`` bits at ``data[index]``.

    Returns ``(value, next_index)``; raises :class:`LebError` when the encoding runs past the
    data, uses more bytes than ``bits`` allows, or sets bits above ``bits``.
    """
    max_bytes = (bits + 6) // 7
    result = 0
    shift = 0
    start = index
    for count in range(max_bytes):
        if index >= len(data):
            raise LebError(f"truncated LEB128 u{bits}", start, truncated=True)
        byte = data[index]
        index += 1
        if count == max_bytes - 1:
            if byte & 0x80:
                raise LebError(f"LEB128 u{bits} is longer than {max_bytes} bytes", start)
            if byte >> (bits - shift):
                raise LebError(f"LEB128 integer does not fit in u{bits}", start)
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, index
        shift += 7
    raise AssertionError("unreachable")  # pragma: no cover
