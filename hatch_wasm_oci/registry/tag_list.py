"""A repository's tags (``GET /v2/<name>/tags/list``, paginated), and the tags nearest a
missing one, so that a missing repository and a missing tag are told apart."""

from __future__ import annotations

import difflib
import re

from hatch_wasm_oci.errors import RegistryError
from hatch_wasm_oci.files.json_input import JsonInputError, parse_json_object
from hatch_wasm_oci.registry.client import RegistryClient
from hatch_wasm_oci.registry.errors import registry_codes

MAX_TAGS_BODY = 4 << 20
MAX_TAG_PAGES = 100
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")


class NoSuchRepository(RegistryError):
    """The registry answered that the repository does not exist."""


def _next_page(link: str | None) -> str | None:
    """The path of a ``Link: </v2/...>; rel="next"`` header (same host only)."""
    if not link or 'rel="next"' not in link:
        return None
    target = link.split(";", 1)[0].strip().strip("<>")
    return target if target.startswith("/v2/") else None


def list_tags(client: RegistryClient, repository: str) -> list[str]:
    """The tags of ``repository`` as the registry lists them (invalid names dropped, each page
    capped at 4 MiB, at most 100 pages); NoSuchRepository when it does not exist."""
    action = f"listing the tags of {client.host}/{repository}"
    tags: list[str] = []
    path: str | None = f"/v2/{repository}/tags/list"
    for _ in range(MAX_TAG_PAGES):
        if path is None:
            break
        response = client.request(
            "GET", path, repository=repository, action=action, what="repository"
        )
        if response.status_code == 404:
            codes = {code for code, _ in registry_codes(response.content)}
            if not codes or "NAME_UNKNOWN" in codes:
                raise NoSuchRepository(
                    f"the repository {client.host}/{repository} does not exist (check the name)"
                )
        if response.status_code != 200:
            raise client.error(response, action=action, repository=repository, what="repository")
        body = bytearray()
        for chunk in response.iter_content(65536):
            body += chunk
            if len(body) > MAX_TAGS_BODY:
                raise RegistryError(f"{action} failed: the tag list is larger than 4 MiB")
        try:
            page = parse_json_object(bytes(body), f"{action}: the tag list", MAX_TAGS_BODY)
        except JsonInputError as exc:
            raise RegistryError(str(exc)) from None
        names = page.get("tags") or []
        if not isinstance(names, list):
            raise RegistryError(f"{action} failed: the tag list is malformed")
        tags.extend(t for t in names if isinstance(t, str) and _TAG.fullmatch(t))
        path = _next_page(response.headers.get("Link"))
    return list(dict.fromkeys(tags))


def nearest_tags(tag: str, tags: list[str], count: int = 5) -> list[str]:
    """Up to ``count`` of ``tags`` most like ``tag`` (the last ones listed when none is)."""
    close = difflib.get_close_matches(tag, tags, n=count, cutoff=0.4)
    return close or tags[-count:]
