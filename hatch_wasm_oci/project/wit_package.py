"""The ``wit-package`` build option: the project's WIT as its own Wasm OCI layout.

Written to ``<out_dir>/wit-<ns>-<name>-<version>/`` (tagged with the package version) beside
the component's layout. ``hatch publish -p wasm-oci`` pushes it to the package's location
(where ``wkg`` resolves it from), the component to its repository.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from hatch_wasm_oci.errors import ConfigurationError
from hatch_wasm_oci.oci.layout import PackResult, pack
from hatch_wasm_oci.oci.layout_reader import OciLayout
from hatch_wasm_oci.project.settings import ComponentizePySource, WasmOciSettings
from hatch_wasm_oci.registry.push import PushOptions, PushTarget, plan_push
from hatch_wasm_oci.wasm.binary import WasmKind, read_wasm
from hatch_wasm_oci.wit import wasm_tools
from hatch_wasm_oci.wit.config import load_config
from hatch_wasm_oci.wit.discovery import locate
from hatch_wasm_oci.wit.errors import WitError
from hatch_wasm_oci.wit.names import PackageName
from hatch_wasm_oci.wit.package import build_wit_package
from hatch_wasm_oci.wit.source import registry_environ


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


def pack_wit_directory(wit_dir: Path, out: Path, *, deps: Path | None = None) -> PackResult:
    """Any WIT package directory (``wkg publish``'s input) as a Wasm OCI layout at ``out``,
    tagged with the package's version.

    ``deps`` is a directory of packages to resolve the foreign ones against (each a
    subdirectory, as in jco's ``lib/wit/builtin/<version>/``), used when ``wit_dir`` has no
    ``deps/`` of its own. The encoded package carries its name and version as wasm-metadata.
    """
    if not wit_dir.is_dir():
        raise WitError(f"{wit_dir}: not a directory")
    with tempfile.TemporaryDirectory(prefix="hatch-wasm-oci-wit-publish-") as scratch:
        source = wit_dir
        if deps is not None:
            if not deps.is_dir():
                raise WitError(f"{deps}: not a directory (--deps)")
            source = Path(scratch) / "wit"
            shutil.copytree(wit_dir, source, symlinks=False)
            own = wit_dir.resolve()
            for candidate in sorted(deps.iterdir()):
                target = source / "deps" / candidate.name
                if candidate.is_dir() and candidate.resolve() != own and not target.exists():
                    shutil.copytree(candidate, target, symlinks=False)
        package = wasm_tools.root_package(source)
        if package.version is None:
            raise WitError(
                f"{wit_dir}: the WIT package {package.ref} has no version; a published package "
                f"needs one: `package {package.ref}@0.1.0;`"
            )
        encoded = Path(scratch) / f"{package.namespace}-{package.name}.wasm"
        build_wit_package(source, encoded, package.version, {})
        return pack(
            encoded,
            out,
            tags=(package.version,),
            annotations={"org.opencontainers.image.version": package.version},
        )


@dataclass(frozen=True)
class WitPackagePush:
    """A WIT package layout and where it goes: the package's own location, as wkg finds it."""

    layout: OciLayout
    package: PackageName
    targets: list[PushTarget]
    options: PushOptions


def _wit_package_name(layout: OciLayout) -> PackageName | None:
    """``ns:name@version`` of a layout ``wit-package`` wrote (else None)."""
    if not layout.path.name.startswith("wit-"):
        return None
    tags = layout.tags()
    if len(tags) != 1:
        return None
    [(tag, descriptor)] = tags.items()
    layers = layout.manifest(descriptor).get("layers") or []
    if len(layers) != 1 or not isinstance(layers[0], dict):
        return None
    info = read_wasm(layout.blob_path(str(layers[0].get("digest"))))
    if info.kind is not WasmKind.WIT_PACKAGE or not info.metadata.name:
        return None
    return PackageName.parse(f"{info.metadata.name}@{tag}")


def wit_package_pushes(
    layouts: list[OciLayout],
    base: PushOptions,
    *,
    overrides: Mapping[str, object] | None,
    environ: Mapping[str, str],
    log: Callable[[str], None],
) -> tuple[list[WitPackagePush], list[OciLayout]]:
    """Split off the WIT package layouts, each planned for its package's location (registry
    from the wasm-pkg config, OCI repository from its well-known document); returns them and
    the other layouts."""
    pushes: list[WitPackagePush] = []
    others: list[OciLayout] = []
    config = None
    for layout in layouts:
        package = _wit_package_name(layout)
        if package is None:
            others.append(layout)
            continue
        if config is None:
            config = load_config(environ, overrides, "wit-dependencies")
        registry = config.registry_for(package)
        if registry is None:
            raise WitError(
                f"{layout.path.name}: no registry serves namespace '{package.namespace}' "
                f"(set namespace_registries.{package.namespace} in the wasm-pkg config)"
            )
        mapping = config.mapping_for(package)
        location = locate(
            registry,
            config,
            metadata=mapping.metadata if mapping is not None else None,
            ca_file=base.ca_file,
            log=log,
        )
        reference = location.reference(package, package.version)
        options = dataclasses.replace(
            base,
            plain_http=location.plain_http,
            environ=registry_environ(location, environ),
            credentials=None,
        )
        pushes.append(WitPackagePush(layout, package, plan_push(layout, [str(reference)]), options))
    return pushes, others
