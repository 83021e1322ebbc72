"""SemVer 2.0 versions and the version requirements WIT and ``wkg.lock`` use (``=1.2.3``, ``*``).

Registries list versions as tags; only tags that parse as SemVer count (as in wkg).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering

from hatch_wasm_oci.wit.errors import WitError

_SEMVER = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
)


@total_ordering
@dataclass(frozen=True)
class Version:
    """A SemVer version; ordering is SemVer precedence (build metadata ignored)."""

    major: int
    minor: int
    patch: int
    pre: tuple[str, ...] = ()
    build: str = ""

    @classmethod
    def parse(cls, text: str) -> Version | None:
        """The version ``text`` spells, or None when it is not SemVer."""
        match = _SEMVER.fullmatch(text)
        if match is None:
            return None
        pre = tuple(match.group(4).split(".")) if match.group(4) else ()
        return cls(int(match[1]), int(match[2]), int(match[3]), pre, match.group(5) or "")

    def _key(self) -> tuple[int, int, int, int, tuple[tuple[int, int, str], ...]]:
        ids = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in self.pre)
        return (self.major, self.minor, self.patch, 0 if self.pre else 1, ids)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() < other._key()

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.pre:
            text += "-" + ".".join(self.pre)
        if self.build:
            text += "+" + self.build
        return text


@dataclass(frozen=True)
class Requirement:
    """``=VERSION`` (what ``@VERSION`` means in WIT) or ``*`` (an unversioned WIT reference)."""

    exact: Version | None

    @classmethod
    def for_wit(cls, version: str | None) -> Requirement:
        """The requirement of a WIT reference ``ns:name@version`` (or without a version)."""
        if version is None:
            return cls(None)
        parsed = Version.parse(version)
        if parsed is None:
            raise WitError(f"{version!r} is not a SemVer version")
        return cls(parsed)

    def matches(self, version: Version) -> bool:
        """Whether ``version`` satisfies the requirement (``*``: any release, no pre-release)."""
        if self.exact is None:
            return not version.pre
        return version._key() == self.exact._key()

    def highest(self, versions: list[Version]) -> Version | None:
        """The highest of ``versions`` that satisfies the requirement."""
        return max((v for v in versions if self.matches(v)), default=None)

    def __str__(self) -> str:
        return "*" if self.exact is None else f"={self.exact}"
