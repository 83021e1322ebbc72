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
# Every engine setting this module changes from wasmtime's defaults (part of the cache key).
ENGINE_SETTINGS = "epoch-interruption"
TICK_SECONDS = 0.1
NO_DEADLINE = 1 << 62  # ticks: never reached

_engine: wasmtime.Engine | None = None
_ticker: threading.Thread | None = None
_ticker_lock = threading.Lock()


def engine() -> wasmtime.Engine:
    """The process-wide engine (one engine shares compiled code between loads)."""
    global _engine
    if _engine is None:
        config = wasmtime.Config()
        config.epoch_interruption = True
        _engine = wasmtime.Engine(config)
    return _engine


def deadline_ticks(timeout: float | None) -> int:
    """The epoch deadline for a store that may run ``timeout`` seconds (None: no limit).

    The first timeout starts a daemon thread that advances the engine's epoch every
    ``TICK_SECONDS``; a store past its deadline traps with ``interrupt``.
    """
    global _ticker
    if timeout is None:
        return NO_DEADLINE
    with _ticker_lock:
        if _ticker is None:
            eng = engine()

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


def cache_key(digest: str, kind: str) -> str:
    """The compiled-cache key of a binary (its digest) for this wasmtime, engine and machine."""
    parts = [digest, kind, wasmtime_version(), ENGINE_SETTINGS, platform.machine(), sys.platform]
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


def compile_binary(wasm: bytes, digest: str, *, component: bool, cache: Path | None) -> Any:
    """A compiled ``wc.Component`` (or ``wasmtime.Module``), from the cache when intact."""
    kind = "component" if component else "module"
    cls: Any = wc.Component if component else wasmtime.Module
    key = cache_key(digest, kind)
    entry = cache / "compiled" / f"{key}.cwasm" if cache else None
    if entry is not None:
        code = _read_entry(entry, key)
        if code is not None:
            try:
                return cls.deserialize(engine(), code)
            except wasmtime.WasmtimeError:
                pass  # intact but refused (another build of wasmtime): recompile
    try:
        compiled = cls(engine(), wasm)
    except wasmtime.WasmtimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid"
        raise ComponentError(f"wasmtime cannot compile this {kind}: {first}") from None
    if entry is not None:
        _write_entry(entry, key, compiled.serialize())
    return compiled
