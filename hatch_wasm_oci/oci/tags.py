"""OCI tag rules: the tag grammar and the mapping from a PEP 440 version to a tag."""

from __future__ import annotations

import re

from hatch_wasm_oci.errors import WasmOciError

TAG_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")


def validate_tag(tag: str) -> str:
    """Return ``tag`` if it matches the OCI grammar ``[A-Za-z0-9_][A-Za-z0-9._-]{0,127}``."""
    if not isinstance(tag, str) or not TAG_PATTERN.fullmatch(tag):
        raise WasmOciError(
            f"invalid OCI tag {tag!r}: a tag is 1-128 characters of letters, digits, '_', '.' "
            "and '-', and does not start with '.' or '-'"
        )
    return tag


def version_to_tag(version: str) -> str:
    """Map a PEP 440 version to a tag: ``+`` (local version) becomes ``_`` (Helm's convention).

    An epoch (``1!2.0``) has no tag spelling and is refused; the exact version belongs in the
    ``org.opencontainers.image.version`` annotation.
    """
    if "!" in version:
        raise WasmOciError(
            f"version {version!r} has an epoch ('!'), which no OCI tag can spell; set explicit tags"
        )
    return validate_tag(version.replace("+", "_"))
