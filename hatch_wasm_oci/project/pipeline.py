"""The Hatch-free build pipeline: produce the ``.wasm``, stamp its metadata, pack the OCI layout.

The component comes from componentize-py, a user ``command`` or a prebuilt ``path``
(see :mod:`hatch_wasm_oci.project.settings`). The layout is staged in a temporary directory and
moved to ``<out_dir>/<name>-<version>/`` (plus ``<name>-<version>.tar`` with ``tar = true``)
only once everything succeeded: a failed build leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import re
import shlex
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hatch_wasm_oci.errors import ConfigurationError, LayoutError, WasmOciError
from hatch_wasm_oci.files.atomic import remove_stale, staging_prefix
from hatch_wasm_oci.files.lock import lock_for
from hatch_wasm_oci.oci.layout import PackResult, blob_relpath
from hatch_wasm_oci.project import annotations as pa
from hatch_wasm_oci.project.componentize import (
    BuildStepError,
    Log,
    componentize,
    run_step,
)
from hatch_wasm_oci.project.registry_cache import (
    CACHE_REPOSITORY_ENV,
    RegistryCache,
    cache_repository,
    validate_cache_repository,
)
from hatch_wasm_oci.project.settings import (
    CommandSource,
    ComponentizePySource,
    PrebuiltSource,
    WasmOciSettings,
    wasm_path_problem,
)

__all__ = [
    "BuildOutput",
    "BuildStepError",
    "build_artifact",
    "install_artifact",
    "layout_name",
    "produce_wasm",
]


@dataclass(frozen=True)
class BuildOutput:
    """What a build wrote: the pack result (final paths), the component's bytes inside the layout,
    and whether componentize-py's result came from the cache (None for other sources)."""

    pack: PackResult
    component: Path
    annotations: Mapping[str, str]
    target: str | None
    from_cache: bool | None


def _now() -> str:
    """The current time, RFC 3339 UTC to the second (``created`` of a non-reproducible build)."""
    return datetime.now(tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def layout_name(name: str, version: str) -> str:
    """``<name>-<version>`` with the name escaped as in wheel file names (hatchling's rule)."""
    escaped = re.sub(r"[^\w\d.]+", "_", name)
    return f"{escaped}-{version}"


def _run_command(
    source: CommandSource, root: Path, where: str, log: Log, waiting: Log, verbosity: int
) -> None:
    shown = source.command if isinstance(source.command, str) else shlex.join(source.command)
    waiting(f"Running {shown}")
    run_step(source.command, cwd=root, where=where, shown=repr(shown), log=log, verbosity=verbosity)


def produce_wasm(
    settings: WasmOciSettings,
    *,
    root: Path,
    workdir: Path,
    exclude: Iterable[Path] = (),
    log: Log = print,
    waiting: Log = print,
    warn: Log | None = None,
    verbosity: int = 0,
    environ: Mapping[str, str] | None = None,
    use_cache: bool = True,
) -> tuple[Path, bool | None]:
    """Produce the configured ``.wasm``; returns its path and whether it came from the cache.

    The compiler's or command's output is streamed to ``log`` line by line; ``verbosity`` is
    Hatch's (below 0: not streamed; 1 and above: the command line too). ``use_cache`` false
    compiles afresh (no local or registry compile cache)."""
    source = settings.source
    if isinstance(source, ComponentizePySource):
        env = os.environ if environ is None else environ
        repository = cache_repository(settings.cache_repository, env)
        problem = validate_cache_repository(repository) if repository else None
        if problem:
            (warn or log)(f"Not using the registry cache ({CACHE_REPOSITORY_ENV}): {problem}")
            repository = None
        compiled = componentize(
            source,
            root=root,
            workdir=workdir,
            where=settings.key("componentize-py"),
            exclude=exclude,
            use_cache=use_cache,
            registry=(
                RegistryCache(repository, env, settings.cache_signed)
                if repository and use_cache
                else None
            ),
            waiting=waiting,
            log=log,
            warn=warn,
            verbosity=verbosity,
        )
        return compiled.path, compiled.cached
    if isinstance(source, CommandSource):
        _run_command(source, root, settings.key("command"), log, waiting, verbosity)
    assert isinstance(source, (CommandSource, PrebuiltSource))
    after = " after running `command`" if isinstance(source, CommandSource) else ""
    problem = wasm_path_problem(root, source.path, after=after)
    if problem:
        raise ConfigurationError([f"{settings.key('path')}: {problem}"])
    wasm = Path(source.path)
    wasm = wasm if wasm.is_absolute() else root / wasm
    return wasm, None


def verified_target(settings: WasmOciSettings, root: Path, wasm: Path, warn: Log) -> str | None:
    """The ``component.target`` to record: an explicit ``target`` only if the component targets
    it (else ConfigurationError naming the first missing import or export); for componentize-py
    the configured world when the component targets it, else null with a one-line warning.

    WIT comes from componentize-py's ``wit-path``, else the project's ``wit/`` directory.
    """
    from hatch_wasm_oci.project.world import default_target, verify_target

    source = settings.source
    if isinstance(source, ComponentizePySource):
        wit_paths = [root / wit for wit in source.wit_paths]
    else:
        wit_paths = [root / "wit"] if (root / "wit").is_dir() else []
    if settings.target is not None:
        problem = verify_target(settings.target, wit_paths, wasm)
        if problem:
            raise ConfigurationError([f"{settings.key('target')}: {problem}"])
        return settings.target
    if not isinstance(source, ComponentizePySource):
        return None
    target, warning = default_target(wit_paths, source.world, wasm)
    if warning:
        warn(warning)
    return target


def artifact_annotations(
    settings: WasmOciSettings,
    project: Mapping[str, Any],
    *,
    root: Path,
    version: str,
    created: str,
    log: Log = print,
) -> dict[str, str]:
    """Derived ``[project]`` annotations, git revision and created; the user's table wins.

    A derived value the image spec rejects (``license = {text = "Proprietary"}`` is valid
    ``[project]`` metadata but no SPDX expression; a relative URL) is left out with a notice:
    the project is not wrong, the annotation would be. The user's own table is not filtered.
    """
    from hatch_wasm_oci.oci.annotations import annotation_problems

    derived: dict[str, str] = {}
    for key, value in pa.project_annotations(project, version=version).items():
        problems = annotation_problems({key: value})
        if problems:
            log(f"Leaving {key} out of the annotations: {problems[0]}")
        else:
            derived[key] = value
    revision = pa.git_revision(root)
    if revision:
        derived[pa.REVISION] = revision
    derived[pa.CREATED] = created
    return {**derived, **settings.annotations}


def embeddable_fields(annotations: Mapping[str, str], log: Log) -> dict[str, str]:
    """The wasm-metadata fields carried by ``annotations`` that wasm-tools would accept.

    A value it would reject (a license that is not an SPDX expression, a URL that is not
    absolute) stays an annotation only, with a notice.
    """
    from hatch_wasm_oci.wasm.metadata import normalize_field

    fields: dict[str, str] = {}
    for name, value in pa.metadata_fields(annotations).items():
        try:
            normalize_field(name, value)
        except WasmOciError as exc:
            log(f"Not embedding {name} in the component: {exc}")
            continue
        fields[name] = value
    return fields


def _layer_path(packed: PackResult) -> Path:
    return packed.layout / blob_relpath(packed.layer.digest)


def _put(source: Path, destination: Path) -> None:
    """Move ``source`` (a file or directory) to ``destination``, replacing what is there.

    The new content arrives beside ``destination`` first (copied when it lives on another file
    system), so an earlier ``destination`` is swapped out only once the new one is complete.
    The holder directory is named ``.NAME.PID.*``: one a killed build left is removed here.
    """
    lock = lock_for(destination)  # the lock layout writers of ``destination`` take
    lock.acquire()
    try:
        remove_stale(destination.parent, destination.name, older_than=None)
        _put_locked(source, destination)
    finally:
        lock.release()


def _put_locked(source: Path, destination: Path) -> None:
    holder = Path(tempfile.mkdtemp(prefix=staging_prefix(destination.name), dir=destination.parent))
    old = holder / "old"
    try:
        incoming = holder / "new"
        try:
            os.replace(source, incoming)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            if source.is_dir():
                shutil.copytree(source, incoming)
            else:
                shutil.copyfile(source, incoming)
        if destination.is_dir() and not destination.is_symlink():
            os.replace(destination, old)
        try:
            os.replace(incoming, destination)
        except OSError:
            if old.exists() and not destination.exists():
                os.replace(old, destination)
            raise
    finally:
        shutil.rmtree(holder, ignore_errors=True)


def install_artifact(staged: BuildOutput, out_dir: Path) -> BuildOutput:
    """Move a staged layout (and its tar) into ``out_dir``, replacing an earlier build of it.

    A stale ``<name>-<version>.tar`` goes when the new build has none. On failure nothing new is
    left in ``out_dir`` (a LayoutError names the path that could not be written).
    """
    out_dir = Path(out_dir)
    made_out_dir = not out_dir.exists()
    final = out_dir / staged.pack.layout.name
    final_tar = out_dir / f"{final.name}.tar"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        _put(staged.pack.layout, final)
        if staged.pack.tar is not None:
            _put(staged.pack.tar, final_tar)
        else:
            final_tar.unlink(missing_ok=True)
    except OSError as exc:
        if made_out_dir:
            shutil.rmtree(out_dir, ignore_errors=True)
        raise LayoutError(
            f"cannot write {exc.filename or out_dir}: {exc.strerror or exc}"
        ) from None
    except BaseException:
        if made_out_dir:
            shutil.rmtree(out_dir, ignore_errors=True)
        raise
    placed = dataclasses.replace(
        staged.pack, layout=final, tar=final_tar if staged.pack.tar is not None else None
    )
    return dataclasses.replace(staged, pack=placed, component=_layer_path(placed))


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
    install: bool = True,
    reproducible: bool = True,
    verbosity: int = 0,
    warn: Log | None = None,
    use_cache: bool = True,
) -> BuildOutput:
    """Build the component described by ``settings`` into ``out_dir/<name>-<version>/``.

    ``created`` is SOURCE_DATE_EPOCH (else hatchling's fixed default) when ``reproducible``, the
    current time otherwise.

    ``project`` is the ``[project]`` table (``name``/``version`` are the resolved values).
    The layout is staged in a temporary directory and installed (:func:`install_artifact`) only
    once everything succeeded: on failure nothing new is left in ``out_dir`` and an earlier
    build there stays as it was. With ``install=False``, ``out_dir`` is a staging directory the
    caller owns: the layout is written straight into it, for the caller to install later.
    Raises WasmOciError subclasses (ConfigurationError, BuildStepError, ...) with one-line
    messages.
    """
    from hatch_wasm_oci.oci.config import created_timestamp
    from hatch_wasm_oci.oci.layout import pack
    from hatch_wasm_oci.project.wit_deps import fetch_wit_dependencies

    root = Path(root)
    out_dir = Path(out_dir)
    tags = settings.expand_tags(version)
    if any("{version" in template for template in settings.tags):
        from hatch_wasm_oci.oci.tags import version_tag

        note = version_tag(version).note
        if note:
            log(note)
    fetch_wit_dependencies(
        settings, root=root, environ=os.environ if environ is None else environ, log=log
    )
    created = created_timestamp(environ) if reproducible else _now()
    base = layout_name(name, version)
    annotations = artifact_annotations(
        settings, project, root=root, version=version, created=created, log=log
    )

    with tempfile.TemporaryDirectory(prefix="hatch-wasm-oci-") as work_name:
        work = Path(work_name)
        wasm, from_cache = produce_wasm(
            settings,
            root=root,
            workdir=work,
            exclude=[*exclude, out_dir],
            log=log,
            waiting=waiting,
            warn=warn,
            verbosity=verbosity,
            environ=environ,
            use_cache=use_cache,
        )
        target = verified_target(settings, root, wasm, warn or log)
        component = work / f"{base}.wasm"
        fields = embeddable_fields(annotations, log) if settings.embed_metadata else {}
        if fields:
            from hatch_wasm_oci.wasm.metadata import embed_metadata

            embed_metadata(wasm, component, fields)
        else:
            shutil.copyfile(wasm, component)
        if settings.check == "instantiate":
            from hatch_wasm_oci.runtime.check import check_instantiates

            log("Checking that the component instantiates on a WASI 0.2 host")
            check_instantiates(component, f"{settings.key('check')}: {component.name}")
        staging = work / "staging" if install else out_dir
        staging.mkdir(parents=True, exist_ok=True)
        from hatch_wasm_oci.project import attestations

        attaching = any(attestations.wanted(settings))
        packed = pack(
            component,
            staging / base,
            tags=tags,
            annotations=annotations,
            target=target,
            created=created,
            tar=settings.tar and not attaching,
        )
        if attaching:  # SBOM and provenance as referrers, before the tar is written
            packed = attestations.attach(
                packed,
                settings,
                root=root,
                name=name,
                version=version,
                project=project,
                wasm=component,
                exclude=[*exclude, out_dir],
                created=created,
                environ=environ,
                tar=settings.tar,
            )
        staged = BuildOutput(
            pack=packed,
            component=_layer_path(packed),
            annotations=annotations,
            target=target,
            from_cache=from_cache,
        )
        if not install:
            return staged
        wit_staged = _wit_package(settings, root, version, annotations, created, work, log)
        installed = install_artifact(staged, out_dir)
        if wit_staged is not None:
            install_artifact(wit_staged, out_dir)
        return installed


def _wit_package(
    settings: WasmOciSettings,
    root: Path,
    version: str,
    annotations: Mapping[str, str],
    created: str,
    work: Path,
    log: Log,
) -> BuildOutput | None:
    """The staged layout of the ``wit-package`` option, if set."""
    from hatch_wasm_oci.project.wit_package import build_wit_package_layout

    packed = build_wit_package_layout(
        settings,
        root=root,
        version=version,
        annotations=annotations,
        fields=embeddable_fields(annotations, lambda _: None),
        created=created,
        staging=work / "wit-package",
        log=log,
    )
    if packed is None:
        return None
    return BuildOutput(packed, _layer_path(packed), annotations, None, None)
