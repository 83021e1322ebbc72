"""One-line registry error messages with hints for what real registries answer."""

from __future__ import annotations

from typing import Any

from hatch_wasm_oci.errors import RegistryError, printable
from hatch_wasm_oci.files.json_input import JsonInputError, parse_json, parse_json_object

__all__ = [
    "CHUNK_ENV",
    "ERROR_BODY_LIMIT",
    "credentials_hint",
    "http_error",
    "json_object",
    "printable",
    "registry_codes",
]

CHUNK_ENV = "HATCH_WASM_OCI_CHUNKED_ABOVE"
ERROR_BODY_LIMIT = 64 << 10
"""How much of an error answer is read (and parsed for OCI error codes)."""
JSON_LIMIT = 16 << 20


def json_object(data: str | bytes, name: str, limit: int = JSON_LIMIT) -> dict[str, Any]:
    """``data`` parsed as a JSON object (bounded size and depth); RegistryError otherwise."""
    try:
        return parse_json_object(data, name, limit)
    except JsonInputError as exc:
        raise RegistryError(str(exc)) from None


def registry_codes(body: bytes) -> list[tuple[str, str]]:
    """``(code, message)`` pairs from an OCI distribution error body (empty if it has none)."""
    try:
        data: Any = parse_json(body[:ERROR_BODY_LIMIT], "error body", ERROR_BODY_LIMIT)
    except JsonInputError:
        return []
    errors = data.get("errors") if isinstance(data, dict) else None
    if not isinstance(errors, list):
        return []
    pairs = []
    for item in errors:
        if isinstance(item, dict):
            pairs.append((str(item.get("code", "")), str(item.get("message", ""))))
    return pairs


def _one_line(text: str, limit: int = 200) -> str:
    flat = " ".join(printable(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def credentials_hint(credential_source: str, anonymous: bool) -> str:
    """The hint for credentials a registry (or its token service) refused or needs."""
    if anonymous:
        return (
            "no credentials were found; set HATCH_WASM_OCI_USERNAME/HATCH_WASM_OCI_PASSWORD "
            "(or HATCH_WASM_OCI_TOKEN), pass `hatch publish -u USER -a PASSWORD`, or log in "
            "with docker/oras/skopeo"
        )
    return f"the credentials from {credential_source} were rejected"


def hint_for(
    status: int,
    codes: list[tuple[str, str]],
    *,
    host: str,
    repository: str,
    what: str,
    credential_source: str,
    anonymous: bool,
) -> str | None:
    """A hint for an HTTP status and error codes from ``host``, or None."""
    names = {code for code, _ in codes}
    if host == "ghcr.io" and (status == 403 or "DENIED" in names):
        return (
            f"GHCR denied {credential_source}: the token needs the write:packages scope, and the "
            "package must exist or be linked to your repository (set the "
            "org.opencontainers.image.source annotation, or grant access in the package settings)"
        )
    if status == 401:
        return credentials_hint(credential_source, anonymous)
    if status == 403 or "DENIED" in names:
        return f"the credentials from {credential_source} may not push to {host}/{repository}"
    if "MANIFEST_INVALID" in names and "gitlab" in host:
        return (
            "GitLab's container registry rejects the Wasm config media type "
            "application/vnd.wasm.config.v0+json; publish to another registry"
        )
    if "MANIFEST_INVALID" in names and what == "manifest":
        return (
            "the registry rejected the Wasm OCI manifest "
            "(some registries refuse its config media type)"
        )
    if ".dkr.ecr." in host and what == "manifest" and status == 400:
        return (
            "Amazon ECR rejects some manifest fields (annotations, artifactType); "
            "repack the layout without custom annotations"
        )
    if status == 404 or "NAME_UNKNOWN" in names:
        return (
            f"the repository {repository} does not exist on {host}; create it first (ECR, Harbor "
            "and some others do not create repositories on push) or check the name"
        )
    if status == 413:
        return (
            "the registry or a proxy in front of it limits request size; upload in chunks with "
            f"{CHUNK_ENV}=<bytes> (or -o chunked-above=<bytes>)"
        )
    return None


def http_error(
    status: int,
    body: bytes,
    *,
    action: str,
    host: str,
    repository: str,
    what: str,
    credential_source: str,
    anonymous: bool,
) -> RegistryError:
    """A RegistryError for an unexpected HTTP answer."""
    codes = registry_codes(body)
    detail = "; ".join(f"{c}: {m}" if m else c for c, m in codes) if codes else ""
    text = f"{action} failed: {host} answered HTTP {status}"
    if detail:
        text += f" ({_one_line(detail)})"
    hint = hint_for(
        status,
        codes,
        host=host,
        repository=repository,
        what=what,
        credential_source=credential_source,
        anonymous=anonymous,
    )
    if hint:
        text += f" — hint: {hint}"
    return RegistryError(text)
