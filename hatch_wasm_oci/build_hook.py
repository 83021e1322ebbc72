"""The ``wasm-oci`` build hook: the component as a side effect of building the wheel.

PEP 517 front ends (``python -m build``, pip) only build wheels and sdists, so this hook is
their way in. For the wheel it writes the OCI layout next to the wheel
(``<dist>/wasm-oci/<name>-<version>/``) and, with ``include-in-wheel = "pkg/component.wasm"``,
ships the component inside the wheel. For the sdist it does nothing unless ``sdist = true``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from hatchling.builders.config import BuilderConfig
from hatchling.builders.hooks.plugin.interface import BuildHookInterface

from hatch_wasm_oci.builder import OUTPUT_SUBDIR, abort_build
from hatch_wasm_oci.errors import WasmOciError


class WasmOciBuildHook(BuildHookInterface[BuilderConfig]):
    """Build the Wasm OCI artifact while Hatch builds the wheel (or, opted in, the sdist)."""

    PLUGIN_NAME = "wasm-oci"

    def _table(self) -> str:
        from hatch_wasm_oci.settings import HOOK_TABLE, PLUGIN_NAME

        target_hooks = self.build_config.target_config.get("hooks", {})
        if isinstance(target_hooks, dict) and PLUGIN_NAME in target_hooks:
            return f"tool.hatch.build.targets.{self.target_name}.hooks.{PLUGIN_NAME}"
        return HOOK_TABLE

    def clean(self, versions: list[str]) -> None:
        output = Path(self.directory) / OUTPUT_SUBDIR
        if output.is_dir():
            shutil.rmtree(output)

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name not in ("wheel", "sdist"):
            return  # the wasm-oci target builds the layout itself; other targets don't need it
        from hatch_wasm_oci.component_build import build_artifact
        from hatch_wasm_oci.settings import parse_settings

        try:
            project_version = self.metadata.version
            settings = parse_settings(
                self.config,
                root=self.root,
                table=self._table(),
                hook=True,
                version=project_version,
            )
            if self.target_name == "sdist" and not settings.sdist:
                return
            output = build_artifact(
                settings,
                root=Path(self.root),
                project=self.metadata.core.config,
                name=self.metadata.core.name,
                version=project_version,
                out_dir=Path(self.directory) / OUTPUT_SUBDIR,
                exclude=[Path(self.directory)],
                environ=os.environ,
                log=self.app.display_info,
                waiting=self.app.display_waiting,
            )
        except WasmOciError as error:
            abort_build(self.app, error, context="wasm-oci build hook")
        self.app.display_info(f"wasm-oci: {output.pack.layout}")
        if settings.include_in_wheel and self.target_name == "wheel":
            build_data["force_include"][str(output.component)] = settings.include_in_wheel
