"""Is a project's build reproducible? Build it twice from scratch (no compile cache) and compare,
or rebuild it and compare with a published artifact (a registry reference or an OCI layout);
when the manifest digests differ, say in which sections the components differ."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hatch_wasm_oci.errors import ConfigurationError, LayoutError
from hatch_wasm_oci.project.componentize import Log
from hatch_wasm_oci.project.settings import (
    HOOK_TABLE,
    TARGET_TABLE,
    WasmOciSettings,
    parse_settings,
)

if TYPE_CHECKING:
    from hatch_wasm_oci.oci.layout_reader import OciLayout
    from hatch_wasm_oci.project.record import Inputs


@dataclass(frozen=True)
class ArtifactView:
    """What a comparison looks at in one artifact: where it is from, its manifest digest, its
    config (parsed) and its component."""

    source: str
    digest: str
    config: Mapping[str, Any]
    component: Path
    layout: Path | None = None


@dataclass(frozen=True)
class Comparison:
    """Two artifacts compared: the expected one (the first build, or the published artifact),
    the rebuilt one, and where they differ (empty when the manifest digests agree)."""

    expected: str
    built: str
    differences: tuple[str, ...]
    #: What the expected artifact's provenance says changed (empty without a comparison).
    record: tuple[str, ...] = ()
    #: Remarks for the log (stderr): e.g. that the artifact has no provenance.
    notes: tuple[str, ...] = ()

    @property
    def reproducible(self) -> bool:
        """Whether both have the same manifest digest (then every byte is the same)."""
        return self.expected == self.built


def compare(expected: ArtifactView, built: ArtifactView) -> Comparison:
    """Compare two artifacts: equal digests, else the component sections that differ, else the
    config fields (or, when those agree too, the manifest)."""
    from hatch_wasm_oci.wasm.diff import report

    if expected.digest == built.digest:
        return Comparison(expected.digest, built.digest, ())
    differences = tuple(report(expected.component.read_bytes(), built.component.read_bytes()))
    if not differences:
        fields = sorted(
            name
            for name in set(expected.config) | set(built.config)
            if expected.config.get(name) != built.config.get(name)
        )
        differences = (
            (f"the components are identical; the configs differ in {', '.join(fields)}",)
            if fields
            else ("the components and configs are identical; the manifests differ",)
        )
    return Comparison(expected.digest, built.digest, differences)


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


def cold_build(
    root: Path,
    out_dir: Path,
    *,
    version: str | None = None,
    environ: Mapping[str, str] | None = None,
    log: Log = print,
    warn: Log | None = None,
) -> ArtifactView:
    """Build the project at ``root`` into ``out_dir`` from scratch: no local or registry compile
    cache, the layout only (nothing installed into ``dist/``)."""
    from hatch_wasm_oci.oci.layout import blob_relpath
    from hatch_wasm_oci.project.pipeline import build_artifact

    root = Path(root).resolve()
    settings, project, name, version = load_project(root, version)
    built = build_artifact(
        settings,
        root=root,
        project=project,
        name=name,
        version=version,
        out_dir=out_dir,
        exclude=[root / "dist"],
        environ=environ,
        log=log,
        waiting=log,
        warn=warn,
        install=False,
        use_cache=False,
    )
    digest = built.pack.manifest.digest
    config = json.loads((built.pack.layout / blob_relpath(built.pack.config.digest)).read_bytes())
    return ArtifactView(
        f"the build in {out_dir}", digest, config, built.component, built.pack.layout
    )


def check_reproducible(
    root: Path,
    *,
    version: str | None = None,
    environ: Mapping[str, str] | None = None,
    log: Log = print,
    warn: Log | None = None,
) -> Comparison:
    """Build the project at ``root`` twice from scratch (:func:`cold_build`) in a temporary
    directory and compare the two artifacts."""
    with tempfile.TemporaryDirectory(prefix="hatch-wasm-oci-reproduce-") as scratch:
        first, second = (
            cold_build(
                root, Path(scratch) / label, version=version, environ=environ, log=log, warn=warn
            )
            for label in ("first", "second")
        )
        return compare(first, second)


def check_against(
    root: Path,
    reference: str,
    *,
    version: str | None = None,
    environ: Mapping[str, str] | None = None,
    plain_http: bool = False,
    ca_file: Path | None = None,
    log: Log = print,
    warn: Log | None = None,
) -> Comparison:
    """Rebuild the project at ``root`` from scratch and compare it with the artifact that
    ``reference`` names: an OCI layout (``DIR`` or ``DIR:TAG``) or a registry reference
    (``REPO:TAG``, ``REPO@sha256:...``; pulled with its referrers into a temporary layout,
    every blob verified). When the digests differ and the artifact has a provenance
    referrer, ``record`` says which recorded build inputs changed; junk is a LayoutError."""
    from hatch_wasm_oci.registry.pull import pull

    with tempfile.TemporaryDirectory(prefix="hatch-wasm-oci-reproduce-") as scratch:
        expected = _from_layout(reference)
        if expected is None:
            pulled = pull(
                reference, Path(scratch) / "pulled", plain_http=plain_http, ca_file=ca_file,
                environ=environ, referrers=True,
            )  # fmt: skip
            from hatch_wasm_oci.oci.layout_reader import OciLayout

            view = _view(OciLayout.open(pulled.layout), pulled.digest, reference)
            expected = dataclasses.replace(view, source=f"{reference}@{pulled.digest}")
        recorded = _recorded(expected, reference)
        built = cold_build(
            root, Path(scratch) / "built", version=version, environ=environ, log=log, warn=warn
        )
        result = compare(expected, built)
        if result.reproducible:
            return result
        if recorded is None:
            note = f"{reference} has no provenance; comparing the components only"
            return dataclasses.replace(result, notes=(note,))
        return dataclasses.replace(result, record=record_lines(recorded, built, reference))


def _recorded(view: ArtifactView, reference: str) -> Inputs | None:
    """The inputs REF's provenance records (None without one); LayoutError on junk."""
    from hatch_wasm_oci.project.record import find_provenance

    if view.layout is None:
        return None
    return find_provenance(view.layout, view.digest, reference)


def record_lines(recorded: Inputs, built: ArtifactView, reference: str) -> tuple[str, ...]:
    """What the provenance says about a difference: which recorded inputs changed, or that
    none did (the compiler is not deterministic here)."""
    from hatch_wasm_oci.project.record import changed_inputs, find_provenance

    rebuilt = None if built.layout is None else find_provenance(
        built.layout, built.digest, "the rebuild"
    )  # fmt: skip
    head = f"{reference}'s provenance (unsigned: it says what its builder claimed)"
    if rebuilt is None:
        return (f"{head} cannot be compared: the rebuild wrote none (provenance = false?)",)
    changed = changed_inputs(recorded, rebuilt)
    if not changed:
        return (
            f"{head} lists the same inputs as the rebuild: the compiler is not deterministic here",
        )
    return (f"{head}: inputs that changed:", *(f"  {line}" for line in changed))


def _from_layout(reference: str) -> ArtifactView | None:
    """The artifact in the layout ``DIR`` or ``DIR:TAG`` names (None when it names no
    directory): the only manifest, else the tag ``latest``; every blob read is verified."""
    from hatch_wasm_oci.oci.layout_reader import OciLayout

    path, tag = Path(reference), None
    if not path.is_dir():
        directory, sep, tag = reference.rpartition(":")
        if not (sep and directory and "/" not in tag and Path(directory).is_dir()):
            return None
        path = Path(directory)
    layout = OciLayout.open(path)
    if tag is None:
        digests = {d.digest for d in layout.artifacts()}
        if len(digests) == 1:
            tag = next(iter(digests))
        elif "latest" in layout.tags():
            tag = "latest"
        else:
            known = ", ".join(sorted(layout.tags())) or "none"
            raise LayoutError(f"{reference}: several manifests; name one as {path}:TAG ({known})")
    return _view(layout, tag, reference)


def _view(layout: OciLayout, tag: str, reference: str) -> ArtifactView:
    """The artifact ``tag`` (a tag or digest) names in ``layout``, its layer verified."""
    manifest_bytes = layout.manifest_bytes(tag)
    digest = "sha256:" + hashlib.sha256(manifest_bytes).hexdigest()
    layer = layout.wasm_manifest(tag).layer
    if layout.blob_digest(layer) != layer.digest:
        raise LayoutError(f"{layout.path}: blob {layer.digest} does not match its digest")
    component = layout.blob_path(layer.digest)
    return ArtifactView(f"{reference}@{digest}", digest, layout.config(tag), component, layout.path)
