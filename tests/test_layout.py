"""The layout writer and verifier, checked with skopeo, wasm-tools and wasmtime."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from hatch_wasm_oci.errors import LayoutError, WasmOciError
from hatch_wasm_oci.oci import config as oci_config
from hatch_wasm_oci.oci.layout import LayoutWriter, pack
from hatch_wasm_oci.oci.layout_reader import OciLayout, find_layouts
from tests.padding import append_custom_section
from tests.wasm_fixtures import printed_names, wit_world

EPOCH = "1700000000"


@pytest.fixture(autouse=True)
def _epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)


def skopeo_raw(ref: str) -> bytes:
    return subprocess.run(
        ["skopeo", "inspect", "--raw", ref], check=True, capture_output=True
    ).stdout


def test_pack_writes_a_spec_layout_that_skopeo_reads(tiny_component: Path, tmp_path: Path) -> None:
    out = tmp_path / "layout"
    result = pack(
        tiny_component,
        out,
        tags=["1.0.0", "latest"],
        annotations={"org.opencontainers.image.title": "tiny"},
        target="example:tiny/adder@0.1.0",
    )
    layout = OciLayout.open(out)
    layout.verify()
    assert json.loads((out / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    assert sorted(layout.tags()) == ["1.0.0", "latest"]
    manifest_blob = (out / "blobs/sha256" / result.manifest.digest.split(":")[1]).read_bytes()
    for tag in ("1.0.0", "latest"):
        assert skopeo_raw(f"oci:{out}:{tag}") == manifest_blob

    manifest = json.loads(manifest_blob)
    assert manifest["schemaVersion"] == 2
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert "artifactType" not in manifest
    assert manifest["config"]["mediaType"] == "application/vnd.wasm.config.v0+json"
    assert [layer["mediaType"] for layer in manifest["layers"]] == ["application/wasm"]
    assert manifest["layers"][0]["annotations"] == {
        "org.opencontainers.image.title": tiny_component.name
    }
    assert manifest["annotations"]["org.opencontainers.image.created"] == "2023-11-14T22:13:20Z"
    assert manifest["annotations"]["org.opencontainers.image.title"] == "tiny"

    layer_blob = layout.blob_path(result.layer.digest).read_bytes()
    assert layer_blob == tiny_component.read_bytes()

    config = layout.config("latest")
    imports, exports = printed_names(tiny_component)
    assert (set(imports), set(exports)) == wit_world(tiny_component)
    assert config == {
        "architecture": "wasm",
        "os": "wasip2",
        "created": "2023-11-14T22:13:20Z",
        "layerDigests": [result.layer.digest],
        "component": {
            "imports": imports,
            "exports": exports,
            "target": "example:tiny/adder@0.1.0",
        },
    }
    # Compact JSON with sorted keys: the serialisation is part of the digest.
    assert layout.read_document(result.config) == oci_config.canonical_json(config)


def test_skopeo_copies_the_layout(tiny_component: Path, tmp_path: Path) -> None:
    out = tmp_path / "layout"
    result = pack(tiny_component, out, tags=["v1"])
    copy = tmp_path / "copy"
    subprocess.run(
        ["skopeo", "copy", "--quiet", f"oci:{out}:v1", f"oci:{copy}:v1"],
        check=True,
        capture_output=True,
    )
    copied = OciLayout.open(copy)
    copied.verify()
    assert copied.tags()["v1"].digest == result.manifest.digest
    assert copied.blob_path(result.layer.digest).read_bytes() == tiny_component.read_bytes()


def test_core_module_is_wasip1_without_component(core_module: Path, tmp_path: Path) -> None:
    result = pack(core_module, tmp_path / "m", tags=["m"])
    config = OciLayout.open(result.layout).config("m")
    assert config["os"] == "wasip1"
    assert "component" not in config
    OciLayout.open(result.layout).verify()


def test_wit_package_lists_its_worlds_and_interfaces(wit_package: Path, tmp_path: Path) -> None:
    result = pack(wit_package, tmp_path / "w", tags=["w"])
    config = OciLayout.open(result.layout).config("w")
    assert config["os"] == "wasip2"
    assert config["component"]["imports"] == []
    _, exports = wit_world(wit_package)  # the package's worlds and interfaces
    assert exports
    assert set(config["component"]["exports"]) == exports | {"greet"}  # calculator's bare func


def test_equal_inputs_give_byte_identical_layouts_and_tars(
    tiny_component: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = pack(tiny_component, tmp_path / "a" / "out", tags=["1"], tar=True)
    second = pack(tiny_component, tmp_path / "b" / "out", tags=["1"], tar=True)
    assert first.manifest == second.manifest
    assert first.config == second.config
    files_a = sorted(p.relative_to(first.layout) for p in first.layout.rglob("*"))
    files_b = sorted(p.relative_to(second.layout) for p in second.layout.rglob("*"))
    assert files_a == files_b
    for rel in files_a:
        if (first.layout / rel).is_file():
            assert (first.layout / rel).read_bytes() == (second.layout / rel).read_bytes()
    assert first.tar and second.tar
    assert first.tar.read_bytes() == second.tar.read_bytes()

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000001")
    third = pack(tiny_component, tmp_path / "c" / "out", tags=["1"])
    assert third.manifest.digest != first.manifest.digest
    assert third.layer.digest == first.layer.digest


def test_tar_is_an_oci_archive(tiny_component: Path, tmp_path: Path) -> None:
    result = pack(tiny_component, tmp_path / "t" / "name-1.0", tags=["1.0"], tar=True)
    assert result.tar == tmp_path / "t" / "name-1.0.tar"
    manifest_blob = OciLayout.open(result.layout).manifest_bytes("1.0")
    assert skopeo_raw(f"oci-archive:{result.tar}:1.0") == manifest_blob
    with tarfile.open(result.tar) as archive:
        names = archive.getnames()
        assert "oci-layout" in names and "index.json" in names
        assert all(m.mtime == int(EPOCH) and m.uid == 0 for m in archive.getmembers())


def test_adding_tags_keeps_the_other_entries(
    tiny_component: Path, core_module: Path, tmp_path: Path
) -> None:
    out = tmp_path / "layout"
    first = pack(tiny_component, out, tags=["a", "b"])
    second = pack(core_module, out, tags=["b", "c"])
    layout = OciLayout.open(out)
    layout.verify()
    tags = {tag: d.digest for tag, d in layout.tags().items()}
    assert tags == {
        "a": first.manifest.digest,
        "b": second.manifest.digest,
        "c": second.manifest.digest,
    }
    index = json.loads((out / "index.json").read_text())
    assert len(index["manifests"]) == 3
    assert not [p for p in out.rglob(".*")]


def test_layer_runs_in_wasmtime(tiny_component: Path, tmp_path: Path) -> None:
    from wasmtime import Engine, Store
    from wasmtime.component import Component, Linker

    result = pack(tiny_component, tmp_path / "layout", tags=["x"])
    layer = OciLayout.open(result.layout).blob_path(result.layer.digest)
    engine = Engine()
    store = Store(engine)
    component = Component.from_file(engine, str(layer))
    linker = Linker(engine)
    with linker.root() as root, root.add_instance("acme:tiny/host@0.1.0") as host:
        host.add_func("factor", lambda _store: 7)
    instance = linker.instantiate(store, component)
    add = instance.get_func(store, "add")
    assert add is not None
    assert add(store, 40, 2) == 42


def test_find_layouts(tiny_component: Path, tmp_path: Path) -> None:
    pack(tiny_component, tmp_path / "dist" / "wasm-oci" / "one", tags=["1"])
    pack(tiny_component, tmp_path / "dist" / "wasm-oci" / "two", tags=["2"])
    (tmp_path / "dist" / "pkg-1.0-py3-none-any.whl").write_bytes(b"PK")
    assert find_layouts(tmp_path / "dist") == [
        tmp_path / "dist" / "wasm-oci" / "one",
        tmp_path / "dist" / "wasm-oci" / "two",
    ]


def test_verify_names_each_problem(tiny_component: Path, tmp_path: Path) -> None:
    def fresh(name: str) -> tuple[OciLayout, object]:
        result = pack(tiny_component, tmp_path / name, tags=["t"])
        return OciLayout.open(result.layout), result

    layout, result = fresh("flipped")
    layer = layout.blob_path(result.layer.digest)  # type: ignore[attr-defined]
    data = bytearray(layer.read_bytes())
    data[-1] ^= 0xFF
    layer.write_bytes(bytes(data))
    with pytest.raises(LayoutError, match=r"layer blob sha256:[0-9a-f]{64} does not match"):
        layout.verify()

    layout, result = fresh("truncated")
    layer = layout.blob_path(result.layer.digest)  # type: ignore[attr-defined]
    layer.write_bytes(layer.read_bytes()[:-3])
    with pytest.raises(LayoutError, match="bytes, descriptor says"):
        layout.verify()

    layout, result = fresh("noconfig")
    layout.blob_path(result.config.digest).unlink()  # type: ignore[attr-defined]
    with pytest.raises(LayoutError, match="is missing"):
        layout.verify()

    layout, result = fresh("badtag")
    index = json.loads((layout.path / "index.json").read_text())
    index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] = "-bad"
    (layout.path / "index.json").write_text(json.dumps(index))
    with pytest.raises(LayoutError, match="breaks the OCI tag grammar"):
        OciLayout.open(layout.path).verify()

    with pytest.raises(LayoutError, match="not an OCI image layout"):
        OciLayout.open(tmp_path)
    with pytest.raises(LayoutError, match="does not exist"):
        OciLayout.open(tmp_path / "nope")


def test_invalid_tag_writes_nothing(tiny_component: Path, tmp_path: Path) -> None:
    with pytest.raises(WasmOciError, match="invalid OCI tag"):
        pack(tiny_component, tmp_path / "out", tags=["1.0+local"])
    assert list(tmp_path.iterdir()) == []


def test_failure_mid_write_leaves_nothing(
    tiny_component: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A disk that fills up mid-blob cannot be produced on demand: fault-inject the config write.
    def fail(self: LayoutWriter, data: bytes) -> tuple[str, int]:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(LayoutWriter, "add_blob", fail)
    with pytest.raises(LayoutError, match="cannot write: No space left on device"):
        pack(tiny_component, tmp_path / "new", tags=["1"])
    assert list(tmp_path.iterdir()) == []

    monkeypatch.undo()
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    existing = pack(tiny_component, tmp_path / "existing", tags=["1"])
    before = sorted(p.name for p in (existing.layout / "blobs/sha256").iterdir())
    monkeypatch.setattr(LayoutWriter, "add_blob", fail)
    with pytest.raises(LayoutError, match="cannot write: No space left on device"):
        pack(tiny_component, existing.layout, tags=["2"], annotations={"k": "v"})
    monkeypatch.undo()
    assert sorted(p.name for p in (existing.layout / "blobs/sha256").iterdir()) == before
    assert sorted(OciLayout.open(existing.layout).tags()) == ["1"]


def test_killed_pack_leaves_no_layout(tiny_component: Path, tmp_path: Path) -> None:
    big = tmp_path / "big.wasm"
    shutil.copyfile(tiny_component, big)
    append_custom_section(big, "padding", 512 << 20)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "hatch_wasm_oci", "pack", str(big), "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        if any(p.stat().st_size > 0 for p in tmp_path.glob(".out.*/blobs/sha256/.incoming.*")):
            break
        time.sleep(0.005)
    assert proc.poll() is None, "pack finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    (staging,) = tmp_path.glob(f".out.{proc.pid}.*")  # what the killed process left

    # The next pack removes what the dead process left, and leaves nothing hidden itself.
    pack(tiny_component, out, tags=["1"])
    assert not staging.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.wasm", "out"]
    OciLayout.open(out).verify()


def test_leftovers_of_dead_writers_are_removed(
    tiny_component: Path, core_module: Path, tmp_path: Path
) -> None:
    out = tmp_path / "layout"
    pack(tiny_component, out, tags=["a"])
    dead = 2**31 - 1  # above Linux's pid_max: no such process
    blobs = out / "blobs" / "sha256"
    (blobs / f".incoming.{dead}.x1y2").write_bytes(b"half a blob")
    (out / f".index.json.{dead}.z3").write_bytes(b"{")
    (tmp_path / f".layout.tar.{dead}.q9").write_bytes(b"half a tar")

    pack(core_module, out, tags=["b"], tar=True)
    # No live writer can own them: every writer of the layout holds its lock.
    assert not list(blobs.glob(".*"))
    assert not list(out.glob(".index.json.*"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["layout", "layout.tar"]


def test_failing_tar_write_is_a_layout_error_and_leaves_no_temporary(
    tiny_component: Path, tmp_path: Path
) -> None:
    (tmp_path / "out.tar").mkdir()  # the rename over it fails for real
    with pytest.raises(LayoutError, match=r"out: cannot write: Is a directory$"):
        pack(tiny_component, tmp_path / "out", tags=["1"], tar=True)
    # The layout without its tar is half the output asked for: it goes too.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.tar"]
    assert list((tmp_path / "out.tar").iterdir()) == []


def test_layout_and_tar_are_readable_by_others_under_umask_022(
    tiny_component: Path, tmp_path: Path
) -> None:
    old = os.umask(0o022)
    try:
        result = pack(tiny_component, tmp_path / "dist" / "layout", tags=["1"], tar=True)
    finally:
        os.umask(old)
    paths = [result.layout, *result.layout.rglob("*")]
    modes = {p.relative_to(tmp_path).as_posix(): p.stat().st_mode & 0o777 for p in paths}
    assert {m for p, m in modes.items() if (tmp_path / p).is_dir()} == {0o755}, modes
    assert {m for p, m in modes.items() if (tmp_path / p).is_file()} == {0o644}, modes
    assert result.tar is not None and result.tar.stat().st_mode & 0o777 == 0o644
