"""The build-time check: does a freshly built binary instantiate on a standard WASI host?

A component is linked against wasmtime's WASI 0.2 (``wasi:cli`` and the rest of the command
world, plus ``wasi:http`` when it imports it) and instantiated with nothing of the host
visible; a core module against WASI preview 1. An import no such host provides fails with
one line naming it. Compiled code goes to the compiled cache, so ``run`` reuses it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import wasmtime

from hatch_wasm_oci.errors import ComponentError
from hatch_wasm_oci.runtime.component import StderrTail, WasiOptions, instantiate_component
from hatch_wasm_oci.runtime.engine import cache_root, compile_binary, engine
from hatch_wasm_oci.wasm.binary import WasmKind, read_wasm

WASI_P1 = "wasi_snapshot_preview1"


def check_instantiates(path: Path, where: str) -> None:
    """Instantiate the binary at ``path``; ComponentError (``where: ...``) if it cannot be."""
    info = read_wasm(path)
    if info.kind is WasmKind.WIT_PACKAGE:
        return
    wasm = Path(path).read_bytes()
    digest = "sha256:" + hashlib.sha256(wasm).hexdigest()
    component = info.kind is WasmKind.COMPONENT
    compiled = compile_binary(wasm, digest, component=component, cache=cache_root())
    if component:
        instantiate_component(compiled, info.imports, WasiOptions(), StderrTail(), where)
        return
    for item in compiled.imports:
        if item.module != WASI_P1:
            raise ComponentError(
                f"{where}: imports {item.module}.{item.name}, which the WASI preview 1 host "
                "does not provide"
            )
    linker = wasmtime.Linker(engine())
    linker.define_wasi()
    store = wasmtime.Store(engine())
    store.set_wasi(wasmtime.WasiConfig())
    try:
        linker.instantiate(store, compiled)
    except (wasmtime.WasmtimeError, wasmtime.Trap) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ComponentError(f"{where}: does not instantiate: {first}") from None
