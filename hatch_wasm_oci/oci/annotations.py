"""Manifest annotations: the ``org.opencontainers.image.*`` keys, what a component's embedded
wasm-metadata contributes (as ``wkg publish`` maps it), and the value rules the image spec sets.

``pack`` (and so ``hatch build``) refuses a value that breaks a rule; ``verify`` reports the
same problems with the same words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from packaging.licenses import InvalidLicenseExpression, canonicalize_license_expression
from packaging.version import InvalidVersion, Version

from hatch_wasm_oci.errors import WasmOciError
from hatch_wasm_oci.oci.config import SEMVER_PATTERN, is_rfc3339
from hatch_wasm_oci.oci.tags import version_tag

if TYPE_CHECKING:
    from hatch_wasm_oci.wasm.binary import WasmMetadata

PREFIX = "org.opencontainers.image."
TITLE = PREFIX + "title"
VERSION = PREFIX + "version"
DESCRIPTION = PREFIX + "description"
LICENSES = PREFIX + "licenses"
AUTHORS = PREFIX + "authors"
SOURCE = PREFIX + "source"
URL = PREFIX + "url"
DOCUMENTATION = PREFIX + "documentation"
REVISION = PREFIX + "revision"
CREATED = PREFIX + "created"
REF_NAME = PREFIX + "ref.name"

#: The annotation each wasm-metadata field becomes (the component's name is its title).
FROM_METADATA = {
    "name": TITLE,
    "authors": AUTHORS,
    "description": DESCRIPTION,
    "licenses": LICENSES,
    "source": SOURCE,
    "homepage": URL,
    "revision": REVISION,
    "version": VERSION,
}
URL_KEYS = (SOURCE, URL, DOCUMENTATION)


def metadata_annotations(metadata: WasmMetadata) -> dict[str, str]:
    """The annotations a component's embedded wasm-metadata gives, as ``wkg publish`` maps them."""
    found: dict[str, str] = {}
    for field, key in FROM_METADATA.items():
        value = getattr(metadata, field)
        if isinstance(value, str) and value.strip():
            found[key] = value
    return found


def merge_embedded(
    embedded: Mapping[str, str], explicit: Mapping[str, str]
) -> tuple[dict[str, str], list[str]]:
    """``embedded`` overridden by ``explicit``, and a warning for each value that differs."""
    warnings = [
        f"annotation {key}={explicit[key][:200]!r} overrides the component's embedded "
        f"metadata {value[:200]!r}"
        for key, value in sorted(embedded.items())
        if key in explicit and explicit[key] != value
    ]
    return {**embedded, **explicit}, warnings


def _tag_version(tag: str) -> Version | str | None:
    """The version a SemVer tag claims (what wkg resolves), or None for any other tag."""
    if not re.fullmatch(SEMVER_PATTERN, tag):
        return None
    try:
        return Version(tag)
    except InvalidVersion:
        return tag


def annotation_problems(annotations: Mapping[str, str], tags: Iterable[str] = ()) -> list[str]:
    """Every manifest annotation value that breaks the image spec's rules, one sentence each.

    ``created`` is RFC 3339, ``licenses`` an SPDX expression, URLs absolute, ``version`` the
    version every SemVer tag spells (the tags wkg resolves), and ``ref.name`` (an index key)
    is not used.
    """
    problems: list[str] = []
    if REF_NAME in annotations:
        problems.append(f"annotation {REF_NAME} is reserved for index.json; use a tag instead")
    created = annotations.get(CREATED)
    if created is not None and not is_rfc3339(created):
        problems.append(f"annotation {CREATED}={created[:80]!r} is not an RFC 3339 time")
    licenses = annotations.get(LICENSES)
    if licenses is not None:
        try:
            canonicalize_license_expression(licenses)
        except InvalidLicenseExpression:
            problems.append(
                f"annotation {LICENSES}={licenses[:200]!r} is not an SPDX license expression"
            )
    for key in URL_KEYS:
        value = annotations.get(key)
        if value is not None:
            parts = urlsplit(value)
            if not (parts.scheme and parts.netloc):
                problems.append(f"annotation {key}={value[:200]!r} is not an absolute URL")
    version = annotations.get(VERSION)
    if version is not None:
        for tag in disagreeing_tags(version, tags):
            problems.append(f"annotation {VERSION}={version[:80]!r} disagrees with tag {tag!r}")
    return problems


def disagreeing_tags(version: str, tags: Iterable[str]) -> list[str]:
    """The SemVer tags among ``tags`` that spell a version other than ``version``."""
    try:
        wanted: Version | str = Version(version)
    except InvalidVersion:
        wanted = version
    found = []
    for tag in tags:
        spelled = _tag_version(tag)
        if spelled is not None and spelled != wanted and tag != version:
            found.append(tag)
    return found


def version_hint(version: str, tags: Iterable[str], *, embedded: bool) -> str:
    """What to do when ``version`` disagrees with one of ``tags`` (empty when it does not):
    use the tag that spells it, or, for a version ``embedded`` in the component, annotate
    the tag's version instead (``pack --annotation``)."""
    wrong = disagreeing_tags(version, tags)
    if not wrong:
        return ""
    try:
        tag_it = f"tag it {version_tag(version).tag!r}"
    except WasmOciError:
        tag_it = "use a tag that spells it"
    if embedded:
        return (
            f"; the component's embedded version is {version[:80]!r}: {tag_it}, or pass "
            f"--annotation {VERSION}={wrong[0]}"
        )
    return f"; {tag_it}, or set the {VERSION} annotation to the tag's version"
