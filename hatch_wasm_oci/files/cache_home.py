"""Where hatch-wasm-oci keeps its caches: ``$HATCH_WASM_OCI_CACHE``, else the per-user cache."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

CACHE_ENV = "HATCH_WASM_OCI_CACHE"
NO_CACHE_ENV = "HATCH_WASM_OCI_NO_CACHE"


def user_cache_root(environ: Mapping[str, str] | None = None) -> Path:
    """``$HATCH_WASM_OCI_CACHE``, else ``$XDG_CACHE_HOME/hatch-wasm-oci`` (``~/.cache/...``;
    ``Library/Caches`` on macOS, ``%LOCALAPPDATA%`` on Windows)."""
    env = os.environ if environ is None else environ
    explicit = env.get(CACHE_ENV, "").strip()
    if explicit:
        return Path(explicit).expanduser()
    if sys.platform == "win32":
        base = env.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "hatch-wasm-oci" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "hatch-wasm-oci"
    xdg = env.get("XDG_CACHE_HOME", "").strip()
    return (Path(xdg) if xdg else Path.home() / ".cache") / "hatch-wasm-oci"


def enabled_cache_root(environ: Mapping[str, str] | None = None) -> Path | None:
    """:func:`user_cache_root`, or None when ``HATCH_WASM_OCI_NO_CACHE`` turns caching off."""
    env = os.environ if environ is None else environ
    if env.get(NO_CACHE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}:
        return None
    return user_cache_root(env)
