"""Read what a Wasm OCI artifact needs from a WebAssembly binary, without loading it whole.

:func:`read_wasm` tells a core module from a component from an encoded WIT package, lists the
top-level import and export names and reads the top-level metadata custom sections
(``producers``, the name section and the ``wasm-metadata`` fields). It walks the top-level
section headers with seeks and reads only the bodies it needs, so nested core modules and
components (the bulk of a componentize-py component) are never read.

Names, per kind:

* component: the top-level import and export names exactly as the binary holds them
  (``wasi:http/incoming-handler@0.2.0``, ``greet``);
* WIT package: no imports; exports are the package's interfaces and worlds, fully qualified
  (``acme:calc/calculator@1.2.0``), as ``wasm-tools component wit`` and rust-oci-wasm see them;
* core module: imports as ``module/name`` (``wasi_snapshot_preview1/fd_write``), exports as
  their plain names (``memory``, ``_start``).

Every problem with the file, including failing to open it, raises
:class:`~hatch_wasm_oci.errors.WasmFormatError` naming the file and, where it applies, the byte
offset.
"""

from __future__ import annotations

import enum
import os
import stat
from collections.abc import Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import BinaryIO, NamedTuple

from hatch_wasm_oci.errors import WasmFormatError
from hatch_wasm_oci.wasm.leb128 import LebError, decode_unsigned

__all__ = [
    "METADATA_FIELDS",
    "SectionHeader",
    "WasmInfo",
    "WasmKind",
    "WasmMetadata",
    "read_wasm",
    "read_wasm_sections",
    "section_headers",
]

MAGIC = b"\x00asm"
MODULE_PREAMBLE = MAGIC + b"\x01\x00\x00\x00"
COMPONENT_PREAMBLE = MAGIC + b"\x0d\x00\x01\x00"

#: The ``wasm-metadata`` custom sections that hold one UTF-8 string each, in the order
#: ``wasm-tools metadata add`` writes them.
METADATA_FIELDS = (
    "authors",
    "description",
    "licenses",
    "source",
    "homepage",
    "revision",
    "version",
)

# Section ids.
_CUSTOM = 0
_MODULE_IMPORT = 2
_MODULE_EXPORT = 7
_MODULE_MAX_ID = 13  # tag section (exception handling)
_COMP_ALIAS = 6
_COMP_TYPE = 7
_COMP_IMPORT = 10
_COMP_EXPORT = 11
_COMP_MAX_ID = 11
_COMP_SECTION_NAMES = {
    0: "custom",
    1: "core module",
    2: "core instance",
    3: "core type",
    4: "component",
    5: "instance",
    6: "alias",
    7: "type",
    8: "canonical function",
    9: "start",
    10: "import",
    11: "export",
}
_MODULE_SECTION_NAMES = {
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
    12: "data count",
    13: "tag",
}
_SORT_TYPE = 0x03
# Component primitive value types (bool .. string, error-context).
_PRIMITIVE_VALTYPES = frozenset(range(0x73, 0x80)) | {0x64}
# Custom sections read at the top level; every other custom section is skipped.
_WANTED_CUSTOM = frozenset(METADATA_FIELDS) | {"producers", "name", "component-name"}
_MAX_TYPE_NESTING = 100
#: The most of a metadata custom section (a wasm-metadata field, ``producers``) read: a larger
#: one is refused with a WasmFormatError before it is read (memory stays flat).
MAX_METADATA_SECTION = 1 << 20
#: The most of any other top-level section decoded in memory (imports, exports, types, aliases).
MAX_DECODED_SECTION = 16 << 20
# Of a name section only the binary's own name (subsection 0, first) is read, from this prefix.
_NAME_PREFIX = 64 << 10


class WasmKind(enum.Enum):
    """What a ``.wasm`` file holds."""

    MODULE = "module"
    COMPONENT = "component"
    WIT_PACKAGE = "wit-package"


class WasmMetadata(NamedTuple):
    """The top-level metadata custom sections of a binary; ``None`` where a section is absent.

    ``name`` comes from the name section (``component-name`` for components), ``producers``
    maps a field (``language``, ``processed-by``, ``sdk``) to ``{name: version}``; the other
    fields are the ``wasm-metadata`` sections of the same names.
    """

    name: str | None = None
    authors: str | None = None
    description: str | None = None
    licenses: str | None = None
    source: str | None = None
    homepage: str | None = None
    revision: str | None = None
    version: str | None = None
    producers: Mapping[str, Mapping[str, str]] = MappingProxyType({})  # a dict when read


class WasmInfo(NamedTuple):
    """What :func:`read_wasm` found in a binary."""

    path: str
    kind: WasmKind
    imports: tuple[str, ...]
    exports: tuple[str, ...]
    metadata: WasmMetadata
    size: int

    @property
    def os(self) -> str:
        """The Wasm OCI config ``os``: ``wasip1`` for a core module, else ``wasip2``."""
        return "wasip1" if self.kind is WasmKind.MODULE else "wasip2"


class SectionHeader(NamedTuple):
    """One top-level section: its id, where its header starts, and where its body lies."""

    id: int
    offset: int
    body_offset: int
    size: int
    custom_name: str | None = None

    @property
    def end(self) -> int:
        """The offset just past the section's body."""
        return self.body_offset + self.size


def read_wasm(path: str | os.PathLike[str]) -> WasmInfo:
    """Read the kind, top-level imports/exports and metadata of the Wasm binary at ``path``.

    Raises :class:`~hatch_wasm_oci.errors.WasmFormatError` for anything that is not a
    well-framed module, component or WIT package, and when the file cannot be read.
    """
    return read_wasm_sections(path)[0]


def read_wasm_sections(path: str | os.PathLike[str]) -> tuple[WasmInfo, list[SectionHeader]]:
    """:func:`read_wasm`, and the top-level section headers walked on the way (one pass)."""
    with _open(os.fspath(path)) as wasm:
        reader = _Reader(wasm)
        return reader.read(), reader.headers


def section_headers(path: str | os.PathLike[str]) -> tuple[bool, list[SectionHeader]]:
    """Return ``(is_component, headers)`` for the top-level sections of the binary at ``path``.

    The framing is checked as :func:`read_wasm` checks it; custom sections carry their name.
    """
    name = os.fspath(path)
    with _open(name) as wasm:
        is_component = wasm.preamble()
        return is_component, list(wasm.sections(is_component))


class _WasmFile:
    """A Wasm binary opened for seeking, with framing checks that raise WasmFormatError."""

    def __init__(self, path: str, handle: BinaryIO, size: int) -> None:
        self.path = path
        self.handle = handle
        self.size = size

    def __enter__(self) -> _WasmFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.close()

    def error(self, message: str, offset: int | None = None) -> WasmFormatError:
        return WasmFormatError(self.path, message, offset)

    def read_at(self, offset: int, count: int) -> bytes:
        """Read exactly ``count`` bytes at ``offset`` (callers have checked the bounds)."""
        try:
            self.handle.seek(offset)
            data = self.handle.read(count)
        except OSError as exc:
            raise self.error(f"cannot read: {exc.strerror or exc}") from None
        if len(data) != count:
            raise self.error("file changed while being read (unexpected end)", offset + len(data))
        return data

    def preamble(self) -> bool:
        """Check the 8-byte preamble; return True for a component, False for a core module."""
        head = self.read_at(0, min(8, self.size))
        if not head:
            raise self.error("empty file, not a WebAssembly binary")
        if not head.startswith(MAGIC[: len(head)]) or len(head) < 4:
            raise self.error(_not_wasm_reason(head))
        if len(head) < 8:
            raise self.error(
                f"truncated preamble: {len(head)} of 8 bytes (magic and version)", len(head)
            )
        if head == MODULE_PREAMBLE:
            return False
        if head == COMPONENT_PREAMBLE:
            return True
        version = int.from_bytes(head[4:6], "little")
        layer = int.from_bytes(head[6:8], "little")
        if layer == 1:
            raise self.error(
                f"unsupported component binary version 0x{version:02x} (expected 0x0d)", 4
            )
        if layer == 0:
            raise self.error(f"unsupported WebAssembly version {version} (expected 1)", 4)
        raise self.error(f"unknown WebAssembly layer {layer} (version 0x{version:x})", 6)

    def sections(self, is_component: bool) -> Iterator[SectionHeader]:
        """Yield the top-level section headers, checking ids and bounds; bodies are skipped."""
        max_id = _COMP_MAX_ID if is_component else _MODULE_MAX_ID
        offset = 8
        while offset < self.size:
            head = self.read_at(offset, min(6, self.size - offset))
            section_id = head[0]
            if section_id > max_id:
                what = "component" if is_component else "module"
                raise self.error(f"unknown {what} section id {section_id}", offset)
            try:
                size, index = decode_unsigned(head, 1)
            except LebError as exc:
                if exc.truncated:
                    raise self.error("truncated section header", offset) from None
                raise self.error(f"section size: {exc}", offset + exc.index) from None
            body = offset + index
            if body + size > self.size:
                raise self.error(
                    f"{self.section_name(section_id, is_component)} section of {size} bytes "
                    f"overflows the file ({self.size - body} bytes left)",
                    offset,
                )
            custom_name = None
            if section_id == _CUSTOM:
                custom_name = self.custom_name(body, size)
            yield SectionHeader(section_id, offset, body, size, custom_name)
            offset = body + size

    def custom_name(self, body: int, size: int) -> str:
        data = self.read_at(body, min(size, 5 + 1024))
        cursor = _Cursor(self, data, body, "custom section", size)
        return cursor.name()

    @staticmethod
    def section_name(section_id: int, is_component: bool) -> str:
        names = _COMP_SECTION_NAMES if is_component else _MODULE_SECTION_NAMES
        return names.get(section_id, f"id {section_id}")


def _open(path: str) -> _WasmFile:
    # stat before open: opening a FIFO would block, and a directory needs its own message.
    try:
        status = os.stat(path)
        if stat.S_ISDIR(status.st_mode):
            raise WasmFormatError(path, "is a directory, not a WebAssembly binary")
        if not stat.S_ISREG(status.st_mode):
            raise WasmFormatError(path, "not a regular file")
        handle = open(path, "rb")  # noqa: SIM115 (closed by _WasmFile)
    except (FileNotFoundError, NotADirectoryError):
        raise WasmFormatError(path, "no such file") from None
    except PermissionError:
        raise WasmFormatError(path, "permission denied") from None
    except (OSError, ValueError) as exc:  # ValueError: embedded NUL in the path
        raise WasmFormatError(
            path, f"cannot open: {getattr(exc, 'strerror', None) or exc}"
        ) from None
    try:
        size = os.fstat(handle.fileno()).st_size
    except OSError as exc:
        handle.close()
        raise WasmFormatError(path, f"cannot read: {exc.strerror or exc}") from None
    return _WasmFile(path, handle, size)


def _not_wasm_reason(head: bytes) -> str:
    if head.startswith(b"PK"):
        return "not a WebAssembly binary (looks like a zip archive)"
    if head.startswith(b"\x1f\x8b"):
        return "not a WebAssembly binary (looks like a gzip file)"
    stripped = head.lstrip()
    if stripped.startswith((b"(mod", b"(com", b";;")):
        return "WebAssembly text, not a binary (compile it with `wasm-tools parse`)"
    if stripped.startswith((b"package", b"world", b"interface", b"//")):
        return "looks like WIT text, not a binary (encode it: `wasm-tools component wit --wasm`)"
    if len(head) < 4 and MAGIC.startswith(head):
        return f"truncated magic: {len(head)} of 4 bytes"
    return "not a WebAssembly binary (bad magic bytes)"


class _Cursor:
    """Decodes one section body held in memory; errors name absolute file offsets."""

    def __init__(
        self, wasm: _WasmFile, data: bytes, base: int, what: str, declared: int | None = None
    ) -> None:
        self.wasm = wasm
        self.data = data
        self.base = base
        self.pos = 0
        self.what = what
        # When only a prefix of a body was read, running out of data is not truncation.
        self.partial = declared is not None and declared > len(data)

    @property
    def offset(self) -> int:
        return self.base + self.pos

    def at_end(self) -> bool:
        return self.pos >= len(self.data)

    def error(self, message: str, offset: int | None = None) -> WasmFormatError:
        return self.wasm.error(f"{self.what}: {message}", self.offset if offset is None else offset)

    def truncated(self) -> WasmFormatError:
        if self.partial:
            return self.error("entry too large")
        return self.error("unexpected end of section (truncated)")

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise self.truncated()
        value = self.data[self.pos]
        self.pos += 1
        return value

    def peek(self) -> int:
        if self.pos >= len(self.data):
            raise self.truncated()
        return self.data[self.pos]

    def uint(self, bits: int = 32) -> int:
        try:
            value, self.pos = decode_unsigned(self.data, self.pos, bits)
        except LebError as exc:
            if exc.truncated:
                raise self.truncated() from None
            raise self.error(str(exc), self.base + exc.index) from None
        return value

    def u32(self) -> int:
        return self.uint(32)

    def take(self, count: int) -> bytes:
        if self.pos + count > len(self.data):
            raise self.truncated()
        value = self.data[self.pos : self.pos + count]
        self.pos += count
        return value

    def name(self) -> str:
        start = self.offset
        length = self.u32()
        raw = self.take(length)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise self.error("name is not valid UTF-8", start) from None

    def finish(self) -> None:
        if self.pos != len(self.data):
            raise self.error(f"{len(self.data) - self.pos} unexpected trailing bytes")

    # -- component grammar ------------------------------------------------------------------

    def extern_name(self) -> str:
        """``importname'`` / ``exportname'``: a discriminant byte, then the name."""
        start = self.offset
        kind = self.byte()
        if kind == 0x00:
            return self.name()
        if kind == 0x01:
            # 0x01 is the pre-2024 "interface name" marker (name only); with canonical
            # interface names it is followed by a version suffix completing ``ns:pkg/i@0.2``.
            name = self.name()
            if _has_partial_version(name):
                return name + self.name()
            return name
        if kind == 0x02:
            # Draft encoding: name, then options (0x00 implements, 0x01 version suffix).
            name = self.name()
            suffix = ""
            for _ in range(self.u32()):
                option = self.byte()
                if option not in (0x00, 0x01):
                    raise self.error(f"unknown name option 0x{option:02x}")
                value = self.name()
                if option == 0x01:
                    suffix = value
            return name + suffix
        raise self.error(f"unknown name discriminant 0x{kind:02x}", start)

    def sort(self) -> int:
        sort = self.byte()
        if sort == 0x00:
            self.byte()  # core sort
        elif sort > 0x05:
            raise self.error(f"unknown sort 0x{sort:02x}", self.offset - 1)
        return sort

    def externdesc(self) -> tuple[int, int | None]:
        """Skip an ``externdesc``; return its kind and, for a component, its type index."""
        kind = self.byte()
        index: int | None = None
        if kind == 0x00:
            if self.byte() != 0x11:
                raise self.error("core module type expected", self.offset - 1)
            self.u32()
        elif kind in (0x01, 0x04, 0x05):
            index = self.u32()
        elif kind == 0x02:
            self.valtype()
        elif kind == 0x03:
            bound = self.byte()
            if bound == 0x00:
                self.u32()
            elif bound != 0x01:
                raise self.error(f"unknown type bound 0x{bound:02x}", self.offset - 1)
        else:
            raise self.error(f"unknown extern kind 0x{kind:02x}", self.offset - 1)
        return kind, index

    def valtype(self) -> None:
        if self.peek() in _PRIMITIVE_VALTYPES:
            self.pos += 1
        else:
            self.uint(33)

    def opt_valtype(self) -> None:
        flag = self.byte()
        if flag == 0x01:
            self.valtype()
        elif flag != 0x00:
            raise self.error(f"bad option flag 0x{flag:02x}", self.offset - 1)

    def alias(self) -> int:
        """Skip an alias; return its sort."""
        sort = self.sort()
        target = self.byte()
        if target in (0x00, 0x01):
            self.u32()
            self.name()
        elif target == 0x02:
            self.u32()
            self.u32()
        else:
            raise self.error(f"unknown alias target 0x{target:02x}", self.offset - 1)
        return sort

    def component_type(self, depth: int = 0) -> tuple[int, list[str], dict[str, list[str]]]:
        """Skip one ``type``; return its opcode, for component/instance types its export names,
        and for each export that is a component (a WIT world) that component's export names."""
        if depth > _MAX_TYPE_NESTING:
            raise self.error("types nested too deeply")
        start = self.offset
        opcode = self.byte()
        exports: list[str] = []
        nested: dict[str, list[str]] = {}
        # This type's own type index space: component types keep their export names.
        local_types: list[list[str] | None] = []
        if opcode in _PRIMITIVE_VALTYPES:
            pass
        elif opcode == 0x72:  # record
            for _ in range(self.u32()):
                self.name()
                self.valtype()
        elif opcode == 0x71:  # variant
            for _ in range(self.u32()):
                self.name()
                self.opt_valtype()
                refines = self.byte()
                if refines == 0x01:
                    self.u32()
                elif refines != 0x00:
                    raise self.error(f"bad variant case 0x{refines:02x}", self.offset - 1)
        elif opcode in (0x70, 0x6B):  # list, option
            self.valtype()
        elif opcode == 0x67:  # fixed-size list
            self.valtype()
            self.u32()
        elif opcode == 0x63:  # map
            self.valtype()
            self.valtype()
        elif opcode in (0x6F, 0x6C):  # tuple, union
            for _ in range(self.u32()):
                self.valtype()
        elif opcode in (0x6E, 0x6D):  # flags, enum
            for _ in range(self.u32()):
                self.name()
        elif opcode == 0x6A:  # result
            self.opt_valtype()
            self.opt_valtype()
        elif opcode in (0x69, 0x68):  # own, borrow
            self.u32()
        elif opcode in (0x66, 0x65):  # future, stream
            self.opt_valtype()
        elif opcode == 0x3F:  # resource
            self.byte()  # representation (i32)
            dtor = self.byte()
            if dtor == 0x01:
                self.u32()
            elif dtor != 0x00:
                raise self.error(f"bad resource destructor 0x{dtor:02x}", self.offset - 1)
        elif opcode in (0x40, 0x43):  # func, async func
            for _ in range(self.u32()):
                self.name()
                self.valtype()
            results = self.byte()
            if results == 0x00:
                self.valtype()
            elif results == 0x01:
                for _ in range(self.u32()):
                    self.name()
                    self.valtype()
            else:
                raise self.error(f"bad function results 0x{results:02x}", self.offset - 1)
        elif opcode in (0x41, 0x42):  # component, instance
            for _ in range(self.u32()):
                decl = self.byte()
                if decl in (0x03, 0x04) and (decl == 0x04 or opcode == 0x41):  # import, export
                    name = self.extern_name()
                    kind, index = self.externdesc()
                    if kind == 0x03:
                        local_types.append(None)
                    if decl == 0x04:
                        exports.append(name)
                        if kind == 0x04 and index is not None and index < len(local_types):
                            declared = local_types[index]
                            if declared is not None:
                                nested[name] = declared
                elif decl == 0x00:
                    self.core_type(depth + 1)
                elif decl == 0x01:
                    inner, inner_exports, _ = self.component_type(depth + 1)
                    local_types.append(inner_exports if inner == 0x41 else None)
                elif decl == 0x02:
                    if self.alias() == _SORT_TYPE:
                        local_types.append(None)
                else:
                    raise self.error(f"unknown declaration 0x{decl:02x}", self.offset - 1)
        else:
            raise self.error(f"unsupported type opcode 0x{opcode:02x}", start)
        return opcode, exports, nested

    def core_type(self, depth: int) -> None:
        if depth > _MAX_TYPE_NESTING:
            raise self.error("types nested too deeply")
        opcode = self.byte()
        if opcode == 0x60:
            for _ in range(2):
                for _ in range(self.u32()):
                    self.core_valtype()
        elif opcode == 0x50:  # module type
            for _ in range(self.u32()):
                decl = self.byte()
                if decl == 0x00:
                    self.name()
                    self.name()
                    self.core_importdesc()
                elif decl == 0x01:
                    self.core_type(depth + 1)
                elif decl == 0x02:
                    self.byte()
                    if self.byte() != 0x01:
                        raise self.error("core alias must be outer", self.offset - 1)
                    self.u32()
                    self.u32()
                elif decl == 0x03:
                    self.name()
                    self.core_importdesc()
                else:
                    raise self.error(f"unknown module declaration 0x{decl:02x}", self.offset - 1)
        else:
            raise self.error(f"unsupported core type opcode 0x{opcode:02x}", self.offset - 1)

    def core_valtype(self) -> None:
        if self.byte() in (0x63, 0x64):  # (ref null ht), (ref ht)
            self.uint(33)

    def core_limits(self) -> None:
        flags = self.byte()
        bits = 64 if flags & 0x04 else 32
        self.uint(bits)
        if flags & 0x01:
            self.uint(bits)
        if flags & 0x08:
            self.u32()

    def core_importdesc(self) -> None:
        kind = self.byte()
        if kind == 0x00:
            self.u32()
        elif kind == 0x01:
            self.core_valtype()
            self.core_limits()
        elif kind == 0x02:
            self.core_limits()
        elif kind == 0x03:
            self.core_valtype()
            self.byte()
        elif kind == 0x04:
            self.byte()
            self.u32()
        else:
            raise self.error(f"unknown import kind 0x{kind:02x}", self.offset - 1)


def _unique(names: Iterable[str]) -> list[str]:
    """``names`` without repeats, each at its first position (the binary's order)."""
    return list(dict.fromkeys(names))


def _has_partial_version(name: str) -> bool:
    """True for a canonical interface name whose version lacks its suffix (``a:b/c@0.2``)."""
    at = name.rfind("@")
    if at < 0:
        return False
    return name[at + 1 :].count(".") < 2


class _Export:
    __slots__ = ("index", "name", "sort")

    def __init__(self, name: str, sort: int, index: int) -> None:
        self.name, self.sort, self.index = name, sort, index


class _Reader:
    """One pass over the top-level sections, then a second over types for WIT packages."""

    def __init__(self, wasm: _WasmFile) -> None:
        self.wasm = wasm
        self.imports: list[str] = []
        self.exports: list[_Export] = []
        self.fields: dict[str, str] = {}
        self.producers: dict[str, dict[str, str]] = {}
        # Type and alias sections to decode, and the exports already decoded, in section order.
        self.type_space: list[SectionHeader | list[_Export]] = []
        self.headers: list[SectionHeader] = []

    def read(self) -> WasmInfo:
        is_component = self.wasm.preamble()
        for header in self.wasm.sections(is_component):
            self.headers.append(header)
            if header.id == _CUSTOM:
                if header.custom_name in _WANTED_CUSTOM:
                    self.custom(header, is_component)
            elif is_component:
                self.component_section(header)
            elif header.id == _MODULE_IMPORT:
                self.module_imports(header)
            elif header.id == _MODULE_EXPORT:
                self.module_exports(header)
        metadata = WasmMetadata(
            name=self.fields.get("name"),
            authors=self.fields.get("authors"),
            description=self.fields.get("description"),
            licenses=self.fields.get("licenses"),
            source=self.fields.get("source"),
            homepage=self.fields.get("homepage"),
            revision=self.fields.get("revision"),
            version=self.fields.get("version"),
            producers=self.producers,
        )
        kind = WasmKind.COMPONENT if is_component else WasmKind.MODULE
        imports = _unique(self.imports)
        exports = _unique(export.name for export in self.exports)
        if is_component and self.looks_like_wit_package():
            package_exports = self.wit_package_exports()
            if package_exports is not None:
                kind = WasmKind.WIT_PACKAGE
                exports = _unique(package_exports)
        return WasmInfo(
            path=self.wasm.path,
            kind=kind,
            imports=tuple(imports),
            exports=tuple(exports),
            metadata=metadata,
            size=self.wasm.size,
        )

    def body(self, header: SectionHeader, what: str, limit: int = MAX_DECODED_SECTION) -> _Cursor:
        """The section's body in memory; refused (before reading) when over ``limit`` bytes."""
        if header.size > limit:
            raise self.wasm.error(
                f"{what} is {header.size} bytes, over the {limit}-byte limit for decoding it",
                header.offset,
            )
        data = self.wasm.read_at(header.body_offset, header.size)
        return _Cursor(self.wasm, data, header.body_offset, what)

    def custom(self, header: SectionHeader, is_component: bool) -> None:
        what = f"custom section {header.custom_name!r}"
        name = header.custom_name
        if name == ("component-name" if is_component else "name"):
            self.name_subsection(header, what)
            return
        cursor = self.body(header, what, MAX_METADATA_SECTION)
        cursor.name()
        if name == "producers":
            for _ in range(cursor.u32()):
                field_name = cursor.name()
                values = self.producers.setdefault(field_name, {})
                for _ in range(cursor.u32()):
                    tool = cursor.name()
                    values[tool] = cursor.name()
            cursor.finish()
        elif name in METADATA_FIELDS:
            start = cursor.offset
            raw = cursor.data[cursor.pos :]
            try:
                self.fields[name] = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise cursor.error("value is not valid UTF-8", start) from None

    def name_subsection(self, header: SectionHeader, what: str) -> None:
        """The binary's own name: subsection 0, which comes first. The rest of the section
        (function and local names, megabytes in big modules) is never read."""
        data = self.wasm.read_at(header.body_offset, min(header.size, _NAME_PREFIX))
        cursor = _Cursor(self.wasm, data, header.body_offset, what, header.size)
        cursor.name()
        if cursor.at_end() or cursor.peek() != 0x00:
            return
        cursor.byte()
        sub_size = cursor.u32()
        sub_start = cursor.pos
        self.fields["name"] = cursor.name()
        if cursor.pos != sub_start + sub_size:
            raise cursor.error("name subsection size mismatch")

    def component_section(self, header: SectionHeader) -> None:
        if header.id in (_COMP_TYPE, _COMP_ALIAS):
            self.type_space.append(header)
        elif header.id == _COMP_IMPORT:
            cursor = self.body(header, "import section")
            for _ in range(cursor.u32()):
                self.imports.append(cursor.extern_name())
                cursor.externdesc()
            cursor.finish()
        elif header.id == _COMP_EXPORT:
            section: list[_Export] = []
            self.type_space.append(section)
            cursor = self.body(header, "export section")
            for _ in range(cursor.u32()):
                name = cursor.extern_name()
                sort = cursor.sort()
                index = cursor.u32()
                section.append(_Export(name, sort, index))
                has_type = cursor.byte()
                if has_type == 0x01:
                    cursor.externdesc()
                elif has_type != 0x00:
                    raise cursor.error(f"bad export type flag 0x{has_type:02x}", cursor.offset - 1)
            cursor.finish()
            self.exports.extend(section)

    def module_imports(self, header: SectionHeader) -> None:
        cursor = self.body(header, "import section")
        for _ in range(cursor.u32()):
            module = cursor.name()
            name = cursor.name()
            cursor.core_importdesc()
            self.imports.append(f"{module}/{name}")
        cursor.finish()

    def module_exports(self, header: SectionHeader) -> None:
        cursor = self.body(header, "export section")
        for _ in range(cursor.u32()):
            self.exports.append(_Export(cursor.name(), cursor.byte(), cursor.u32()))
        cursor.finish()

    def looks_like_wit_package(self) -> bool:
        """wit-component's test: no imports, and at least one export, all of them types."""
        return (
            not self.imports
            and bool(self.exports)
            and all(export.sort == _SORT_TYPE for export in self.exports)
        )

    def wit_package_exports(self) -> list[str] | None:
        """The names a WIT package exports as rust-oci-wasm lists them, or None if an export is
        not a component type: each interface and world by qualified name, and after each world
        what that world exports (foreign interfaces, bare functions), in binary order.

        Walks the type index space (type definitions, type aliases, type exports) in section
        order; each exported component type declares its world or interface by qualified name.
        """
        types: list[list[str] | None] = []
        names: list[str] = []
        for item in self.type_space:
            if isinstance(item, list):
                for export in item:
                    declared = types[export.index] if export.index < len(types) else None
                    if declared is None:
                        return None
                    names.extend(declared)
                    types.append(declared)
            elif item.id == _COMP_TYPE:
                cursor = self.body(item, "type section")
                for _ in range(cursor.u32()):
                    opcode, exports, worlds = cursor.component_type()
                    listed: list[str] = []
                    for name in exports:
                        listed.append(name)
                        listed.extend(worlds.get(name, ()))
                    types.append(listed if opcode == 0x41 else None)
                cursor.finish()
            else:
                cursor = self.body(item, "alias section")
                for _ in range(cursor.u32()):
                    if cursor.alias() == _SORT_TYPE:
                        types.append(None)
                cursor.finish()
        return names
