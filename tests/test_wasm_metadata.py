"""embed_metadata checked with wasm-tools (metadata show, validate), read_wasm and wasmtime."""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

import pytest

from hatch_wasm_oci.errors import WasmFormatError, WasmOciError
from hatch_wasm_oci.wasm import metadata as wasm_metadata
from hatch_wasm_oci.wasm.binary import METADATA_FIELDS, read_wasm, section_headers
from hatch_wasm_oci.wasm.metadata import embed_metadata
from tests.wasm_fixtures import wasm_tools, wit_world

FIELDS = {
    "authors": "Ada Lovelace <ada@example.com>, Charles Babbage",
    "description": "Adds numbers — and ünïcode survives",
    "licenses": "Apache-2.0 WITH LLVM-exception OR MIT",
    "source": "https://github.com/acme/tiny",
    "homepage": "https://acme.example/tiny/",
    "revision": "9f2c1e0d",
    "version": "1.2.3+local.7",
}


def _shown(path: Path) -> dict[str, object]:
    shown = json.loads(wasm_tools("metadata", "show", "--json", path))
    top = next(iter(shown.values()))
    assert isinstance(top, dict)
    metadata = top.get("metadata", top)
    assert isinstance(metadata, dict)
    return metadata


def _copy(path: Path, tmp_path: Path, name: str = "in.wasm") -> Path:
    copy = tmp_path / name
    shutil.copyfile(path, copy)
    copy.chmod(0o644)
    return copy


def _custom_names(path: Path) -> list[str]:
    _, headers = section_headers(path)
    return [h.custom_name for h in headers if h.custom_name is not None]


@pytest.mark.parametrize("fixture", ["tiny_component", "core_module", "wit_package"])
def test_fields_read_back_with_wasm_tools(
    fixture: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    source: Path = request.getfixturevalue(fixture)
    out = tmp_path / "out.wasm"
    embed_metadata(source, out, FIELDS)
    wasm_tools("validate", out)
    shown = _shown(out)
    for name, value in FIELDS.items():
        assert shown[name] == value, name
        assert getattr(read_wasm(out).metadata, name) == value, name
    before, after = read_wasm(source), read_wasm(out)
    assert (after.kind, after.imports, after.exports) == (
        before.kind,
        before.imports,
        before.exports,
    )
    assert after.metadata.producers == before.metadata.producers
    # wasm-tools' placement: the fields last, in their canonical order
    assert _custom_names(out)[-len(METADATA_FIELDS) :] == list(METADATA_FIELDS)


def test_module_output_is_byte_identical_to_wasm_tools(core_module: Path, tmp_path: Path) -> None:
    mine = tmp_path / "mine.wasm"
    theirs = tmp_path / "theirs.wasm"
    embed_metadata(core_module, mine, FIELDS)
    args = [arg for name, value in FIELDS.items() for arg in (f"--{name}", value)]
    wasm_tools("metadata", "add", core_module, *args, "-o", theirs)
    assert mine.read_bytes() == theirs.read_bytes()


def test_only_the_metadata_changes(tiny_component: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.wasm"
    embed_metadata(tiny_component, out, {"version": "0.1.0"})
    original = tiny_component.read_bytes()
    written = out.read_bytes()
    assert written.startswith(original)
    assert written[len(original) :] == b"\x00\x0d\x07version0.1.0"
    assert wit_world(out) == wit_world(tiny_component)


def test_replacing_values_in_place(tiny_component: Path, tmp_path: Path) -> None:
    path = _copy(tiny_component, tmp_path)
    embed_metadata(path, path, FIELDS)
    embed_metadata(path, path, {"version": "2.0.0", "description": "second"})
    shown = _shown(path)
    assert shown["version"] == "2.0.0"
    assert shown["description"] == "second"
    assert shown["authors"] == FIELDS["authors"]  # untouched fields stay
    names = _custom_names(path)
    assert names.count("version") == 1
    assert names.count("description") == 1
    wasm_tools("validate", path)
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_replacing_sections_wasm_tools_wrote(tiny_component: Path, tmp_path: Path) -> None:
    tagged = tmp_path / "tagged.wasm"
    wasm_tools(
        "metadata", "add", tiny_component, "--version", "0.0.1", "--authors", "x", "-o", tagged
    )
    out = tmp_path / "out.wasm"
    embed_metadata(tagged, out, {"version": "0.0.2"})
    shown = _shown(out)
    assert (shown["version"], shown["authors"]) == ("0.0.2", "x")
    assert _custom_names(out).count("version") == 1


def test_empty_value_removes_a_field(tiny_component: Path, tmp_path: Path) -> None:
    path = _copy(tiny_component, tmp_path)
    embed_metadata(path, path, {"version": "1.0.0", "revision": "abc"})
    embed_metadata(path, path, {"version": ""})
    shown = _shown(path)
    assert shown["version"] is None
    assert shown["revision"] == "abc"
    assert "version" not in _custom_names(path)


def test_urls_are_stored_as_wasm_tools_stores_them(tiny_component: Path, tmp_path: Path) -> None:
    urls = {"source": "HTTPS://Example.COM", "homepage": "https://example.com?x=1"}
    mine = tmp_path / "mine.wasm"
    theirs = tmp_path / "theirs.wasm"
    embed_metadata(tiny_component, mine, urls)
    wasm_tools("metadata", "add", tiny_component, "--source", urls["source"],
               "--homepage", urls["homepage"], "-o", theirs)  # fmt: skip
    meta = read_wasm(mine).metadata
    assert (meta.source, meta.homepage) == ("https://example.com/", "https://example.com/?x=1")
    shown = _shown(theirs)
    assert (meta.source, meta.homepage) == (shown["source"], shown["homepage"])


def test_component_still_runs_in_wasmtime(tiny_component: Path, tmp_path: Path) -> None:
    from wasmtime import Engine, Store
    from wasmtime.component import Component, Linker

    out = tmp_path / "out.wasm"
    embed_metadata(tiny_component, out, FIELDS)
    engine = Engine()
    store = Store(engine)
    linker = Linker(engine)
    with linker.root() as root, root.add_instance("acme:tiny/host@0.1.0") as host:
        host.add_func("factor", lambda _store: 7)
    instance = linker.instantiate(store, Component.from_file(engine, str(out)))
    add = instance.get_func(store, "add")
    assert add is not None
    assert add(store, 2, 40) == 42
    math = instance.get_export_index(store, "acme:tiny/math@0.1.0")
    assert math is not None
    scale_index = instance.get_export_index(store, "scale", math)
    assert scale_index is not None
    scale = instance.get_func(store, scale_index)
    assert scale is not None
    assert scale(store, 6) == 42


def test_large_componentize_py_component(calc_component: Path, tmp_path: Path) -> None:
    import tracemalloc

    out = tmp_path / "calc.wasm"
    tracemalloc.start()
    embed_metadata(calc_component, out, FIELDS)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 4 * 1024 * 1024, f"embed_metadata allocated {peak} bytes"
    assert _shown(out)["version"] == FIELDS["version"]
    assert wit_world(out) == wit_world(calc_component)
    wasm_tools("validate", out)


def test_unknown_field_is_a_programming_error(tiny_component: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown metadata field.*colour"):
        embed_metadata(tiny_component, tmp_path / "out.wasm", {"colour": "red"})
    assert not (tmp_path / "out.wasm").exists()


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("licenses", "not a license", "SPDX"),
        ("source", "github.com/acme/tiny", "absolute URL"),
        ("homepage", "https://", "no host"),
        ("homepage", "https://exa mple.com", "absolute URL"),
        ("authors", "a\x00b", "NUL"),
    ],
)
def test_values_wasm_tools_would_reject(
    tiny_component: Path, tmp_path: Path, name: str, value: str, fragment: str
) -> None:
    result = wasm_tools_rejects(name, value, tiny_component, tmp_path)
    with pytest.raises(WasmOciError, match=fragment) as caught:
        embed_metadata(tiny_component, tmp_path / "out.wasm", {name: value})
    assert not isinstance(caught.value, WasmFormatError)
    assert not (tmp_path / "out.wasm").exists()
    assert result  # the oracle refused it too


def wasm_tools_rejects(name: str, value: str, source: Path, tmp_path: Path) -> bool:
    from tests.wasm_fixtures import wasm_tools_run

    if "\x00" in value:
        return True  # cannot be passed on a command line at all
    result = wasm_tools_run("metadata", "add", source, f"--{name}", value, "-o", tmp_path / "x")
    return result.returncode != 0


def test_invalid_source_leaves_destination_alone(tmp_path: Path) -> None:
    src = tmp_path / "bad.wasm"
    src.write_bytes(b"\x00asm\x01\x00\x00\x00\x00\x10")  # section overflows
    dst = tmp_path / "dst.wasm"
    dst.write_bytes(b"previous")
    with pytest.raises(WasmFormatError, match="overflows") as caught:
        embed_metadata(src, dst, {"version": "1"})
    assert caught.value.offset == 8
    assert dst.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.wasm", "dst.wasm"]


def test_missing_source(tmp_path: Path) -> None:
    with pytest.raises(WasmFormatError, match="no such file"):
        embed_metadata(tmp_path / "missing.wasm", tmp_path / "out.wasm", {"version": "1"})


def test_unwritable_destination(tiny_component: Path, tmp_path: Path) -> None:
    with pytest.raises(WasmOciError, match=r"cannot write .*out\.wasm"):
        embed_metadata(tiny_component, tmp_path / "no-such-dir" / "out.wasm", {"version": "1"})


def test_failure_while_writing_leaves_nothing_half_written(
    tiny_component: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A disk filling up mid-copy cannot be produced on demand: simulate the failing write.
    dst = _copy(tiny_component, tmp_path, "dst.wasm")
    before = dst.read_bytes()
    calls = 0
    real_copy = wasm_metadata._copy_range

    def failing_copy(*args: object) -> None:
        nonlocal calls
        calls += 1
        real_copy(*args)  # type: ignore[arg-type]
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(wasm_metadata, "_copy_range", failing_copy)
    with pytest.raises(WasmOciError, match=r"cannot write .*: No space left on device$"):
        embed_metadata(dst, dst, {"version": "9"})
    assert calls == 1
    assert dst.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["dst.wasm"]


def test_new_file_mode_follows_umask_and_existing_mode_is_kept(
    tiny_component: Path, tmp_path: Path
) -> None:
    fresh = tmp_path / "fresh.wasm"
    embed_metadata(tiny_component, fresh, {"version": "1"})
    mask = wasm_metadata._current_umask()
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o666 & ~mask
    existing = _copy(tiny_component, tmp_path, "existing.wasm")
    existing.chmod(0o640)
    embed_metadata(existing, existing, {"version": "1"})
    assert stat.S_IMODE(existing.stat().st_mode) == 0o640


NAMED_COMPONENT_WAT = """
(component $original
  (core module $m (func $f (export "f")))
  (core instance $i (instantiate $m))
  (core func $cf (alias core export $i "f"))
  (func $g (canon lift (core func $cf)))
  (export "g" (func $g)))
"""


@pytest.mark.parametrize(
    "fixture", ["tiny_component", "core_module", "named_component", "calc_component"]
)
def test_name_is_written_as_wasm_tools_writes_it(
    fixture: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if fixture == "named_component":  # has a component-name section with sort names
        source = tmp_path / "named.wasm"
        (tmp_path / "named.wat").write_text(NAMED_COMPONENT_WAT)
        wasm_tools("parse", tmp_path / "named.wat", "-o", source)
    else:
        source = request.getfixturevalue(fixture)
    ours, theirs = tmp_path / "ours.wasm", tmp_path / "theirs.wasm"
    embed_metadata(source, ours, {"name": "example-inventory", "version": "0.1.0"})
    wasm_tools("metadata", "add", "--name", "example-inventory", "--version", "0.1.0",
               source, "-o", theirs)  # fmt: skip
    assert ours.read_bytes() == theirs.read_bytes()
    assert _shown(ours)["name"] == "example-inventory"
    assert read_wasm(ours).metadata.name == "example-inventory"
    if fixture == "named_component":  # the other names survive
        assert "(func $g" in wasm_tools("print", ours)

    # Renaming again replaces the name where it stands; "" removes it.
    embed_metadata(ours, ours, {"name": "again"})
    assert read_wasm(ours).metadata.name == "again"
    section = "name" if fixture == "core_module" else "component-name"
    assert _custom_names(ours).count(section) == 1
    embed_metadata(ours, ours, {"name": ""})
    assert read_wasm(ours).metadata.name is None
    assert _shown(ours)["name"] is None
    wasm_tools("validate", ours)
