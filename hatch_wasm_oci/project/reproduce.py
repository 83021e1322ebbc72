"""Is a project's build reproducible? Build it as usual, again from a clean compile cache, and
compare the manifest digests; when they differ, say in which sections the components differ."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hatch_wasm_oci.errors import ConfigurationError
from hatch_wasm_oci.project.componentize import Log
from hatch_wasm_oci.project.settings import (
    HOOK_TABLE,
    TARGET_TABLE,
    WasmOciSettings,
    parse_settings,
)


@dataclass(frozen=True)
class ReproduceResult:
    """The digest of the usual build (compile caches allowed), the digest of a build from a clean
    local cache without the registry cache, and where their components differ."""

    digest: str
    clean_digest: str
    differences: tuple[str, ...]

    @property
    def reproducible(self) -> bool:
        """Whether both builds gave the same manifest digest."""
        return self.digest == self.clean_digest


def load_project(
    root: Path, version: str | None = None
) -> tuple[WasmOciSettings, Mapping[str, Any], str, str]:
    """The ``wasm-oci`` settings (the target table, else the build hook's), the ``[project]``
    table, name and version of the project at ``root``."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib

    pyproject = root / "pyproject.toml"
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError([f"{pyproject}: no such file"]) from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError([f"{pyproject}: {exc}"]) from None
    project = data.get("project") or {}
    name, version = project.get("name"), version or project.get("version")
    if not isinstance(name, str) or not isinstance(version, str):
        raise ConfigurationError(
            [f"{pyproject}: [project] needs a static name and version (or pass --version)"]
        )
    tool = data.get("tool", {}).get("hatch", {}).get("build", {})
    target = tool.get("targets", {}).get("wasm-oci")
    hook = tool.get("hooks", {}).get("wasm-oci")
    if target is None and hook is None:
        raise ConfigurationError([f"{pyproject}: no [{TARGET_TABLE}] or [{HOOK_TABLE}] table"])
    table, config = (TARGET_TABLE, target) if target is not None else (HOOK_TABLE, hook)
    settings = parse_settings(config, root=root, table=table, hook=target is None, version=version)
    return settings, project, name, version


def check_reproducible(
    root: Path,
    *,
    version: str | None = None,
    environ: Mapping[str, str] | None = None,
    log: Log = print,
    warn: Log | None = None,
) -> ReproduceResult:
    """Build the project at ``root`` twice, as usual and from a clean compile cache (local and
    registry caches skipped), in a temporary directory; compare the results."""
    from hatch_wasm_oci.project.pipeline import build_artifact
    from hatch_wasm_oci.wasm.diff import report

    root = Path(root).resolve()
    settings, project, name, version = load_project(root, version)
    outputs = []
    with tempfile.TemporaryDirectory(prefix="hatch-wasm-oci-reproduce-") as scratch:
        for label, use_cache in (("usual", True), ("clean", False)):
            outputs.append(
                build_artifact(
                    settings,
                    root=root,
                    project=project,
                    name=name,
                    version=version,
                    out_dir=Path(scratch) / label,
                    exclude=[root / "dist"],
                    environ=environ,
                    log=log,
                    waiting=log,
                    warn=warn,
                    install=False,
                    use_cache=use_cache,
                )
            )
        usual, clean = outputs
        differences: tuple[str, ...] = ()
        if usual.pack.manifest.digest != clean.pack.manifest.digest:
            differences = tuple(
                report(usual.component.read_bytes(), clean.component.read_bytes())
            ) or ("the components are identical: the difference is in the manifest or config",)
    return ReproduceResult(usual.pack.manifest.digest, clean.pack.manifest.digest, differences)
