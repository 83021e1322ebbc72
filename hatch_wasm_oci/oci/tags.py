"""OCI tag rules: the tag grammar and the mapping from a PEP 440 version to a tag.

wkg (and every SemVer resolver) only sees tags that parse as SemVer 2, so a version maps to its
SemVer spelling where it has one:

=====================  ==================  ==========================================
PEP 440 version        tag                 note
=====================  ==================  ==========================================
``1.2.3``              ``1.2.3``
``1.2`` / ``2024.11``  ``1.2.0``           missing parts are ``.0``
``1``                  ``1.0.0``
``1.2.3a1``            ``1.2.3-a.1``       also ``b``; ``alpha``/``beta``/``c`` normalise
``1.2.3rc1``           ``1.2.3-rc.1``
``1.2.3.dev4``         ``1.2.3-dev.4``
``1.2.3rc1.dev4``      ``1.2.3-rc.1.dev.4``
``1.2.3.post1``        ``1.2.3.post1``     no SemVer form (it would sort before 1.2.3)
``1.2.3+local.7``      ``1.2.3_local.7``   no SemVer form (``+`` is not a tag character)
``1.2.3.4``            ``1.2.3.4``         no SemVer form (four parts)
``1!2.0``              refused             an epoch has no tag spelling
=====================  ==================  ==========================================

A version without a SemVer form still gets a valid OCI tag, with a one-line note that SemVer
resolvers will not see it. The exact version belongs in ``org.opencontainers.image.version``.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from packaging.version import InvalidVersion, Version

from hatch_wasm_oci.errors import WasmOciError

#: The distribution spec's tag grammar: what a registry accepts in a URL.
TAG_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
#: The image spec's ``org.opencontainers.image.ref.name`` grammar (alphanumeric runs joined by
#: one separator, or ``--``), which a tag must also follow to be stored in an image layout.
REF_NAME_PATTERN = re.compile(r"[A-Za-z0-9]+(?:(?:[._-]|--)[A-Za-z0-9]+)*")


def is_valid_tag(tag: str) -> bool:
    """Whether ``tag`` is a tag a registry accepts and an image layout may hold (``_x`` is not)."""
    return bool(TAG_PATTERN.fullmatch(tag) and REF_NAME_PATTERN.fullmatch(tag))


class VersionTag(NamedTuple):
    """The tag for a version; ``note`` says why SemVer resolvers (wkg) will not see it."""

    tag: str
    note: str | None = None


def validate_tag(tag: str) -> str:
    """Return ``tag`` if it follows both OCI grammars (see :func:`is_valid_tag`)."""
    if not isinstance(tag, str) or not is_valid_tag(tag):
        raise WasmOciError(
            f"invalid OCI tag {tag!r}: a tag is 1-128 characters of letters, digits, '_', '.' "
            "and '-', starts and ends with a letter or digit, and has no two of '_', '.', '-' "
            "in a row (but '--')"
        )
    return tag


def _unseen(tag: str, why: str) -> VersionTag:
    return VersionTag(
        validate_tag(tag),
        f"tag {tag!r} is not SemVer ({why}); wkg and other SemVer resolvers will not see it",
    )


def version_tag(version: str) -> VersionTag:
    """The tag for a PEP 440 ``version`` (see the table in this module's docstring)."""
    if "!" in version:
        raise WasmOciError(
            f"version {version!r} has an epoch ('!'), which no OCI tag can spell; set explicit tags"
        )
    try:
        parsed = Version(version)
    except InvalidVersion:
        return _unseen(version.replace("+", "_"), "not a PEP 440 version")
    if parsed.local is not None:
        return _unseen(str(parsed).replace("+", "_"), "a local version")
    if parsed.post is not None:
        return _unseen(str(parsed), "a post-release")
    if len(parsed.release) > 3:
        return _unseen(str(parsed), "more than three release numbers")
    release = ".".join(str(n) for n in (*parsed.release, 0, 0)[:3])
    pre: list[str] = []
    if parsed.pre is not None:
        pre += [parsed.pre[0], str(parsed.pre[1])]
    if parsed.dev is not None:
        pre += ["dev", str(parsed.dev)]
    return VersionTag(validate_tag(release + ("-" + ".".join(pre) if pre else "")))


def version_to_tag(version: str) -> str:
    """The tag for ``version`` (:func:`version_tag` without the note)."""
    return version_tag(version).tag
