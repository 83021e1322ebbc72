"""The ``wit-package`` build option: the project's WIT as its own Wasm OCI layout.

Written to ``<out_dir>/wit-<ns>-<name>-<version>/`` (tagged with the package version) beside
the component's layout, so it can be pushed to the package's location (``wkg`` resolves it
from there) with ``hatch-wasm-oci push``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

from hatch_wasm_oci.build.settings import ComponentizePySource, WasmOciSettings
from hatch_wasm_oci.errors import ConfigurationError
from hatch_wasm_oci.oci.layout import PackResult, pack
from hatch_wasm_oci.wit.package import build_wit_package


def wit_package_dir(settings: WasmOciSettings, root: Path) -> Path | None:
    """The WIT directory ``wit-package`` names (``true``: componentize-py's first wit-path)."""
    option = settings.wit_package
    if option is None or option is False:
        return None
    if isinstance(option, str):
        return Path(root) / option
    source = settings.source
    if isinstance(source, ComponentizePySource):
        return Path(root) / source.wit_paths[0]
    raise ConfigurationError(
        [f"{settings.key('wit-package')}: name the WIT directory (true needs componentize-py)"]
    )


def build_wit_package_layout(
    settings: WasmOciSettings,
    *,
    root: Path,
    version: str,
    annotations: Mapping[str, str],
    fields: Mapping[str, str],
    created: str,
    staging: Path,
    log: Callable[[str], None],
) -> PackResult | None:
    """Build the WIT package layout into ``staging`` (None when the option is off)."""
    wit_dir = wit_package_dir(settings, root)
    if wit_dir is None:
        return None
    with tempfile.TemporaryDirectory(prefix="hatch-wasm-oci-wit-") as scratch:
        encoded = Path(scratch) / "package.wasm"
        package = build_wit_package(wit_dir, encoded, version, fields)
        assert package.version is not None
        named = Path(scratch) / f"{package.namespace}-{package.name}.wasm"
        encoded.rename(named)
        layout = staging / f"wit-{package.dir_name}"
        log(f"Packing the WIT package {package} as {layout.name}")
        wit_annotations = {**annotations, "org.opencontainers.image.version": package.version}
        return pack(
            named,
            layout,
            tags=(package.version,),
            annotations=wit_annotations,
            created=created,
        )
