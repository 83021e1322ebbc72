"""The wasmtime engine and its compiled-code cache.

Compiling a componentize-py component takes seconds; the compiled form is cached under
``<cache>/compiled/<key>.cwasm``, the key a hash of the component's digest, the wasmtime
version, the engine settings and the machine. Deserializing an entry runs the native code in
it, so an entry is trusted only when it carries an HMAC of its key and code under this user's
secret (:mod:`~hatch_wasm_oci.files.user_key`, kept apart from every cache): one written by
anyone else, copied from another key, truncated or altered is recompiled and replaced, with a
one-line notice. A cache directory another user owns or others can write to is not read at all
(:mod:`~hatch_wasm_oci.files.strict_modes`); nor is any cache when the secret is unavailable:
the code is then compiled in memory. ``HATCH_WASM_OCI_NO_CACHE=1`` turns the cache off.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
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
from hatch_wasm_oci.files.regular import FileInputError, read_regular
from hatch_wasm_oci.files.strict_modes import (
    UntrustedDirectory,
    check_private_tree,
    make_private_tree,
)
from hatch_wasm_oci.files.user_key import UserKeyError, keyed_hasher, user_key

#: v2: the seal is an HMAC under the user's secret (v1 carried a plain SHA-256 anyone can make).
MAGIC = b"hatch-wasm-oci compiled v2\n"
SEAL_PURPOSE = "compiled"
SEAL_SIZE = 32
MAX_ENTRY = 4 << 30
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


#: The longest ``--timeout`` (a year): past it the tick count would overflow wasmtime's u64
#: epoch deadline arithmetic (``1e300`` timed out at once).
MAX_TIMEOUT = 365 * 24 * 3600.0


def check_timeout(timeout: float | None) -> None:
    """ValueError (one line) unless ``timeout`` is None or a number of seconds in
    (0, :data:`MAX_TIMEOUT`]; ``nan`` and ``inf`` are refused."""
    if timeout is None:
        return
    if not (isinstance(timeout, (int, float)) and 0 < timeout <= MAX_TIMEOUT):
        raise ValueError(
            f"takes a number of seconds above 0 and at most {MAX_TIMEOUT:.0f} (a year), "
            f"got {timeout}"
        )


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
    return max(1, math.ceil(min(timeout, MAX_TIMEOUT) / TICK_SECONDS))


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


def _seal(secret: bytes, key: str, code: bytes | bytearray | memoryview) -> bytes:
    """The HMAC an entry carries: of its key and its code under this user's secret, so an
    entry written by anyone else, or copied under another key, does not verify."""
    mac = keyed_hasher(secret, SEAL_PURPOSE)
    mac.update(key.encode() + b"\0")
    mac.update(code)
    return mac.digest()


def _read_entry(path: Path, key: str, secret: bytes) -> bytes | None:
    """The serialized code in a cache entry; None if absent. An entry that is not intact or
    was not sealed with ``secret`` is reported (one line) and None is returned."""
    try:
        data = read_regular(path, MAX_ENTRY)
    except FileNotFoundError:
        return None
    except (OSError, FileInputError) as exc:
        notice(f"compiled cache entry {path} cannot be read ({exc}); compiling again")
        return None
    header = len(MAGIC) + SEAL_SIZE
    code = memoryview(data)[header:]
    if not data.startswith(MAGIC) or not hmac.compare_digest(
        _seal(secret, key, code), data[len(MAGIC) : header]
    ):
        notice(
            f"compiled cache entry {path} does not verify (damaged, or not written by this "
            "user); compiling again"
        )
        return None
    return bytes(code)


def _write_entry(path: Path, key: str, secret: bytes, code: bytes | bytearray) -> None:
    try:
        with replacing(path, 0o600) as sink:
            sink.write(MAGIC + _seal(secret, key, code))
            sink.write(code)
    except OSError:
        pass  # a read-only or full cache only costs the next run a compile


def notice(message: str) -> None:
    """One line on stderr about the cache (the run goes on)."""
    with contextlib.suppress(OSError, ValueError):
        print(f"hatch-wasm-oci: {message}", file=sys.stderr, flush=True)


def trusted_cache_dir(cache: Path) -> tuple[Path, bytes] | None:
    """``<cache>/compiled`` and this user's secret, if native code may be read from there:
    the secret is at hand and the directory and its parents up to ``cache`` are this user's
    own, writable by no one else (:mod:`~hatch_wasm_oci.files.strict_modes`). Else a notice
    and None: the caller compiles in memory."""
    directory = cache / "compiled"
    try:
        secret = user_key()
    except UserKeyError as exc:
        notice(f"{exc}; compiling in memory (no compiled cache)")
        return None
    with contextlib.suppress(OSError):  # a read-only cache: checked (and maybe read) all the same
        make_private_tree(directory, cache)
    try:
        check_private_tree(directory, cache)
    except UntrustedDirectory as exc:
        notice(f"{exc}; compiling in memory (not reading native code from there)")
        return None
    return directory, secret


def compile_binary(
    wasm: bytes, digest: str, *, component: bool, cache: Path | None, interruptible: bool = False
) -> Any:
    """A compiled ``wc.Component`` (or ``wasmtime.Module``): from the cache when its entry
    verifies, else compiled (and cached if the cache is trusted: :func:`trusted_cache_dir`)."""
    kind = "component" if component else "module"
    cls: Any = wc.Component if component else wasmtime.Module
    key = cache_key(digest, kind, interruptible)
    trusted = trusted_cache_dir(cache) if cache is not None else None
    entry = trusted[0] / f"{key}.cwasm" if trusted else None
    if trusted is not None and entry is not None:
        code = _read_entry(entry, key, trusted[1])
        if code is not None:
            try:
                return cls.deserialize(engine(interruptible), code)
            except wasmtime.WasmtimeError:
                pass  # sealed by us but refused (another build of wasmtime): recompile
    try:
        compiled = cls(engine(interruptible), wasm)
    except wasmtime.WasmtimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid"
        raise ComponentError(f"wasmtime cannot compile this {kind}: {first}") from None
    if trusted is not None and entry is not None:
        _write_entry(entry, key, trusted[1], compiled.serialize())
    return compiled
