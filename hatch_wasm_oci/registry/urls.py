"""The one place a URL a registry sent (token realm, ``Location`` of an upload or redirect) is
parsed: whatever :func:`urllib.parse.urlsplit` or its ``port`` would raise (an unclosed IPv6
bracket, a bracketed non-address, a port past 65535) becomes one RegistryError line."""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit

from hatch_wasm_oci.errors import RegistryError, printable


def split_url(text: str, what: str) -> SplitResult:
    """``text`` split, with its port checked; RegistryError naming ``what`` (e.g. "the token
    realm") when it is not a valid URL."""
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
    except ValueError as exc:
        raise RegistryError(
            f"the registry sent {what} that is not a valid URL: {printable(text)[:200]!r} ({exc})"
        ) from None
    return parts
