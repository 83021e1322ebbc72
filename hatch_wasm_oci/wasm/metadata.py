"""Write the ``wasm-metadata`` custom sections into a Wasm binary, as ``wasm-tools metadata add``.

The fields (``authors``, ``description``, ``licenses``, ``source``, ``homepage``, ``revision``,
``version``) are top-level custom sections holding one UTF-8 string each. Like wasm-tools,
:func:`embed_metadata` removes every such section and appends the merged set at the end of the
top level, in that order; all other sections are copied byte for byte, in chunks.

``name`` is the binary's own name: subsection 0 of the ``component-name`` section of a
component (``name`` for a core module). Like wasm-tools, that section is rewritten where it
stands, keeping its other subsections, or appended when the binary has none.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

from hatch_wasm_oci.errors import WasmFormatError, WasmOciError
from hatch_wasm_oci.files.atomic import replacing
from hatch_wasm_oci.wasm.binary import (
    MAX_METADATA_SECTION,
    METADATA_FIELDS,
    SectionHeader,
    WasmKind,
    read_wasm_sections,
)
from hatch_wasm_oci.wasm.leb128 import LebError, decode_unsigned, encode_u32

__all__ = ["EMBEDDABLE_FIELDS", "METADATA_FIELDS", "embed_metadata", "normalize_field"]

#: What :func:`embed_metadata` can write: the binary's name and the wasm-metadata fields.
EMBEDDABLE_FIELDS = ("name", *METADATA_FIELDS)

_CHUNK = 1024 * 1024
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):(.*)$", re.DOTALL)
# Schemes the WHATWG URL standard (and the Rust `url` crate wasm-tools uses) treats as special.
_SPECIAL_SCHEMES = frozenset({"http", "https", "ws", "wss", "ftp", "file"})


def embed_metadata(
    src: str | os.PathLike[str], dst: str | os.PathLike[str], fields: Mapping[str, str]
) -> None:
    """Copy the Wasm binary ``src`` to ``dst`` with the metadata ``fields`` added or replaced.

    Fields not named keep their current value; an empty string removes a field. ``dst`` is
    written atomically (a temporary file beside it, then a rename), so ``src == dst`` works
    and a failure leaves ``dst`` as it was.

    Raises ``ValueError`` for a field name outside :data:`METADATA_FIELDS` (a programming
    error), :class:`~hatch_wasm_oci.errors.WasmOciError` for a value wasm-tools would reject
    (``licenses`` not an SPDX expression, ``source``/``homepage`` not an absolute URL) or when
    ``dst`` cannot be written, and :class:`~hatch_wasm_oci.errors.WasmFormatError` when
    ``src`` is not a well-formed Wasm binary.
    """
    unknown = sorted(set(fields) - set(EMBEDDABLE_FIELDS))
    if unknown:
        raise ValueError(
            f"unknown metadata field(s) {', '.join(unknown)}; "
            f"expected among {', '.join(EMBEDDABLE_FIELDS)}"
        )
    updates = {name: normalize_field(name, value) for name, value in fields.items()}
    for name, value in updates.items():
        section = len(encode_u32(len(name))) + len(name) + len(value.encode())
        if section > MAX_METADATA_SECTION:
            # What read_wasm (inspect, pack) would refuse is not written either.
            raise WasmOciError(
                f"metadata field {name!r} would be a {section}-byte custom section, over "
                f"the {MAX_METADATA_SECTION}-byte limit"
            )
    new_name = updates.pop("name", None)
    source_path = os.fspath(src)
    info, headers = read_wasm_sections(source_path)
    merged = {name: getattr(info.metadata, name) for name in METADATA_FIELDS}
    merged.update(updates)
    names_section = "name" if info.kind is WasmKind.MODULE else "component-name"
    pieces: list[tuple[int, int] | bytes] = [(0, 8)]
    for header in headers:
        if header.custom_name in METADATA_FIELDS:
            continue
        if new_name is not None and header.custom_name == names_section:
            pieces.append(_renamed(source_path, header, new_name))
            new_name = None
            continue
        last = pieces[-1]
        if isinstance(last, tuple) and last[1] == header.offset:
            pieces[-1] = (last[0], header.end)
        else:
            pieces.append((header.offset, header.end))
    if new_name:
        pieces.append(_custom_section_bytes(names_section, _name_subsection(new_name)))
    pieces.extend(
        _custom_section(name, value)
        for name in METADATA_FIELDS
        if (value := merged[name]) is not None and value != ""
    )
    _write_atomically(source_path, Path(os.fspath(dst)), pieces, info.size)


def _name_subsection(name: str) -> bytes:
    raw = name.encode()
    payload = encode_u32(len(raw)) + raw
    return b"\x00" + encode_u32(len(payload)) + payload


def _renamed(path: str, header: SectionHeader, new_name: str) -> bytes:
    """The name section at ``header`` with subsection 0 (the binary's own name) replaced.

    The other subsections are kept as they are; an empty ``new_name`` removes the name, and
    the whole section when nothing else is left in it.
    """
    with open(path, "rb") as fh:
        fh.seek(header.body_offset)
        body = fh.read(header.size)
    name_length, index = _leb(body, 0, path, header.body_offset)
    index += name_length
    kept = []
    while index < len(body):
        start = index
        sub_id = body[index]
        sub_size, index = _leb(body, index + 1, path, header.body_offset)
        index += sub_size
        if index > len(body):
            raise WasmFormatError(
                path, "name subsection overflows its section", header.body_offset + start
            )
        if sub_id != 0:
            kept.append(body[start:index])
    payload = (_name_subsection(new_name) if new_name else b"") + b"".join(kept)
    if not payload:
        return b""
    return _custom_section_bytes(header.custom_name or "name", payload)


def _leb(data: bytes, index: int, path: str, base: int) -> tuple[int, int]:
    try:
        return decode_unsigned(data, index)
    except LebError as exc:
        raise WasmFormatError(path, f"name section: {exc}", base + exc.index) from None


def normalize_field(name: str, value: str) -> str:
    """Check a field value as wasm-tools would and return it as wasm-tools stores it.

    URLs get the normalisation of the Rust ``url`` crate for the common cases (scheme and
    host lower-cased, ``/`` as the empty path of a special scheme); ``licenses`` is checked
    against the SPDX license list when :mod:`packaging` (>= 24.2) is installed. ``""`` is
    returned unchanged (it removes the field).
    """
    if not isinstance(value, str):
        raise TypeError(f"metadata field {name} must be a string, not {type(value).__name__}")
    if value == "":
        return value
    if "\x00" in value:
        raise WasmOciError(f"metadata {name} contains a NUL character")
    if name in ("source", "homepage"):
        return _normalize_url(name, value)
    if name == "licenses":
        _check_license(value)
    return value


def _normalize_url(name: str, value: str) -> str:
    match = _SCHEME.match(value.strip())
    if not match or any(c.isspace() for c in value.strip()):
        raise WasmOciError(f"metadata {name} {value!r} is not an absolute URL")
    scheme, rest = match.group(1).lower(), match.group(2)
    if scheme not in _SPECIAL_SCHEMES:
        return f"{scheme}:{rest}"
    if not rest.startswith("//"):
        raise WasmOciError(f"metadata {name} {value!r} is not an absolute URL")
    authority, slash, path = rest[2:].partition("/")
    if not authority and scheme != "file":
        raise WasmOciError(f"metadata {name} {value!r} has no host")
    for separator in ("?", "#"):
        if separator in authority:
            authority, _, after = authority.partition(separator)
            path = separator + after + slash + path
            slash = ""
    userinfo, at, host = authority.rpartition("@")
    return f"{scheme}://{userinfo}{at}{host.lower()}/{path if slash else path.lstrip('/')}"


def _check_license(value: str) -> None:
    try:
        from packaging.licenses import (  # type: ignore[import-not-found,unused-ignore]
            InvalidLicenseExpression,
            canonicalize_license_expression,
        )
    except ImportError:  # packaging < 24.2: leave the check to wasm-tools
        return
    try:
        canonicalize_license_expression(value)
    except InvalidLicenseExpression:
        raise WasmOciError(
            f"metadata licenses {value!r} is not a valid SPDX license expression"
        ) from None


def _custom_section(name: str, value: str) -> bytes:
    return _custom_section_bytes(name, value.encode())


def _custom_section_bytes(name: str, payload: bytes) -> bytes:
    raw_name = name.encode()
    body = encode_u32(len(raw_name)) + raw_name + payload
    return b"\x00" + encode_u32(len(body)) + body


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _write_atomically(
    src: str, dst: Path, pieces: list[tuple[int, int] | bytes], expected_size: int
) -> None:
    """Write ``dst`` from ``pieces``: byte ranges of ``src`` copied in chunks, or new bytes."""
    try:
        mode = dst.stat().st_mode & 0o7777
    except OSError:
        mode = 0o666 & ~_current_umask()
    try:
        with replacing(dst, mode, fsync=True) as out:
            try:
                source = open(src, "rb")  # noqa: SIM115 (closed below)
            except OSError as exc:
                raise WasmFormatError(src, f"cannot read: {exc.strerror or exc}") from None
            with source:
                for piece in pieces:
                    if isinstance(piece, bytes):
                        out.write(piece)
                    else:
                        _copy_range(source, out, piece[0], piece[1], src)
                if os.fstat(source.fileno()).st_size != expected_size:
                    raise WasmFormatError(src, "file changed while being copied")
    except OSError as exc:
        raise WasmOciError(f"cannot write {dst}: {exc.strerror or exc}") from None


def _copy_range(source: BinaryIO, out: BinaryIO, start: int, end: int, src: str) -> None:
    """Copy ``source[start:end]`` to ``out``; read errors are the source's, write errors not."""
    remaining = end - start
    while remaining:
        try:
            source.seek(end - remaining)
            chunk = source.read(min(_CHUNK, remaining))
        except OSError as exc:
            raise WasmFormatError(src, f"cannot read: {exc.strerror or exc}") from None
        if not chunk:
            raise WasmFormatError(src, "file changed while being copied (unexpected end)", end)
        out.write(chunk)
        remaining -= len(chunk)
