"""``[project]`` metadata as ``org.opencontainers.image.*`` annotations, plus the git revision."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hatch_wasm_oci.oci.annotations import (  # the keys are the artifact model's
    AUTHORS,
    CREATED,
    DESCRIPTION,
    DOCUMENTATION,
    FROM_METADATA,
    LICENSES,
    PREFIX,
    REVISION,
    SOURCE,
    TITLE,
    URL,
    VERSION,
)

__all__ = ["CREATED", "PREFIX", "REVISION"]

#: ``[project.urls]`` labels (compared case- and punctuation-insensitively) per annotation.
URL_LABELS = {
    SOURCE: ("source", "repository", "sourcecode", "code"),
    URL: ("homepage", "home"),
    DOCUMENTATION: ("documentation", "docs"),
}

#: Component metadata field fed by each annotation (see ``wasm_metadata.embed_metadata``):
#: the reverse of the artifact model's mapping (the title is the component's own name).
METADATA_FIELDS = {key: field for field, key in FROM_METADATA.items()}


def _people(entries: object) -> list[str]:
    people: list[str] = []
    if not isinstance(entries, list):
        return people
    for entry in entries:
        if not isinstance(entry, Mapping):
            continue
        name = str(entry.get("name", "")).strip()
        email = str(entry.get("email", "")).strip()
        if name and email:
            people.append(f"{name} <{email}>")
        elif name or email:
            people.append(name or email)
    return people


def _license(value: object) -> str | None:
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, Mapping):
        text = value.get("text")
        if isinstance(text, str) and text.strip():
            return " ".join(text.split())
    return None


def _normalize_label(label: str) -> str:
    return "".join(ch for ch in label.lower() if ch.isalnum())


def _urls(urls: object) -> dict[str, str]:
    found: dict[str, str] = {}
    if not isinstance(urls, Mapping):
        return found
    labelled = {_normalize_label(str(k)): v for k, v in urls.items() if isinstance(v, str)}
    for annotation, labels in URL_LABELS.items():
        for label in labels:
            if label in labelled:
                found[annotation] = labelled[label]
                break
    return found


def project_annotations(
    project: Mapping[str, Any], *, version: str | None = None
) -> dict[str, str]:
    """Annotations derived from a ``[project]`` table (``version`` overrides a dynamic one).

    name -> title, version, description, license (SPDX expression or table text) -> licenses,
    authors and maintainers -> authors (``Name <email>``, comma separated), urls Source or
    Repository -> source, Homepage -> url, Documentation -> documentation.
    """
    annotations: dict[str, str] = {}
    name = project.get("name")
    if isinstance(name, str) and name:
        annotations[TITLE] = name
    resolved = version if version is not None else project.get("version")
    if isinstance(resolved, str) and resolved:
        annotations[VERSION] = resolved
    description = project.get("description")
    if isinstance(description, str) and description.strip():
        annotations[DESCRIPTION] = " ".join(description.split())
    licenses = _license(project.get("license"))
    if licenses:
        annotations[LICENSES] = licenses
    people = _people(project.get("authors")) + _people(project.get("maintainers"))
    if people:
        annotations[AUTHORS] = ", ".join(dict.fromkeys(people))
    annotations.update(_urls(project.get("urls")))
    return annotations


def git_revision(root: Path | str) -> str | None:
    """The commit checked out at ``root`` when it is inside a git work tree, else None."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    revision = result.stdout.strip()
    if result.returncode != 0 or len(revision) < 40:
        return None
    return revision


def metadata_fields(annotations: Mapping[str, str]) -> dict[str, str]:
    """The wasm-metadata fields (authors, description, ...) carried by ``annotations``."""
    return {
        field: annotations[key] for key, field in METADATA_FIELDS.items() if annotations.get(key)
    }
