"""The ``wasm-oci`` Hatch build target: ``hatch build -t wasm-oci``.

Writes ``dist/wasm-oci/<name>-<version>/`` (an OCI image layout holding the component) and,
with ``tar = true``, ``dist/wasm-oci/<name>-<version>.tar``. ``hatch clean -t wasm-oci``
removes ``dist/wasm-oci/`` and the publisher's ``dist/wasm-oci-publish.json``. A thin adapter
over :mod:`hatch_wasm_oci.project.pipeline`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from hatchling.builders.config import BuilderConfig
from hatchling.builders.plugin.interface import BuilderInterface
from hatchling.plugin.manager import PluginManager

from hatch_wasm_oci.errors import ConfigurationError, LayoutError, WasmOciError

if TYPE_CHECKING:
    from hatch_wasm_oci.project.pipeline import BuildOutput
    from hatch_wasm_oci.project.settings import TagFormatter, WasmOciSettings

OUTPUT_SUBDIR = "wasm-oci"
#: The summary ``hatch publish -p wasm-oci`` writes beside the layouts (unless told elsewhere).
SUMMARY_NAME = "wasm-oci-publish.json"


def tag_formatter(metadata: Any) -> TagFormatter:
    """Tag templates formatted by Hatch's context formatter: ``{version}`` (the tag form of the
    project's version), ``{env:NAME}``, ``{env:NAME:default}``, ``{root}``, ``{home}``..."""

    def format_tag(template: str, version_tag: str) -> str:
        return str(metadata.context.format(template, version=version_tag))

    return format_tag


def build_table(root: Path | str, rest: str) -> str:
    """The TOML path of ``[tool.hatch.build.<rest>]`` as the user wrote it: hatch.toml's
    ``build.<rest>`` when hatch.toml has a ``[build]`` table (hatchling then reads the build
    configuration from it alone), else pyproject.toml's ``tool.hatch.build.<rest>``."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        with (Path(root) / "hatch.toml").open("rb") as file:
            in_hatch_toml = "build" in tomllib.load(file)
    except (OSError, ValueError):
        in_hatch_toml = False
    return f"hatch.toml build.{rest}" if in_hatch_toml else f"tool.hatch.build.{rest}"


def project_settings(metadata: Any, root: Path) -> WasmOciSettings | None:
    """The project's checked ``wasm-oci`` build table (the target's, else the build hook's),
    read from pyproject.toml and hatch.toml as ``hatch build`` reads it; None when it has none.

    ``metadata`` is hatchling's ProjectMetadata. ConfigurationError lists every problem.
    """
    from hatch_wasm_oci.project.settings import PLUGIN_NAME, parse_settings

    try:
        targets = metadata.hatch.build_targets
        hooks = metadata.hatch.build_config.get("hooks", {})
        version = metadata.version
    except (TypeError, ValueError) as exc:  # hatchling's own configuration errors
        raise ConfigurationError([str(exc)]) from None
    if PLUGIN_NAME in targets:
        config, table, hook = targets[PLUGIN_NAME], build_table(root, "targets.wasm-oci"), False
    elif isinstance(hooks, dict) and PLUGIN_NAME in hooks:
        config, table, hook = hooks[PLUGIN_NAME], build_table(root, "hooks.wasm-oci"), True
    else:
        return None
    return parse_settings(
        config,
        root=root,
        table=table,
        hook=hook,
        version=version,
        formatter=tag_formatter(metadata),
    )


def abort_build(app: Any, error: WasmOciError, *, context: str = "wasm-oci") -> NoReturn:
    """Show ``error`` through Hatch's app (every problem on its own line, no traceback) and exit 1.

    A failed external step's own output (componentize-py, ``command``) is shown first.
    """
    from hatch_wasm_oci.project.componentize import BuildStepError

    if isinstance(error, BuildStepError) and error.output.strip() and not error.streamed:
        for line in error.output.rstrip().splitlines():
            app.display_error(line.rstrip())
    if isinstance(error, ConfigurationError) and len(error.problems) > 1:
        app.display_error(f"{context}: {len(error.problems)} configuration problems:")
        for problem in error.problems:
            app.display_error(f"  {problem}")
    else:
        problems = error.problems if isinstance(error, ConfigurationError) else [str(error)]
        for problem in problems:
            app.display_error(f"{context}: {problem}")
    app.abort(code=1)
    raise SystemExit(1)  # app.abort exits; this line satisfies the type checker


def missing_runtime_dependencies(dependencies: list[str]) -> list[str]:
    """The requirements in ``dependencies`` that the running environment does not satisfy."""
    import importlib.metadata

    from packaging.requirements import InvalidRequirement, Requirement

    missing: list[str] = []
    for text in dependencies:
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            continue
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        try:
            installed = importlib.metadata.version(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(text)
            continue
        if not requirement.specifier.contains(installed, prereleases=True):
            missing.append(text)
    return missing


def check_runtime_dependencies(
    target_config: dict[str, Any], dependencies: list[str], table: str
) -> None:
    """Fail clearly when ``require-runtime-dependencies`` asked for packages that are not there.

    Hatch 1.16+ does not install them for ``hatch build -t <custom target>`` (pypa/hatch#2110);
    componentize-py would then stop on the app's first import.
    """
    if target_config.get("require-runtime-dependencies") is not True:
        return
    missing = missing_runtime_dependencies(dependencies)
    if missing:
        raise ConfigurationError(
            [
                f"{table}.require-runtime-dependencies: the build environment lacks "
                f"{', '.join(missing)} (Hatch did not install the project's dependencies); "
                f"list them in {table}.dependencies instead"
            ]
        )


def remove_output(directory: Path) -> None:
    """``hatch clean``: remove ``<directory>/wasm-oci`` (builder and hook outputs) and the
    publisher's default summary beside it, if present."""
    output = directory / OUTPUT_SUBDIR
    if output.is_dir():
        shutil.rmtree(output)
    with contextlib.suppress(FileNotFoundError):
        (directory / SUMMARY_NAME).unlink()


def remove_if_empty(directory: Path) -> None:
    """Remove ``directory`` when a failed build left it empty."""
    with contextlib.suppress(OSError):
        directory.rmdir()


def build_for_hatch(
    plugin: Any,
    settings: WasmOciSettings,
    *,
    version: str,
    out_dir: Path,
    build_dir: Path,
    install: bool = True,
    reproducible: bool = True,
) -> BuildOutput:
    """Run the build pipeline with what a Hatch builder or build hook (``plugin``) knows.

    The project root, its ``[project]`` table and name come from ``plugin``; progress goes to
    Hatch's app. With Hatch's ``reproducible = false`` the artifact's ``created`` is the build
    time, else SOURCE_DATE_EPOCH or hatchling's fixed default. ``build_dir`` (Hatch's output
    directory) is never hashed as an input. With
    ``install=False`` the layout is written straight into ``out_dir``, a staging directory the
    caller installs from later.
    An OSError becomes a one-line LayoutError.
    """
    from hatch_wasm_oci.project.pipeline import build_artifact

    try:
        return build_artifact(
            settings,
            root=Path(plugin.root),
            project=plugin.metadata.core.config,
            name=plugin.metadata.core.name,
            version=version,
            out_dir=out_dir,
            exclude=[build_dir],
            environ=os.environ,
            log=plugin.app.display_info,
            waiting=plugin.app.display_waiting,
            install=install,
            reproducible=reproducible,
            verbosity=plugin.app.verbosity,
            warn=plugin.app.display_warning,
        )
    except OSError as exc:
        raise LayoutError(f"{exc.filename or out_dir}: {exc.strerror or exc}") from None


class WasmOciBuilder(BuilderInterface[BuilderConfig, PluginManager]):
    """Build the project's WebAssembly component into a Wasm OCI artifact (OCI image layout)."""

    PLUGIN_NAME = "wasm-oci"

    def get_version_api(self) -> dict[str, Any]:
        return {"standard": self.build_standard}

    def get_default_versions(self) -> list[str]:
        return ["standard"]

    def clean(self, directory: str, versions: list[str]) -> None:
        remove_output(Path(directory))

    def build_standard(self, directory: str, **build_data: Any) -> str:
        """Build the layout; returns its directory (Hatch prints it)."""
        from hatch_wasm_oci.project.settings import parse_settings

        build_dir = Path(directory)
        table = build_table(self.root, "targets.wasm-oci")
        try:
            version = self.metadata.version
            settings = parse_settings(
                self.target_config,
                root=self.root,
                table=table,
                version=version,
                formatter=tag_formatter(self.metadata),
            )
            check_runtime_dependencies(self.target_config, self.metadata.core.dependencies, table)
            output = build_for_hatch(
                self,
                settings,
                version=version,
                out_dir=build_dir / OUTPUT_SUBDIR,
                build_dir=build_dir,
                reproducible=self.config.reproducible,
            )
        except WasmOciError as error:
            remove_if_empty(build_dir)
            abort_build(self.app, error)
        if output.pack.tar is not None:
            self.app.display_info(str(output.pack.tar))
        return str(output.pack.layout)
