"""read_wasm against real binaries, with wasm-tools as the oracle, and against bad input."""

from __future__ import annotations

import os
import re
import time
import zipfile
from pathlib import Path

import pytest

from hatch_wasm_oci.errors import WasmFormatError
from hatch_wasm_oci.wasm.binary import WasmKind, WasmMetadata, read_wasm, section_headers
from hatch_wasm_oci.wasm.leb128 import encode_u32
from tests.wasm_fixtures import printed_names, wasm_tools, wasm_tools_run, wit_world

COMPONENT_FIXTURES = ["calc_component", "cli_component", "http_component", "tiny_component"]


@pytest.mark.parametrize("fixture", COMPONENT_FIXTURES)
def test_component_names_match_wasm_tools(fixture: str, request: pytest.FixtureRequest) -> None:
    path: Path = request.getfixturevalue(fixture)
    info = read_wasm(path)
    imports, exports = wit_world(path)
    assert info.kind is WasmKind.COMPONENT
    assert info.os == "wasip2"
    assert set(info.imports) == imports
    assert set(info.exports) == exports
    # Binary order, as rust-oci-wasm lists them (wasm-tools print shows the binary's order).
    assert (list(info.imports), list(info.exports)) == printed_names(path)
    assert info.size == path.stat().st_size
    assert info.path == str(path)


def test_wit_package_lists_worlds_and_interfaces(wit_package: Path) -> None:
    info = read_wasm(wit_package)
    imports, exports = wit_world(wit_package)
    assert info.kind is WasmKind.WIT_PACKAGE
    assert info.os == "wasip2"
    assert info.imports == ()
    assert imports == set()
    # The package's worlds and interfaces, and after each world what it exports that is not
    # one of them (rust-oci-wasm's from_package adds the world's exports: here `greet`).
    assert set(info.exports) == exports | {"greet"}
    assert info.exports == (
        "acme:calc/types@1.2.0",
        "acme:calc/logging@1.2.0",
        "acme:calc/ops@1.2.0",
        "acme:calc/calculator@1.2.0",
        "greet",
        "acme:calc/client@1.2.0",
    )


def test_component_is_not_taken_for_a_wit_package(tiny_component: Path) -> None:
    # The WIT package a component carries (`component wit --wasm` of it) is a WIT package;
    # the component itself is not.
    assert read_wasm(tiny_component).kind is WasmKind.COMPONENT


def test_core_module_imports_and_exports(core_module: Path) -> None:
    info = read_wasm(core_module)
    text = wasm_tools("print", core_module)
    imports = {f"{m}/{n}" for m, n in re.findall(r'\(import "([^"]*)" "([^"]*)"', text)}
    exports = set(re.findall(r'\(export "([^"]*)"', text))
    assert info.kind is WasmKind.MODULE
    assert info.os == "wasip1"
    assert set(info.imports) == imports == {"wasi_snapshot_preview1/fd_write", "env/log"}
    assert set(info.exports) == exports == {"memory", "answer", "_start", "add"}


def _producers(shown: dict[str, object]) -> dict[str, dict[str, str]]:
    pairs = shown["producers"] or []
    assert isinstance(pairs, list)
    return {field: dict(values) for field, values in pairs}


@pytest.mark.parametrize("fixture", ["tiny_component", "core_module", "wit_package"])
def test_metadata_matches_wasm_tools(
    fixture: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    import json

    source: Path = request.getfixturevalue(fixture)
    out = tmp_path / "with-metadata.wasm"
    wasm_tools(
        "metadata", "add", source, "-o", out,
        "--name", "tiny-thing",
        "--authors", "Ada <ada@example.com>",
        "--description", "Adds numbers — ünïcode ok",
        "--licenses", "Apache-2.0 OR MIT",
        "--source", "https://example.com/src",
        "--homepage", "https://example.com/",
        "--revision", "0123abc",
        "--version", "1.2.3",
        "--language", "Python=3.13",
        "--sdk", "componentize-py=0.25.1",
    )  # fmt: skip
    info = read_wasm(out)
    shown = json.loads(wasm_tools("metadata", "show", "--json", out))
    top = next(iter(shown.values()))
    top = top.get("metadata", top)
    meta = info.metadata
    for name in ("name", "authors", "description", "licenses", "source", "homepage"):
        assert getattr(meta, name) == top[name], name
    assert (meta.revision, meta.version) == (top["revision"], top["version"])
    assert meta.name == "tiny-thing"
    assert meta.source == "https://example.com/src"
    assert meta.producers == _producers(top)
    assert meta.producers["language"] == {"Python": "3.13"}


def test_no_metadata_reads_as_none(core_module: Path) -> None:
    meta = read_wasm(core_module).metadata
    assert meta == WasmMetadata()  # every field None, no producers


def test_componentize_py_producers(calc_component: Path) -> None:
    import json

    shown = json.loads(wasm_tools("metadata", "show", "--json", calc_component))
    producers = read_wasm(calc_component).metadata.producers
    assert producers == _producers(shown["component"]["metadata"])
    assert "wit-component" in producers["processed-by"]


# -- hand-made binaries --------------------------------------------------------------------------

MODULE = b"\x00asm\x01\x00\x00\x00"
COMPONENT = b"\x00asm\x0d\x00\x01\x00"


def _name(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return encode_u32(len(raw)) + raw


def _section(section_id: int, body: bytes) -> bytes:
    return bytes([section_id]) + encode_u32(len(body)) + body


def _custom(name: str | bytes, payload: bytes) -> bytes:
    return _section(0, _name(name) + payload)


def _func_import(name_bytes: bytes) -> bytes:
    """A component import section with one ``(import <name> (func (type 0)))``."""
    return _section(10, b"\x01" + name_bytes + b"\x01\x00")


def test_canonical_interface_name_with_version_suffix(tmp_path: Path) -> None:
    # importname' 0x01 with a canonical name (`@0.2`) is followed by the version suffix.
    path = tmp_path / "canonical.wasm"
    path.write_bytes(COMPONENT + _func_import(b"\x01" + _name("a:b/c@0.2") + _name(".6")))
    assert read_wasm(path).imports == ("a:b/c@0.2.6",)


def test_legacy_interface_discriminant(tmp_path: Path) -> None:
    # Before 2024 encoders wrote 0x01 before interface names, with no suffix.
    path = tmp_path / "legacy.wasm"
    path.write_bytes(COMPONENT + _func_import(b"\x01" + _name("wasi:io/poll@0.2.0")))
    assert read_wasm(path).imports == ("wasi:io/poll@0.2.0",)


def test_duplicate_names_are_listed_once(tmp_path: Path) -> None:
    path = tmp_path / "dup.wasm"
    entry = b"\x00" + _name("b:c/d@1.0.0") + b"\x01\x00"
    path.write_bytes(COMPONENT + _section(10, b"\x02" + entry + entry))
    assert read_wasm(path).imports == ("b:c/d@1.0.0",)


def test_wit_package_v1_encoding(tmp_path: Path) -> None:
    # The older encoding: one export `ns:pkg/wit` of a component type declaring every
    # interface and world of the package by qualified name.
    decls = (
        b"\x01\x42\x00"  # (type (instance))
        + b"\x04\x00" + _name("a:b/i@1.0.0") + b"\x04\x00"  # (export "a:b/i@1.0.0" (instance 0))
        + b"\x04\x00" + _name("a:b/w@1.0.0") + b"\x05\x00"  # (export "a:b/w@1.0.0" (component 0))
    )  # fmt: skip
    types = _section(7, b"\x01\x41\x03" + decls)
    exports = _section(11, b"\x01\x00" + _name("a:b/wit") + b"\x03\x00\x00")
    path = _file(tmp_path, COMPONENT + types + exports, "v1.wasm")
    info = read_wasm(path)
    assert info.kind is WasmKind.WIT_PACKAGE
    assert info.exports == ("a:b/i@1.0.0", "a:b/w@1.0.0")


def test_component_exporting_a_value_type_is_not_a_wit_package(tmp_path: Path) -> None:
    types = _section(7, b"\x01\x72\x01" + _name("x") + b"\x79")  # (type (record (field "x" u32)))
    exports = _section(11, b"\x01\x00" + _name("point") + b"\x03\x00\x00")
    info = read_wasm(_file(tmp_path, COMPONENT + types + exports, "record.wasm"))
    assert info.kind is WasmKind.COMPONENT
    assert info.exports == ("point",)


def _file(tmp_path: Path, data: bytes, name: str = "bad.wasm") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _zip(tmp_path: Path) -> Path:
    path = tmp_path / "bad.wasm"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("module.wasm", MODULE)
    return path


BAD_INPUTS: list[tuple[str, object, str, int | None]] = [
    # (id, bytes or maker, message fragment, offset)
    ("empty", b"", "empty file", None),
    ("text", b"hello, world\n", "bad magic", None),
    ("wat", b"(module)\n", "WebAssembly text", None),
    ("wit", b"package a:b;\n", "WIT text", None),
    ("zip", _zip, "zip archive", None),
    ("magic-only", b"\x00asm", "truncated preamble", 4),
    ("half-magic", b"\x00as", "truncated magic", None),
    ("unknown-version", b"\x00asm\x02\x00\x00\x00", "unsupported WebAssembly version 2", 4),
    ("old-component", b"\x00asm\x0c\x00\x01\x00", "component binary version 0x0c", 4),
    ("unknown-layer", b"\x00asm\x01\x00\x07\x00", "unknown WebAssembly layer 7", 6),
    ("section-overflow", MODULE + b"\x00\x10\x03abc", "overflows the file", 8),
    ("truncated-header", MODULE + b"\x00\x80", "truncated section header", 8),
    ("overlong-leb", MODULE + b"\x00\x80\x80\x80\x80\x80\x00", "longer than 5 bytes", 9),
    ("leb-too-big", MODULE + b"\x00\xff\xff\xff\xff\x7f", "does not fit in u32", 9),
    ("unknown-module-section", MODULE + b"\x0e\x00", "unknown module section id 14", 8),
    ("unknown-component-section", COMPONENT + b"\x0c\x00", "unknown component section id 12", 8),
    ("trailing-garbage", MODULE + _custom("x", b"") + b"garbage", "section id 103", 12),
    ("bad-utf8-import", COMPONENT + _func_import(b"\x00" + _name(b"\xff\xfe")), "UTF-8", 12),
    ("bad-utf8-custom-name", MODULE + _custom(b"\xc3\x28", b""), "UTF-8", 10),
    ("bad-utf8-metadata", MODULE + _custom("authors", b"\xff"), "UTF-8", 18),
    (
        "import-name-overflows-section",
        COMPONENT + _section(10, b"\x01\x00\x10ab"),
        "truncated",
        13,
    ),
    ("trailing-bytes-in-section", COMPONENT + _section(10, b"\x00\x00"), "trailing bytes", 11),
    ("bad-name-discriminant", COMPONENT + _func_import(b"\x07" + _name("x")), "discriminant", 11),
    ("bad-producers", MODULE + _custom("producers", b"\x01\x08language\x05"), "truncated", 31),
]


@pytest.mark.parametrize(
    ("data", "fragment", "offset"),
    [pytest.param(*case[1:], id=case[0]) for case in BAD_INPUTS],
)
def test_bad_input(tmp_path: Path, data: object, fragment: str, offset: int | None) -> None:
    path = data(tmp_path) if callable(data) else _file(tmp_path, data)  # type: ignore[arg-type]
    with pytest.raises(WasmFormatError) as caught:
        read_wasm(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: "), message
    assert fragment in message
    assert caught.value.offset == offset, message
    if offset is not None:
        assert message.endswith(f" at byte {offset}")
    assert "\n" not in message


def test_truncated_component_names_overflowing_section(
    tiny_component: Path, tmp_path: Path
) -> None:
    _, headers = section_headers(tiny_component)
    data = tiny_component.read_bytes()
    for header in headers:
        if header.size < 2:
            continue
        cut = header.body_offset + header.size // 2
        path = _file(tmp_path, data[:cut], f"cut-{cut}.wasm")
        with pytest.raises(WasmFormatError, match="overflows the file") as caught:
            read_wasm(path)
        assert caught.value.offset == header.offset


def test_half_a_componentize_py_component(cli_component: Path, tmp_path: Path) -> None:
    size = cli_component.stat().st_size
    half = tmp_path / "half.wasm"
    with cli_component.open("rb") as src, half.open("wb") as dst:
        dst.write(src.read(size // 2))
    with pytest.raises(WasmFormatError, match="overflows the file"):
        read_wasm(half)
    assert wasm_tools_run("validate", half).returncode != 0  # wasm-tools agrees


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(WasmFormatError, match="is a directory") as caught:
        read_wasm(tmp_path)
    assert str(caught.value).startswith(str(tmp_path))


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.wasm"
    with pytest.raises(WasmFormatError, match=r"nope\.wasm: no such file$"):
        read_wasm(missing)
    with pytest.raises(WasmFormatError, match="no such file"):
        read_wasm(tmp_path / "nope.wasm" / "below.wasm")


def test_not_a_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.wasm"
    os.mkfifo(fifo)  # opening it would block: must be refused before open()
    with pytest.raises(WasmFormatError, match="not a regular file"):
        read_wasm(fifo)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_permission_denied(tmp_path: Path, tiny_component: Path) -> None:
    locked = _file(tmp_path, tiny_component.read_bytes())
    locked.chmod(0)
    with pytest.raises(WasmFormatError, match="permission denied"):
        read_wasm(locked)


# -- seeking, not reading ------------------------------------------------------------------------


def _sparse_component(path: Path, nested_size: int) -> None:
    """A component whose first section claims ``nested_size`` bytes of core module (a hole)."""
    export = _section(11, b"\x01\x00" + _name("run") + b"\x01\x00\x00")
    with path.open("wb") as out:
        out.write(COMPONENT + b"\x01" + encode_u32(nested_size))
        out.seek(nested_size, os.SEEK_CUR)
        out.write(export + _custom("version", b"9.9.9"))


def test_large_file_is_read_by_seeking(tmp_path: Path) -> None:
    import tracemalloc

    path = tmp_path / "big.wasm"
    _sparse_component(path, 256 * 1024 * 1024)
    tracemalloc.start()
    started = time.perf_counter()
    info = read_wasm(path)
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert info.exports == ("run",)
    assert info.metadata.version == "9.9.9"
    assert info.size > 256 * 1024 * 1024
    assert peak < 1024 * 1024, f"read_wasm allocated {peak} bytes"
    assert elapsed < 1.0


def test_componentize_py_component_read_with_little_memory(cli_component: Path) -> None:
    import tracemalloc

    tracemalloc.start()
    read_wasm(cli_component)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 1024 * 1024, f"read_wasm allocated {peak} bytes for an 18 MB component"
