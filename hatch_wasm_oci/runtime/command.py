"""Running a binary as a command: a ``wasi:cli/run`` component or a WASI preview 1 module.

The guest gets the arguments, stdin/stdout/stderr, the ``env`` and the directories it is
given, nothing else; its exit status is returned.
"""

from __future__ import annotations

import wasmtime

from hatch_wasm_oci.errors import ComponentError
from hatch_wasm_oci.runtime.component import (
    GuestExit,
    LoadedComponent,
    StderrTail,
    WasiOptions,
    trap_error,
)
from hatch_wasm_oci.runtime.engine import cache_root, compile_binary, deadline_ticks, engine
from hatch_wasm_oci.runtime.guest_thread import call_guest
from hatch_wasm_oci.runtime.target import Artifact
from hatch_wasm_oci.runtime.values import Ok
from hatch_wasm_oci.wasm.binary import WasmKind

WASI_P1 = "wasi_snapshot_preview1"
CLI_RUN = "wasi:cli/run@"
HTTP_HANDLER = "wasi:http/incoming-handler@"


def run_command(artifact: Artifact, wasi: WasiOptions) -> int:
    """Run ``artifact`` as a command; its exit status (0 for ``ok``, 1 for ``err``)."""
    if artifact.kind is WasmKind.MODULE:
        return _run_module(artifact, wasi)
    runs = [name for name in artifact.exports if name.startswith(CLI_RUN)]
    if not runs:
        if any(name.startswith(HTTP_HANDLER) for name in artifact.exports):
            raise ComponentError(
                f"{artifact.source}: is a wasi:http/proxy component: serve it with "
                "`hatch-wasm-oci serve` (or call a function with --invoke)"
            )
        loaded = LoadedComponent(artifact, wasi)
        raise ComponentError(
            f"{artifact.source}: exports no wasi:cli/run; call a function with --invoke "
            f"NAME(ARGS); exports: {loaded.export_listing()}"
        )
    loaded = LoadedComponent(artifact, wasi)
    try:
        with loaded.streaming_stderr():
            result = loaded.function(f"{runs[0]}#run")()
    except GuestExit as exit_request:
        return exit_request.code
    return 0 if isinstance(result, Ok) else 1


def _run_module(artifact: Artifact, wasi: WasiOptions) -> int:
    interruptible = wasi.timeout is not None
    module: wasmtime.Module = compile_binary(
        artifact.wasm,
        artifact.digest,
        component=False,
        cache=cache_root(),
        interruptible=interruptible,
    )
    for item in module.imports:
        if item.module != WASI_P1:
            raise ComponentError(
                f"{artifact.source}: imports {item.module}.{item.name}, which the WASI preview 1 "
                "host does not provide"
            )
    if not any(export.name == "_start" for export in module.exports):
        names = ", ".join(export.name for export in module.exports) or "none"
        raise ComponentError(f"{artifact.source}: a core module without _start (exports: {names})")
    linker = wasmtime.Linker(engine(interruptible))
    linker.define_wasi()
    store = wasmtime.Store(engine(interruptible))
    stderr = StderrTail()
    store.set_wasi(wasi.config(stderr))
    if wasi.timeout is not None:
        store.set_epoch_deadline(deadline_ticks(wasi.timeout))
    try:
        instance = linker.instantiate(store, module)
        start = instance.exports(store)["_start"]
        assert isinstance(start, wasmtime.Func)
        with stderr.follow():
            call_guest(lambda: start(store))
    except wasmtime.ExitTrap as exc:
        stderr.take()
        return exc.code
    except (wasmtime.WasmtimeError, wasmtime.Trap) as exc:
        raise trap_error(artifact.source, exc, stderr.take(), wasi.timeout) from None
    stderr.take()
    return 0
