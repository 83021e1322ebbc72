"""The build's SBOM and provenance, attached to the component's manifest as OCI referrers.

Both documents go into the layout beside the component (untagged ``index.json`` entries with
their ``artifactType``) before it is installed or archived, so the ``.tar`` holds them too and
the layout's digests stay what equal inputs give.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from hatch_wasm_oci.oci import media_types as mt
from hatch_wasm_oci.oci.layout import LayoutWriter, PackResult, write_tar
from hatch_wasm_oci.oci.referrers import add_to_layout, document_referrer
from hatch_wasm_oci.project.settings import CommandSource, ComponentizePySource, WasmOciSettings

SBOM_TITLE = "sbom.cdx.json"
PROVENANCE_TITLE = "provenance.intoto.json"


def wanted(settings: WasmOciSettings) -> tuple[bool, bool]:
    """``(sbom, provenance)``: each on when set, else on for componentize-py builds."""
    default = isinstance(settings.source, ComponentizePySource)
    sbom = default if settings.sbom is None else settings.sbom
    provenance = default if settings.provenance is None else settings.provenance
    return sbom, provenance


def attach(
    packed: PackResult,
    settings: WasmOciSettings,
    *,
    root: Path,
    name: str,
    version: str,
    project: Mapping[str, Any],
    wasm: Path,
    exclude: Iterable[Path],
    created: str,
    environ: Mapping[str, str] | None,
    tar: bool,
) -> PackResult:
    """Add the wanted documents to ``packed``'s layout; then write its tar when ``tar``."""
    from hatch_wasm_oci.project.sbom import source_files

    sbom, provenance = wanted(settings)
    exclude = list(exclude)
    documents: list[tuple[str, str, bytes, str]] = []
    if isinstance(settings.source, CommandSource):  # the command's output is no input
        exclude.append(root / settings.source.path)
    if sbom or provenance:
        sources = source_files(root, exclude)
    if sbom:
        from hatch_wasm_oci.project.sbom import SbomInputs, build_sbom, project_license

        data = build_sbom(
            SbomInputs(
                name=name,
                version=version,
                layer_digest=packed.layer.digest,
                created=created,
                settings=settings,
                root=root,
                wasm=wasm,
                sources=sources,
                license=project_license(project),
            )
        )
        documents.append((mt.SBOM, SBOM_TITLE, data, mt.SBOM))
    if provenance:
        from hatch_wasm_oci.project.provenance import ProvenanceInputs, provenance_document

        key = None
        distributions: list[str] = []
        if isinstance(settings.source, ComponentizePySource):
            from hatch_wasm_oci.project.componentize import input_key, visible_distributions

            distributions = visible_distributions()  # recorded as the key covers them
            key = input_key(settings.source, root, exclude=exclude, distributions=distributions)
        env = os.environ if environ is None else environ
        layer_type, data = provenance_document(
            ProvenanceInputs(
                subject_name=packed.layer.annotations.get(
                    "org.opencontainers.image.title", f"{name}.wasm"
                ),
                manifest_digest=packed.manifest.digest,
                settings=settings,
                root=root,
                sources=sources,
                compile_key=key,
                distributions=distributions,
                source_date_epoch=env.get("SOURCE_DATE_EPOCH") or None,
                created=created,
            )
        )
        documents.append((mt.PROVENANCE, PROVENANCE_TITLE, data, layer_type))
    if documents:
        stamp = {"org.opencontainers.image.created": created}
        with LayoutWriter(packed.layout) as writer:
            for artifact_type, title, data, layer_type in documents:
                referrer = document_referrer(
                    packed.manifest,
                    artifact_type,
                    data,
                    title=title,
                    annotations=stamp,
                    layer_media_type=layer_type,
                )
                add_to_layout(writer, referrer, data)
            writer.commit()
    if tar:
        return dataclasses.replace(packed, tar=write_tar(packed.layout, created))
    return packed
