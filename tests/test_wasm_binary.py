"""read_wasm against real binaries, with wasm-tools as the oracle, and against bad input."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from hatch_wasm_oci.errors import WasmFormatError
from hatch_wasm_oci.leb128 import encode_u32
from hatch_wasm_oci.wasm_binary import WasmKind, read_wasm, section_headers
from tests.wasm_fixtures import wasm_tools, wit_world

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
    assert list(info.imports) == sorted(imports)
    assert list(info.exports) == sorted(exports)
    assert info.size == path.stat().st_size
    assert info.path == str(path)
