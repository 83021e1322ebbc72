"""OCI references ``[HOST[:PORT]/]NAME[:TAG][@sha256:HEX]``: parsing, Docker Hub defaults."""

from __future__ import annotations

import re
from dataclasses import dataclass

from hatch_wasm_oci.errors import RegistryError
from hatch_wasm_oci.oci.tags import TAG_PATTERN

DOCKER_HUB = "docker.io"
DOCKER_HUB_API_HOST = "registry-1.docker.io"
DOCKER_HUB_CONFIG_KEY = "https://index.docker.io/v1/"

_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_HOST = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.?)+(?::[0-9]+)?"
    r"|\[[0-9A-Fa-f:.]+\](?::[0-9]+)?"
)


@dataclass(frozen=True)
class Reference:
    """A parsed reference; without ``tag`` and ``digest`` it names a repository."""

    host: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def api_host(self) -> str:
        """The host that serves the ``/v2/`` API (Docker Hub's differs from its name)."""
        return DOCKER_HUB_API_HOST if self.host == DOCKER_HUB else self.host

    @property
    def repo_ref(self) -> str:
        """``HOST/REPOSITORY`` without tag or digest."""
        return f"{self.host}/{self.repository}"

    def with_tag(self, tag: str | None) -> Reference:
        """A copy naming ``tag`` (and no digest)."""
        return Reference(self.host, self.repository, validate_reference_tag(tag) if tag else None)

    def with_digest(self, digest: str) -> Reference:
        """A copy naming ``digest`` (and no tag)."""
        return Reference(self.host, self.repository, None, digest)

    def __str__(self) -> str:
        text = self.repo_ref
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def validate_reference_tag(tag: str) -> str:
    """Return ``tag`` if it is a valid OCI tag, else raise RegistryError."""
    if not TAG_PATTERN.fullmatch(tag):
        raise RegistryError(f"invalid tag {tag!r}: tags match [A-Za-z0-9_][A-Za-z0-9._-]{{0,127}}")
    return tag


def parse_reference(text: str) -> Reference:
    """Parse ``text`` like docker: a first part with ``.`` or ``:``, or ``localhost``, is a host."""
    original = text
    if "://" in text:
        raise RegistryError(f"invalid reference {original!r}: leave out the URL scheme")
    digest: str | None = None
    if "@" in text:
        text, digest = text.split("@", 1)
        if not _DIGEST.fullmatch(digest):
            raise RegistryError(f"invalid reference {original!r}: digest must be sha256:<64 hex>")
    first, sep, rest = text.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        host, path = first, rest
        if not _HOST.fullmatch(host):
            raise RegistryError(f"invalid reference {original!r}: bad registry host {host!r}")
    else:
        host, path = DOCKER_HUB, text
    tag: str | None = None
    last_slash = path.rfind("/")
    colon = path.rfind(":")
    if colon > last_slash:
        path, tag = path[:colon], path[colon + 1 :]
        validate_reference_tag(tag)
    if not path:
        raise RegistryError(f"invalid reference {original!r}: no repository name")
    for component in path.split("/"):
        if not _COMPONENT.fullmatch(component):
            raise RegistryError(
                f"invalid reference {original!r}: repository component {component!r} must be "
                "lowercase letters, digits and separators (. _ __ -)"
            )
    if host == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    return Reference(host, path, tag, digest)
