"""Mutated real binaries: read_wasm and embed_metadata return or raise WasmFormatError only."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hatch_wasm_oci.errors import WasmFormatError
from hatch_wasm_oci.wasm.binary import WasmInfo, WasmKind, read_wasm, section_headers
from hatch_wasm_oci.wasm.leb128 import encode_u32
from hatch_wasm_oci.wasm.metadata import embed_metadata

SMALL_FIXTURES = ["tiny_component", "wit_package", "core_module"]
Mutation = Callable[[bytearray], bytearray]


def _interesting_offsets(path: Path) -> list[int]:
    """Section headers and the first bytes of every section body: where framing lives."""
    _, headers = section_headers(path)
    offsets = {0, 4, 7, 8}
    for header in headers:
        offsets.update({header.offset, header.offset + 1, header.body_offset})
        offsets.update(range(header.body_offset, min(header.end, header.body_offset + 24)))
    return sorted(offsets)


@st.composite
def _mutations(draw: st.DrawFn, size: int, hot: list[int]) -> Mutation:
    """One mutation, at a random offset or one where the framing lives."""
    where = draw(st.one_of(st.integers(0, max(size - 1, 0)), st.sampled_from(hot)))
    kind = draw(st.sampled_from(["flip", "set", "truncate", "insert", "delete", "leb"]))
    if kind == "flip":
        bit = draw(st.integers(0, 7))

        def flip(data: bytearray) -> bytearray:
            if where < len(data):
                data[where] ^= 1 << bit
            return data

        return flip
    if kind == "set":
        value = draw(st.sampled_from([0x00, 0x01, 0x7F, 0x80, 0xFF, 0x0D, 0x41]))

        def set_byte(data: bytearray) -> bytearray:
            if where < len(data):
                data[where] = value
            return data

        return set_byte
    if kind == "truncate":
        return lambda data: data[:where]
    if kind == "insert":
        extra = draw(st.binary(min_size=1, max_size=8))
        return lambda data: data[:where] + bytearray(extra) + data[where:]
    if kind == "delete":
        count = draw(st.integers(1, 8))
        return lambda data: data[:where] + data[where + count :]
    # leb: replace the LEB128 at `where` with another value or an over-long encoding
    value = draw(st.one_of(st.integers(0, 2**32 - 1), st.integers(0, 300)))
    padding = draw(st.integers(0, 6))

    def leb(data: bytearray) -> bytearray:
        end = where
        while end < len(data) and end - where < 5 and data[end] & 0x80:
            end += 1
        encoded = bytearray(encode_u32(value))
        for _ in range(padding):  # redundant continuation bytes (may exceed 5 bytes)
            encoded[-1] |= 0x80
            encoded.append(0x00)
        return data[:where] + encoded + data[end + 1 :]

    return leb


def _check(path: Path) -> WasmInfo | None:
    try:
        info = read_wasm(path)
    except WasmFormatError as exc:
        message = str(exc)
        assert message.startswith(f"{path}: ")
        assert "\n" not in message
        assert exc.offset is None or 0 <= exc.offset <= path.stat().st_size
        return None
    assert isinstance(info.kind, WasmKind)
    assert all(isinstance(name, str) for name in info.imports + info.exports)
    # In the binary's order (as rust-oci-wasm lists them), each name once.
    assert len(set(info.imports)) == len(info.imports)
    assert len(set(info.exports)) == len(info.exports)
    assert info.size == path.stat().st_size
    return info


@pytest.mark.parametrize("fixture", SMALL_FIXTURES)
def test_mutated_small_binaries(fixture: str, request: pytest.FixtureRequest) -> None:
    source: Path = request.getfixturevalue(fixture)
    original = source.read_bytes()
    hot = _interesting_offsets(source)
    workdir = Path(tempfile.mkdtemp(prefix="wasm-fuzz-"))

    @settings(
        max_examples=250,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(st.lists(_mutations(len(original), hot), min_size=1, max_size=4))
    def run(mutations: list[Mutation]) -> None:
        data = bytearray(original)
        for mutate in mutations:
            data = mutate(data)
        path = workdir / "mutated.wasm"
        path.write_bytes(bytes(data))
        info = _check(path)
        out = workdir / "out.wasm"
        try:
            embed_metadata(path, out, {"version": "1.0.0"})
        except WasmFormatError:
            assert info is None, "embed_metadata refused what read_wasm accepted"
            assert not out.exists()
        else:
            assert info is not None, "embed_metadata accepted what read_wasm refused"
            written = read_wasm(out)
            assert written.metadata.version == "1.0.0"
            assert (written.imports, written.exports) == (info.imports, info.exports)
            out.unlink()

    try:
        run()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def test_mutated_componentize_py_component(cli_component: Path) -> None:
    """Patch an 18 MB component where its top-level framing lives (a fresh copy each time)."""
    hot = _interesting_offsets(cli_component)
    size = cli_component.stat().st_size
    workdir = Path(tempfile.mkdtemp(prefix="wasm-fuzz-big-"))
    path = workdir / "mutated.wasm"

    @settings(max_examples=40, deadline=None, database=None)
    @given(
        where=st.sampled_from(hot),
        value=st.integers(0, 255),
        cut=st.one_of(st.none(), st.sampled_from(hot)),
    )
    def run(where: int, value: int, cut: int | None) -> None:
        shutil.copyfile(cli_component, path)
        with path.open("r+b") as handle:
            handle.seek(where)
            handle.write(bytes([value]))
            if cut is not None:
                handle.truncate(cut)
        _check(path)
        assert path.stat().st_size == (size if cut is None else cut)

    try:
        run()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def test_fuzz_file_system_leftovers_are_cleaned(tmp_path: Path) -> None:
    # embed_metadata on garbage must not leave its temporary file beside the destination
    garbage = tmp_path / "garbage.wasm"
    garbage.write_bytes(b"\x00asm\x01\x00\x00\x00\x0b\xff" * 8)
    with pytest.raises(WasmFormatError):
        embed_metadata(garbage, tmp_path / "out.wasm", {"version": "1"})
    assert [p.name for p in tmp_path.iterdir()] == ["garbage.wasm"]
