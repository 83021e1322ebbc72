"""The Hatch-free build pipeline: produce the ``.wasm``, stamp its metadata, pack the OCI layout.

The component comes from componentize-py, a user ``command`` or a prebuilt ``path``
(see :mod:`hatch_wasm_oci.settings`). The layout is written to
``<out_dir>/<name>-<version>/`` (plus ``<name>-<version>.tar`` with ``tar = true``) only once
everything succeeded: a failed build leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hatch_wasm_oci import project_annotations as pa
from hatch_wasm_oci.componentize import BuildStepError, Log, componentize, qualified_world
from hatch_wasm_oci.errors import ConfigurationError, WasmOciError
from hatch_wasm_oci.layout import PackResult
from hatch_wasm_oci.settings import (
    CommandSource,
    ComponentizePySource,
    PrebuiltSource,
    WasmOciSettings,
    check_wasm_file,
)

__all__ = ["BuildOutput", "BuildStepError", "build_artifact", "layout_name", "produce_wasm"]


@dataclass(frozen=True)
class BuildOutput:
    """What a build wrote: the pack result (final paths), the component's bytes inside the layout,
    and whether componentize-py's result came from the cache (None for other sources)."""

    pack: PackResult
    component: Path
    annotations: Mapping[str, str]
    target: str | None
    from_cache: bool | None


def layout_name(name: str, version: str) -> str:
    """``<name>-<version>`` with the name escaped as in wheel file names (hatchling's rule)."""
    escaped = re.sub(r"[^\w\d.]+", "_", name)
    return f"{escaped}-{version}"


def _run_command(source: CommandSource, root: Path, where: str, log: Log, waiting: Log) -> None:
    shown = source.command if isinstance(source.command, str) else shlex.join(source.command)
    waiting(f"Running {shown}")
    try:
        result = subprocess.run(
            source.command if isinstance(source.command, str) else list(source.command),
            shell=isinstance(source.command, str),
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            check=False,
        )
    except OSError as exc:
        raise BuildStepError(f"{where}: cannot run {shown!r}: {exc.strerror}") from None
    output = result.stdout or ""
    if result.returncode != 0:
        lines = [line for line in output.splitlines() if line.strip()]
        last = f": {lines[-1].strip()}" if lines else ""
        raise BuildStepError(
            f"{where}: {shown!r} failed (exit status {result.returncode}){last}", output
        )
    for line in output.splitlines():
        if line.strip():
            log(line.rstrip())


def produce_wasm(
    settings: WasmOciSettings,
    *,
    root: Path,
    workdir: Path,
    exclude: Iterable[Path] = (),
    log: Log = print,
    waiting: Log = print,
) -> tuple[Path, bool | None]:
    """Produce the configured ``.wasm``; returns its path and whether it came from the cache."""
    source = settings.source
    if isinstance(source, ComponentizePySource):
        compiled = componentize(
            source,
            root=root,
            workdir=workdir,
            where=settings.key("componentize-py"),
            exclude=exclude,
            waiting=waiting,
            log=log,
        )
        return compiled.path, compiled.cached
    if isinstance(source, CommandSource):
        _run_command(source, root, settings.key("command"), log, waiting)
    assert isinstance(source, (CommandSource, PrebuiltSource))
    wasm = Path(source.path)
    wasm = wasm if wasm.is_absolute() else root / wasm
    if not wasm.is_file():
        after = " after running `command`" if isinstance(source, CommandSource) else ""
        raise ConfigurationError([f"{settings.key('path')}: {source.path!r} does not exist{after}"])
    problem = check_wasm_file(wasm)
    if problem:
        raise ConfigurationError([f"{settings.key('path')}: {problem}"])
    return wasm, None


def artifact_annotations(
    settings: WasmOciSettings,
    project: Mapping[str, Any],
    *,
    root: Path,
    version: str,
    created: str,
) -> dict[str, str]:
    """Derived ``[project]`` annotations, git revision and created; the user's table wins."""
    derived = pa.project_annotations(project, version=version)
    revision = pa.git_revision(root)
    if revision:
        derived[pa.REVISION] = revision
    derived[pa.CREATED] = created
    return pa.merge(derived, settings.annotations)


def embeddable_fields(annotations: Mapping[str, str], log: Log) -> dict[str, str]:
    """The wasm-metadata fields carried by ``annotations`` that wasm-tools would accept.

    A value it would reject (a license that is not an SPDX expression, a URL that is not
    absolute) stays an annotation only, with a notice.
    """
    from hatch_wasm_oci.wasm_metadata import normalize_field

    fields: dict[str, str] = {}
    for name, value in pa.metadata_fields(annotations).items():
        try:
            normalize_field(name, value)
        except WasmOciError as exc:
            log(f"Not embedding {name} in the component: {exc}")
            continue
        fields[name] = value
    return fields


def build_artifact(
    settings: WasmOciSettings,
    *,
    root: Path,
    project: Mapping[str, Any],
    name: str,
    version: str,
    out_dir: Path,
    exclude: Iterable[Path] = (),
    environ: Mapping[str, str] | None = None,
    log: Log = print,
    waiting: Log = print,
) -> BuildOutput:
    """Build the component described by ``settings`` into ``out_dir/<name>-<version>/``.

    ``project`` is the ``[project]`` table (``name``/``version`` are the resolved values).
    Raises WasmOciError subclasses (ConfigurationError, BuildStepError, ...) with one-line
    messages; on failure nothing new is left in ``out_dir``.
    """
    from hatch_wasm_oci.layout import pack
    from hatch_wasm_oci.oci_config import created_timestamp

    root = Path(root)
    out_dir = Path(out_dir)
    tags = settings.expand_tags(version)
    created = created_timestamp(environ)
    base = layout_name(name, version)
    annotations = artifact_annotations(
        settings, project, root=root, version=version, created=created
    )
    target = settings.target
    if target is None and isinstance(settings.source, ComponentizePySource):
        target = qualified_world(settings.source, root)

    made_out_dir = not out_dir.exists()
    exclude = [*exclude, out_dir]
    with tempfile.TemporaryDirectory(prefix="hatch-wasm-oci-") as work_name:
        work = Path(work_name)
        wasm, from_cache = produce_wasm(
            settings, root=root, workdir=work, exclude=exclude, log=log, waiting=waiting
        )
        component = work / f"{base}.wasm"
        fields = embeddable_fields(annotations, log) if settings.embed_metadata else {}
        if fields:
            from hatch_wasm_oci.wasm_metadata import embed_metadata

            embed_metadata(wasm, component, fields)
        else:
            shutil.copyfile(wasm, component)

        out_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{base}.", dir=out_dir))
        try:
            staged = pack(
                component,
                staging / base,
                tags=tags,
                annotations=annotations,
                target=target,
                created=created,
                tar=settings.tar,
            )
            final = out_dir / base
            final_tar = out_dir / f"{base}.tar"
            if final.exists():
                shutil.rmtree(final)
            os.replace(staged.layout, final)
            if staged.tar is not None:
                os.replace(staged.tar, final_tar)
            else:
                final_tar.unlink(missing_ok=True)
        except BaseException:
            if made_out_dir:
                shutil.rmtree(staging, ignore_errors=True)
                with contextlib.suppress(OSError):
                    out_dir.rmdir()
            raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    result = dataclasses.replace(
        staged, layout=final, tar=final_tar if staged.tar is not None else None
    )
    algorithm, hexdigest = result.layer.digest.split(":", 1)
    return BuildOutput(
        pack=result,
        component=final / "blobs" / algorithm / hexdigest,
        annotations=annotations,
        target=target,
        from_cache=from_cache,
    )
