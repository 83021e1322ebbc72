"""Hostile binaries for ``inspect`` and ``pack``: huge metadata and name sections cost no
memory, a huge decoded section is refused before it is read. Each run is a bounded subprocess
(peak RSS under 256 MiB, a deadline, no traceback)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hatch_wasm_oci.wasm.leb128 import encode_u32
from tests.adversarial_fixtures import append_sparse_section, custom_head, run_bounded
from tests.registry_fixtures import clean_env

GIB = 1 << 30


def _hostile(tiny_component: Path, tmp_path: Path, section_id: int, head: bytes, size: int) -> Path:
    wasm = tmp_path / "in" / "hostile.wasm"
    wasm.parent.mkdir()
    shutil.copyfile(tiny_component, wasm)
    append_sparse_section(wasm, section_id, size, head)
    return wasm


@pytest.mark.parametrize("field", ["description", "authors", "producers"])
def test_a_1_gib_metadata_section_is_refused_without_being_read(
    tiny_component: Path, tmp_path: Path, field: str
) -> None:
    wasm = _hostile(tiny_component, tmp_path, 0, custom_head(field), GIB)
    env = clean_env(tmp_path / "home")
    for args in (("inspect", wasm), ("pack", wasm, "-o", tmp_path / "out")):
        result = run_bounded(*args, env=env, timeout=20)
        result.check_clean_failure(f"custom section '{field}' is", "over the 1048576-byte limit")
        assert result.seconds < 10
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "in"]


def test_a_huge_name_section_costs_only_the_name(tiny_component: Path, tmp_path: Path) -> None:
    # Subsection 0 (the component's name) first, then 300 MiB of other names: only the name
    # is read. componentize-py components carry such sections, smaller.
    name = b"hostile-name"
    sub0 = b"\x00" + encode_u32(len(name) + 1) + encode_u32(len(name)) + name
    sub1 = b"\x01" + encode_u32(300 << 20)
    head = custom_head("component-name") + sub0 + sub1
    wasm = _hostile(tiny_component, tmp_path, 0, head, len(head) + (300 << 20))
    result = run_bounded("inspect", wasm, env=clean_env(tmp_path / "home"), timeout=20)
    assert result.returncode == 0, result.stderr
    result.check_no_traceback()
    assert '"name": "hostile-name"' in result.stdout


def test_a_1_gib_import_section_is_refused_without_being_read(
    tiny_component: Path, tmp_path: Path
) -> None:
    wasm = _hostile(tiny_component, tmp_path, 10, encode_u32(1), GIB)
    result = run_bounded("inspect", wasm, env=clean_env(tmp_path / "home"), timeout=20)
    result.check_clean_failure("import section is 1073741824 bytes, over the")
