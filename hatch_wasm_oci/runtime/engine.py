"""The wasmtime engine and its compiled-code cache.

Compiling a componentize-py component takes seconds; the compiled form is cached under
``<cache>/compiled/<key>.cwasm``, the key a hash of the component's digest, the wasmtime
version, the engine settings and the machine. Each entry starts with a magic line and the
SHA-256 of its key and the serialized code that follows; an entry whose hash does not match
(truncated, corrupted, copied from another key, written by something else) is never handed
to wasmtime: it is recompiled and replaced. ``HATCH_WASM_OCI_NO_CACHE=1`` turns the cache off.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import math
import platform
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import wasmtime
import wasmtime.component as wc

from hatch_wasm_oci.errors import ComponentError
from hatch_wasm_oci.files.atomic import replacing
from hatch_wasm_oci.files.cache_home import enabled_cache_root

MAGIC = b"hatch-wasm-oci compiled v1\n"
TICK_SECONDS = 0.1

_engines: dict[bool, wasmtime.Engine] = {}
_ticker: threading.Thread | None = None
_ticker_lock = threading.Lock()


def engine_settings(interruptible: bool) -> str:
    """Every engine setting changed from wasmtime's defaults (part of the cache key)."""
    return "epoch-interruption" if interruptible else "defaults"


def engine(interruptible: bool = False) -> wasmtime.Engine:
    """The process-wide engine (one engine shares compiled code between loads).

    ``interruptible`` engines check an epoch deadline in compiled code (for ``--timeout``);
    that costs compile time and code size, so only runs with a timeout use one.
    """
    if interruptible not in _engines:
        config = wasmtime.Config()
        config.epoch_interruption = interruptible
        _engines[interruptible] = wasmtime.Engine(config)
    return _engines[interruptible]


def deadline_ticks(timeout: float) -> int:
    """The epoch deadline for a store of the interruptible engine that may run ``timeout``
    seconds. The first call starts a daemon thread that advances that engine's epoch every
    ``TICK_SECONDS``; a store past its deadline traps with ``interrupt``."""
    global _ticker
    with _ticker_lock:
        if _ticker is None:
            eng = engine(interruptible=True)

            def tick() -> None:
                while True:
                    time.sleep(TICK_SECONDS)
                    eng.increment_epoch()

            _ticker = threading.Thread(target=tick, name="wasm-epoch", daemon=True)
            _ticker.start()
    return max(1, math.ceil(timeout / TICK_SECONDS))


def wasmtime_version() -> str:
    try:
        return importlib.metadata.version("wasmtime")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - vendored wasmtime
        return "unknown"


def cache_root(environ: Mapping[str, str] | None = None) -> Path | None:
    """The cache directory (:func:`enabled_cache_root`); None when caching is turned off."""
    return enabled_cache_root(environ)


def cache_key(digest: str, kind: str, interruptible: bool = False) -> str:
    """The compiled-cache key of a binary (its digest) for this wasmtime, engine and machine."""
    settings = engine_settings(interruptible)
    parts = [digest, kind, wasmtime_version(), settings, platform.machine(), sys.platform]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _seal(key: str, code: bytes | bytearray | memoryview) -> bytes:
    """The hash an entry carries: of its key and its code, so an entry copied under another
    key (another component's code) does not verify either."""
    hasher = hashlib.sha256(key.encode() + b"\0")
    hasher.update(code)
    return hasher.digest()


def _read_entry(path: Path, key: str) -> bytes | None:
    """The serialized code in a cache entry, or None if absent or not intact."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    header = len(MAGIC) + 32
    if len(data) < header or not data.startswith(MAGIC):
        return None
    code = memoryview(data)[header:]
    if _seal(key, code) != data[len(MAGIC) : header]:
        return None
    return bytes(code)


def _write_entry(path: Path, key: str, code: bytes | bytearray) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with replacing(path) as sink:
            sink.write(MAGIC + _seal(key, code))
            sink.write(code)
    except OSError:
        pass  # a read-only or full cache only costs the next run a compile


def compile_binary(
    wasm: bytes, digest: str, *, component: bool, cache: Path | None, interruptible: bool = False
) -> Any:
    """A compiled ``wc.Component`` (or ``wasmtime.Module``), from the cache when intact."""
    kind = "component" if component else "module"
    cls: Any = wc.Component if component else wasmtime.Module
    key = cache_key(digest, kind, interruptible)
    entry = cache / "compiled" / f"{key}.cwasm" if cache else None
    if entry is not None:
        code = _read_entry(entry, key)
        if code is not None:
            try:
                return cls.deserialize(engine(interruptible), code)
            except wasmtime.WasmtimeError:
                pass  # intact but refused (another build of wasmtime): recompile
    try:
        compiled = cls(engine(interruptible), wasm)
    except wasmtime.WasmtimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid"
        raise ComponentError(f"wasmtime cannot compile this {kind}: {first}") from None
    if entry is not None:
        _write_entry(entry, key, compiled.serialize())
    return compiled
