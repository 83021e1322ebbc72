"""WIT package names ``namespace:name[@version]``: validated before they touch a URL or a path."""

from __future__ import annotations

import re
from dataclasses import dataclass

from hatch_wasm_oci.wit.errors import WitError
from hatch_wasm_oci.wit.semver import Requirement, Version

_LABEL = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")


@dataclass(frozen=True, order=True)
class PackageName:
    """``namespace:name`` plus an optional SemVer version."""

    namespace: str
    name: str
    version: str | None = None

    @classmethod
    def parse(cls, text: str) -> PackageName:
        """Parse ``ns:name`` or ``ns:name@1.2.3``; WitError names the text when it is invalid."""
        ref, _, version = text.partition("@")
        namespace, colon, name = ref.partition(":")
        if not colon or not _LABEL.fullmatch(namespace) or not _LABEL.fullmatch(name):
            raise WitError(f"invalid WIT package name {text!r} (expected namespace:name@version)")
        if version and Version.parse(version) is None:
            raise WitError(f"invalid WIT package name {text!r}: {version!r} is not SemVer")
        return cls(namespace, name, version or None)

    @property
    def ref(self) -> str:
        """``namespace:name``."""
        return f"{self.namespace}:{self.name}"

    @property
    def requirement(self) -> Requirement:
        """What the WIT reference asks for: ``=version``, or ``*`` without a version."""
        return Requirement.for_wit(self.version)

    @property
    def dir_name(self) -> str:
        """The ``wit/deps/`` directory wkg writes it to: ``wasi-io-0.2.0``."""
        return str(self).replace(":", "-").replace("@", "-")

    def __str__(self) -> str:
        return self.ref + (f"@{self.version}" if self.version else "")
