"""The ``wit-dependencies`` build step: fetch the WIT packages a componentize-py WIT needs.

By default it runs only when a WIT directory lacks foreign packages (no ``deps/`` for them);
``wit-dependencies = false`` turns it off, ``true`` or a table (wasm-pkg config keys laid over
the user's wasm-pkg config) makes it run every build. With a ``wkg.lock`` beside the WIT
directory the locked digests are used (offline from the cache); without one it is written.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from hatch_wasm_oci.project.settings import ComponentizePySource, WasmOciSettings
from hatch_wasm_oci.wit import wasm_tools
from hatch_wasm_oci.wit.cache import BlobCache, default_cache_root
from hatch_wasm_oci.wit.config import load_config
from hatch_wasm_oci.wit.errors import WitError
from hatch_wasm_oci.wit.fetch import Mode, fetch_dependencies
from hatch_wasm_oci.wit.lock import LOCK_FILE_NAME

STEP = "wit-dependencies"


def fetch_wit_dependencies(
    settings: WasmOciSettings,
    *,
    root: Path,
    environ: Mapping[str, str],
    log: Callable[[str], None],
) -> None:
    """Run the step for each WIT directory of the componentize-py source (if it applies)."""
    option = settings.wit_dependencies
    source = settings.source
    if option is False or not isinstance(source, ComponentizePySource):
        return
    overrides = option if isinstance(option, Mapping) else None
    for rel in source.wit_paths:
        wit_dir = Path(root) / rel
        if not wit_dir.is_dir():
            continue
        if option is None and not _lacks_packages(wit_dir):
            continue
        lock = wit_dir.parent / LOCK_FILE_NAME
        mode = Mode.LOCKED if lock.exists() else Mode.FETCH
        how = f"locked by {LOCK_FILE_NAME}" if lock.exists() else f"writing {LOCK_FILE_NAME}"
        log(f"Resolving WIT dependencies of {rel} ({how})")
        config = load_config(environ, overrides, settings.key(STEP))
        cache = BlobCache(default_cache_root(environ))
        result = fetch_dependencies(
            wit_dir, config=config, cache=cache, mode=mode, environ=environ, log=log
        )
        log(
            f"WIT dependencies: {len(result.written)} package(s) in {rel}/deps, "
            f"{len(result.locked)} locked in {LOCK_FILE_NAME}"
        )


def _lacks_packages(wit_dir: Path) -> bool:
    """Whether wasm-tools names a foreign package ``wit_dir`` lacks. Any other complaint about
    the WIT is left to the compiler, which reports it in its own words."""
    try:
        return wasm_tools.missing_package(wit_dir) is not None
    except WitError:
        return False
