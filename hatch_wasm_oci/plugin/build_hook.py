"""The ``wasm-oci`` build hook: the component as a side effect of building the wheel.

PEP 517 front ends (``python -m build``, pip) only build wheels and sdists, so this hook is
their way in. For the wheel it writes the OCI layout next to the wheel
(``<dist>/wasm-oci/<name>-<version>/``) and, with ``include-in-wheel = "pkg/component.wasm"``,
ships the component inside the wheel. For the sdist it does nothing unless ``sdist = true``.

The layout is built in ``initialize`` into a staging directory in the system's temporary
directory and moved next to the wheel in ``finalize``, which Hatch calls only after the wheel
was built: a failed build leaves nothing in ``dist/``. The staging directory goes when the
build ends either way; one left by a killed build is removed by the next build.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hatchling.builders.config import BuilderConfig, env_var_enabled
from hatchling.builders.hooks.plugin.interface import BuildHookInterface

from hatch_wasm_oci.errors import WasmOciError
from hatch_wasm_oci.files.lock import FileLock, LockTimeout
from hatch_wasm_oci.plugin.builder import (
    OUTPUT_SUBDIR,
    abort_build,
    build_for_hatch,
    remove_output,
    tag_formatter,
)

if TYPE_CHECKING:
    from hatch_wasm_oci.project.pipeline import BuildOutput

#: Staging directories are ``<tempdir>/hatch-wasm-oci-staging-<pid>-<random>``.
STAGING_PREFIX = "hatch-wasm-oci-staging-"
#: A staging directory older than this is stale whatever its owner (seconds).
STAGING_MAX_AGE = 24 * 3600
#: The lock file its owner holds for as long as it runs: liveness without PIDs, which mean
#: nothing across PID namespaces, containers or hosts sharing a temporary directory.
OWNER_LOCK = ".owner-lock"
_held: list[FileLock] = []  # this process's staging locks, held until it exits


def remove_stale_staging(tempdir: Path | None = None, *, now: float | None = None) -> list[Path]:
    """Remove staging directories whose owner is gone (its lock is free) or that are a day old.

    Returns the directories removed. Only names made by :func:`new_staging_dir` are touched;
    one without a lock file (being created) is left until it is a day old.
    """
    base = Path(tempdir or tempfile.gettempdir())
    now = time.time() if now is None else now
    removed: list[Path] = []
    for path in base.glob(f"{STAGING_PREFIX}*"):
        pid_text = path.name[len(STAGING_PREFIX) :].split("-", 1)[0]
        if not pid_text.isdigit() or not path.is_dir() or path.is_symlink():
            continue
        try:
            age = now - path.stat().st_mtime
        except OSError:
            continue
        if age > STAGING_MAX_AGE or _owner_gone(path):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _owner_gone(path: Path) -> bool:
    lock_file = path / OWNER_LOCK
    if not lock_file.is_file():
        return False
    probe = FileLock(lock_file, str(path), wait=0)
    try:
        probe.acquire()
    except (LockTimeout, OSError):
        return False
    probe.release()
    return True


def new_staging_dir() -> Path:
    """A fresh staging directory in the system's temporary directory, locked by this process
    for as long as it runs."""
    path = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-"))
    lock = FileLock(path / OWNER_LOCK, str(path), wait=0)
    lock.acquire()
    _held.append(lock)
    return path


def hooks_only() -> bool:
    """Whether Hatch runs the build hooks alone (``--hooks-only``): then no ``finalize`` comes."""
    from hatchling.builders.constants import BuildEnvVars

    return env_var_enabled(BuildEnvVars.HOOKS_ONLY) or "--hooks-only" in sys.argv[1:]


class WasmOciBuildHook(BuildHookInterface[BuilderConfig]):
    """Build the Wasm OCI artifact while Hatch builds the wheel (or, opted in, the sdist)."""

    PLUGIN_NAME = "wasm-oci"

    #: The artifact built by ``initialize``, waiting in its staging directory for ``finalize``.
    _staged: BuildOutput | None = None
    #: Removes the staging directory: when called, when this hook is collected, or at exit.
    _discard: weakref.finalize[Any, Any] | None = None

    def _table(self) -> str:
        from hatch_wasm_oci.plugin.builder import build_table
        from hatch_wasm_oci.project.settings import PLUGIN_NAME

        target_hooks = self.build_config.target_config.get("hooks", {})
        if isinstance(target_hooks, dict) and PLUGIN_NAME in target_hooks:
            return build_table(self.root, f"targets.{self.target_name}.hooks.{PLUGIN_NAME}")
        return build_table(self.root, f"hooks.{PLUGIN_NAME}")

    def _output_dir(self) -> Path:
        return Path(self.directory) / OUTPUT_SUBDIR

    def clean(self, versions: list[str]) -> None:
        remove_output(Path(self.directory))

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name not in ("wheel", "sdist"):
            return  # the wasm-oci target builds the layout itself; other targets don't need it
        from hatch_wasm_oci.project.settings import parse_settings

        self._drop_staging()
        try:
            project_version = self.metadata.version
            settings = parse_settings(
                self.config,
                root=self.root,
                table=self._table(),
                hook=True,
                version=project_version,
                formatter=tag_formatter(self.metadata),
            )
            if self.target_name == "sdist" and not settings.sdist:
                return
            remove_stale_staging()
            staging = new_staging_dir()
            self._discard = weakref.finalize(self, shutil.rmtree, staging, ignore_errors=True)
            self._staged = build_for_hatch(
                self,
                settings,
                version=project_version,
                out_dir=staging,
                build_dir=Path(self.directory),
                install=False,
                reproducible=self.build_config.reproducible,
            )
        except WasmOciError as error:
            self._drop_staging()
            abort_build(self.app, error, context="wasm-oci build hook")
        if settings.include_in_wheel and self.target_name == "wheel":
            component = str(self._staged.component)
            build_data["force_include"][component] = settings.include_in_wheel
        if hooks_only():
            self._install()

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        if self._staged is not None:
            self._install()

    def _install(self) -> None:
        """Move the staged layout next to the build's artifacts."""
        from hatch_wasm_oci.project.pipeline import install_artifact

        staged = self._staged
        assert staged is not None
        try:
            placed = install_artifact(staged, self._output_dir())
        except WasmOciError as error:
            abort_build(self.app, error, context="wasm-oci build hook")
        finally:
            self._drop_staging()
        self.app.display_info(f"wasm-oci: {placed.pack.layout}")

    def _drop_staging(self) -> None:
        self._staged = None
        if self._discard is not None:
            self._discard()
            self._discard = None
