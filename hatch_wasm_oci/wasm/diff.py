"""Where two Wasm binaries differ: byte differences mapped to sections and data segments.

The binaries are walked as trees: a component's nested core modules and components are opened,
a core module's data section is split into its segments; every other section is a leaf. Leaves
are paired by their path (``core-module[0]/data[0]``), so a size change in one place does not
misalign the rest. A data section whose segments are all active at constant addresses is
compared as the memory image it initialises (componentize-py's snapshot of the Python heap lives
there): the report gives the changed addresses, not shifted segment numbers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from hatch_wasm_oci.wasm.leb128 import LebError, decode_unsigned

_MAGIC = b"\0asm"
_COMPONENT_LAYER = b"\x01\x00"
_MODULE_NAMES = {
    0: "custom",
    1: "type",
    2: "import",
    3: "function",
    4: "table",
    5: "memory",
    6: "global",
    7: "export",
    8: "start",
    9: "element",
    10: "code",
    11: "data",
    12: "datacount",
    13: "tag",
}
_COMPONENT_NAMES = {
    0: "custom",
    1: "core-module",
    2: "core-instance",
    3: "core-type",
    4: "component",
    5: "instance",
    6: "alias",
    7: "type",
    8: "canon",
    9: "start",
    10: "import",
    11: "export",
    12: "value",
}
_I32_CONST, _I64_CONST, _GLOBAL_GET, _END = 0x41, 0x42, 0x23, 0x0B


#: Differing ranges listed per difference; the rest are only counted.
RANGES_SHOWN = 4
_CHUNK = 4096
#: The largest memory span compared as an image; beyond it, data sections are compared as bytes.
MAX_IMAGE = 256 << 20


@dataclass(frozen=True)
class Leaf:
    """A named byte range of a binary. For a data section of active segments at constant
    addresses, ``segments`` holds ``(address, start, end)`` of each."""

    path: str
    start: int
    end: int
    segments: tuple[tuple[int, int, int], ...] | None = None


@dataclass(frozen=True)
class Difference:
    """One leaf that differs between binary ``a`` and binary ``b``.

    ``size_a``/``size_b`` are the leaf's sizes (0 where it exists on one side only); ``changed``
    counts differing bytes and ``ranges`` lists ``[start, end)`` ranges of them: offsets in the
    leaf, or memory addresses when ``memory`` is set (a data section compared as a memory image,
    where ``changed`` also counts bytes one side initialises and the other does not). Leaves of
    different sizes that are not memory images have no ``ranges``.
    """

    path: str
    size_a: int
    size_b: int
    changed: int
    ranges: tuple[tuple[int, int], ...] = ()
    memory: bool = False

    def line(self) -> str:
        """One human-readable line."""
        if not self.size_a or not self.size_b:
            side = "a" if self.size_a else "b"
            return f"{self.path}: only in {side} ({self.size_a or self.size_b} bytes)"
        sizes = (
            f"{self.size_a} bytes"
            if self.size_a == self.size_b
            else f"{self.size_a} vs {self.size_b} bytes"
        )
        if not self.ranges:
            return f"{self.path}: {sizes}, not comparable byte by byte"
        shown = ", ".join(
            (f"0x{start:x}..0x{end:x}" if self.memory else f"{start}..{end}")
            for start, end in self.ranges[:RANGES_SHOWN]
        )
        more = len(self.ranges) - RANGES_SHOWN
        where = "memory" if self.memory else "offsets"
        return (
            f"{self.path} ({sizes}): {self.changed} bytes differ in {len(self.ranges)} "
            f"range(s), {where} {shown}" + (f" and {more} more" if more > 0 else "")
        )


class _Malformed(Exception):
    pass


def _u32(data: bytes, index: int, bits: int = 32) -> tuple[int, int]:
    try:
        return decode_unsigned(data, index, bits)
    except LebError:
        raise _Malformed from None


def _signed(data: bytes, index: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if index >= len(data) or shift > 63:
            raise _Malformed
        byte = data[index]
        index += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return (value - (1 << shift) if byte & 0x40 else value), index


def _const_expr(data: bytes, index: int) -> tuple[int | None, int]:
    """Skip a constant expression; return its value when it is a single ``i32/i64.const``."""
    value: int | None = None
    opcodes = 0
    while True:
        if index >= len(data):
            raise _Malformed
        opcode = data[index]
        index += 1
        if opcode == _END:
            return (value if opcodes == 1 else None), index
        opcodes += 1
        if opcode in (_I32_CONST, _I64_CONST):
            value, index = _signed(data, index)
        elif opcode == _GLOBAL_GET:
            _, index = _u32(data, index)
        else:
            raise _Malformed


def _data_segments(data: bytes, start: int, end: int) -> tuple[tuple[int, int, int], ...]:
    """``(address, start, end)`` of each segment; _Malformed unless all are active at a
    constant address."""
    count, index = _u32(data, start)
    segments = []
    for _ in range(count):
        flags, index = _u32(data, index)
        if flags == 2:
            _, index = _u32(data, index)
        elif flags != 0:
            raise _Malformed
        address, index = _const_expr(data, index)
        length, index = _u32(data, index)
        if address is None or address < 0 or index + length > end:
            raise _Malformed
        segments.append((address, index, index + length))
        index += length
    if index != end:
        raise _Malformed
    return tuple(segments)


def _sections(data: bytes, start: int, end: int, prefix: str) -> Iterator[Leaf]:
    if end - start < 8 or data[start : start + 4] != _MAGIC:
        raise _Malformed
    component = data[start + 6 : start + 8] == _COMPONENT_LAYER
    names = _COMPONENT_NAMES if component else _MODULE_NAMES
    yield Leaf(f"{prefix}preamble", start, start + 8)
    counts: dict[str, int] = {}
    index = start + 8
    while index < end:
        head = index
        section_id = data[index]
        size, index = _u32(data, index + 1)
        if index + size > end:
            raise _Malformed
        label = names.get(section_id, f"section-{section_id}")
        if section_id == 0:
            length, name_at = _u32(data, index)
            if name_at + length > index + size:
                raise _Malformed
            label = "custom:" + data[name_at : name_at + length].decode("utf-8", "replace")
        number = counts.get(label, 0)
        counts[label] = number + 1
        path = f"{prefix}{label}[{number}]"
        yield Leaf(f"{path}/header", head, index)
        yield from _section_body(data, index, index + size, path, component, section_id)
        index += size


def _section_body(
    data: bytes, start: int, end: int, path: str, component: bool, section_id: int
) -> Iterator[Leaf]:
    try:
        if component and section_id in (1, 4):
            yield from list(_sections(data, start, end, f"{path}/"))
            return
        if not component and section_id == 11:
            yield Leaf(path, start, end, _data_segments(data, start, end))
            return
    except _Malformed:
        pass  # not decodable in detail: the whole body is one leaf
    yield Leaf(path, start, end)


def leaves(data: bytes) -> list[Leaf]:
    """The binary's leaves in file order (one leaf ``binary`` when it is not Wasm)."""
    try:
        return list(_sections(data, 0, len(data), ""))
    except _Malformed:
        return [Leaf("binary", 0, len(data))]


def _ranges(x: bytes, y: bytes, base: int = 0) -> list[tuple[int, int]]:
    """``[start, end)`` ranges (offset by ``base``) where equal-length ``x`` and ``y`` differ."""
    found: list[tuple[int, int]] = []
    for chunk in range(0, len(x), _CHUNK):
        if x[chunk : chunk + _CHUNK] == y[chunk : chunk + _CHUNK]:
            continue
        for i in range(chunk, min(chunk + _CHUNK, len(x))):
            if x[i] != y[i]:
                if found and found[-1][1] == base + i:
                    found[-1] = (found[-1][0], base + i + 1)
                else:
                    found.append((base + i, base + i + 1))
    return found


def _image(data: bytes, leaf: Leaf, low: int, high: int) -> tuple[bytearray, bytearray]:
    """The memory ``[low, high)`` a data section initialises, and a mask of initialised bytes."""
    image, mask = bytearray(high - low), bytearray(high - low)
    assert leaf.segments is not None
    for address, start, end in leaf.segments:
        image[address - low : address - low + end - start] = data[start:end]
        mask[address - low : address - low + end - start] = b"\x01" * (end - start)
    return image, mask


def _memory_difference(a: bytes, one: Leaf, b: bytes, two: Leaf) -> Difference | None:
    assert one.segments is not None and two.segments is not None
    spans = [(addr, addr + end - start) for addr, start, end in one.segments + two.segments]
    if not spans:
        return None
    low, high = min(s for s, _ in spans), max(e for _, e in spans)
    if high - low > MAX_IMAGE:
        raise _Malformed
    image_a, mask_a = _image(a, one, low, high)
    image_b, mask_b = _image(b, two, low, high)
    ranges = sorted(
        _ranges(bytes(image_a), bytes(image_b), low) + _ranges(bytes(mask_a), bytes(mask_b), low)
    )
    merged: list[tuple[int, int]] = []
    for start, end in ranges:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    if not merged:
        return None
    changed = sum(end - start for start, end in merged)
    size_a, size_b = one.end - one.start, two.end - two.start
    return Difference(one.path, size_a, size_b, changed, tuple(merged), memory=True)


def diff(a: bytes, b: bytes) -> list[Difference]:
    """The leaves in which ``a`` and ``b`` differ, in ``a``'s order (then ``b``-only leaves)."""
    left = {leaf.path: leaf for leaf in leaves(a)}
    right = {leaf.path: leaf for leaf in leaves(b)}
    found: list[Difference] = []
    for path in [*left, *(p for p in right if p not in left)]:
        one, two = left.get(path), right.get(path)
        if one is None or two is None:
            leaf = one or two
            assert leaf is not None
            size = leaf.end - leaf.start
            found.append(Difference(path, size if one else 0, size if two else 0, size))
            continue
        x, y = a[one.start : one.end], b[two.start : two.end]
        if x == y:
            continue
        if one.segments is not None and two.segments is not None:
            try:
                memory = _memory_difference(a, one, b, two)
            except _Malformed:
                memory = None
            else:
                if memory is not None:
                    found.append(memory)
                continue
        if len(x) != len(y):
            found.append(Difference(path, len(x), len(y), abs(len(x) - len(y))))
            continue
        ranges = _ranges(x, y)
        changed = sum(end - start for start, end in ranges)
        found.append(Difference(path, len(x), len(y), changed, tuple(ranges)))
    return found


def report(a: bytes, b: bytes) -> list[str]:
    """:func:`diff` as lines; empty when the binaries are identical."""
    if a == b:
        return []
    return [difference.line() for difference in diff(a, b)] or ["the binaries differ"]
