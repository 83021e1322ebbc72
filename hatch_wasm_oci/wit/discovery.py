"""Where a wasm-pkg registry keeps its packages: ``/.well-known/wasm-pkg/registry.json``.

Both forms are read: ``{"oci": {"registry": ..., "namespacePrefix": ...}}`` and the older
``{"ociRegistry": ..., "ociNamespacePrefix": ...}``. As in wkg, a missing or unreadable document
means "OCI at the registry's own host, no prefix" (with a notice naming the URL); ``http`` is used
for ``localhost`` and ``127.0.0.1``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hatch_wasm_oci.errors import WasmOciError
from hatch_wasm_oci.files.json_input import parse_json_object
from hatch_wasm_oci.registry.client import RegistryClient, RetryPolicy
from hatch_wasm_oci.registry.credentials import ANONYMOUS
from hatch_wasm_oci.registry.reference import Reference, parse_reference
from hatch_wasm_oci.wit.config import OciSettings, WasmPkgConfig
from hatch_wasm_oci.wit.errors import WitError
from hatch_wasm_oci.wit.names import PackageName

WELL_KNOWN_PATH = "/.well-known/wasm-pkg/registry.json"
MAX_METADATA_SIZE = 64 << 10
_PREFIX = re.compile(r"(?:[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*/)*")
_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]{1,5})?")

Log = Callable[[str], None]


@dataclass(frozen=True)
class OciLocation:
    """The OCI registry and repository prefix of one wasm-pkg registry."""

    registry: str
    oci_registry: str
    prefix: str
    settings: OciSettings
    note: str = ""

    @property
    def plain_http(self) -> bool:
        """Whether the OCI registry is reached over plain HTTP (``protocol = "http"``)."""
        return self.settings.protocol == "http"

    def reference(self, package: PackageName, tag: str | None = None) -> Reference:
        """``{oci_registry}/{prefix}{ns}/{name}[:tag]``, validated."""
        text = f"{self.oci_registry}/{self.prefix}{package.namespace}/{package.name}"
        try:
            ref = parse_reference(text + (f":{tag}" if tag else ""))
        except WasmOciError as exc:
            raise WitError(f"{package.ref}: registry {self.registry} maps it to {exc}") from None
        return ref


def _is_loopback_name(registry: str) -> bool:
    host = registry.rsplit(":", 1)[0] if registry.count(":") == 1 else registry
    return host in ("localhost", "127.0.0.1")


def well_known_url(registry: str) -> str:
    """The registry metadata URL (``http`` for localhost and 127.0.0.1, as wkg does)."""
    scheme = "http" if _is_loopback_name(registry) else "https"
    return f"{scheme}://{registry}{WELL_KNOWN_PATH}"


def _fetch_metadata(registry: str, ca_file: Path | None) -> tuple[dict[str, Any] | None, str]:
    """The parsed document, or None and why it could not be had."""
    url = well_known_url(registry)
    client = RegistryClient(
        registry,
        ANONYMOUS,
        plain_http=url.startswith("http:"),
        ca_file=ca_file,
        retry=RetryPolicy(attempts=2, deadline=10.0),
    )
    try:
        response = client.request("GET", WELL_KNOWN_PATH, repository="", action=f"GET {url}")
        if response.status_code != 200:
            response.close()
            return None, f"HTTP {response.status_code}"
        body = bytearray()
        for chunk in response.iter_content(16384):
            body += chunk
            if len(body) > MAX_METADATA_SIZE:
                return None, "larger than 64 KiB"
    except WasmOciError as exc:
        return None, str(exc)
    except OSError as exc:
        return None, f"{type(exc).__name__}"
    try:
        return parse_json_object(bytes(body), "the document", MAX_METADATA_SIZE), ""
    except (WasmOciError, ValueError) as exc:
        return None, str(exc)


def _oci_fields(document: Mapping[str, Any]) -> tuple[str | None, str]:
    """(registry, prefix) from either form of the document; ValueError when malformed."""
    protocol = document.get("preferredProtocol")
    if protocol is not None and protocol != "oci":
        raise ValueError(f'its preferred protocol is {protocol!r}; only "oci" is supported')
    oci = document.get("oci", {})
    if not isinstance(oci, dict):
        raise ValueError('"oci" is not an object')
    registry = oci.get("registry", document.get("ociRegistry"))
    prefix = oci.get("namespacePrefix", document.get("ociNamespacePrefix")) or ""
    if registry is not None and (not isinstance(registry, str) or not _HOST.fullmatch(registry)):
        raise ValueError(f"OCI registry {registry!r} is not a host name")
    if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix):
        raise ValueError(f"namespace prefix {prefix!r} is not a repository path ending in /")
    return registry, prefix


def locate(
    registry: str,
    config: WasmPkgConfig,
    *,
    metadata: Mapping[str, Any] | None = None,
    ca_file: Path | None = None,
    log: Log = print,
) -> OciLocation:
    """Where ``registry`` keeps packages: inline ``metadata`` (from the config) or the
    well-known document, else OCI at ``registry`` itself with no prefix."""
    settings = config.registries.get(registry, OciSettings())
    url = well_known_url(registry)
    note = ""
    document: Mapping[str, Any] | None = metadata
    if document is None:
        document, why = _fetch_metadata(registry, ca_file)
        if document is None:
            note = f"no registry metadata at {url} ({why})"
    if document is not None:
        try:
            oci_registry, prefix = _oci_fields(document)
        except ValueError as exc:
            source = url if metadata is None else f"the metadata configured for {registry}"
            note = f"malformed registry metadata at {source}: {exc}"
        else:
            return OciLocation(registry, oci_registry or registry, prefix, settings)
    log(f"{note}; using OCI registry {registry} with no namespace prefix")
    return OciLocation(registry, registry, "", settings, note)
