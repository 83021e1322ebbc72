"""The wasm-pkg configuration: which registry serves a WIT package, and how to reach it.

Read like wkg reads it: ``$WKG_CONFIG_FILE``, else ``$XDG_CONFIG_HOME/wasm-pkg/config.toml``
(``~/.config/wasm-pkg/config.toml``), then the plugin's own ``wit-dependencies`` table on top
(same keys). A package's registry is the first of ``package_registry_overrides``,
``namespace_registries``, ``default_registry``, then the built-ins ``wasi`` -> ``wasi.dev`` and
``ba`` -> ``bytecodealliance.org``.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hatch_wasm_oci.files.regular import FileInputError, read_regular
from hatch_wasm_oci.wit.errors import WitError
from hatch_wasm_oci.wit.names import PackageName

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CONFIG_ENV = "WKG_CONFIG_FILE"
BUILTIN_NAMESPACES = {"wasi": "wasi.dev", "ba": "bytecodealliance.org"}
MAX_CONFIG_SIZE = 1 << 20
_REGISTRY = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]{1,5})?")


@dataclass(frozen=True)
class RegistryMapping:
    """Where a namespace or package goes: a registry name, with metadata given inline or not."""

    registry: str
    metadata: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class OciSettings:
    """``[registry."NAME".oci]``: credentials and protocol for the registry's OCI backend."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    protocol: str | None = None


@dataclass
class WasmPkgConfig:
    """The merged configuration (file, then the plugin's table)."""

    default_registry: str | None = None
    namespace_registries: dict[str, RegistryMapping] = field(default_factory=dict)
    package_registry_overrides: dict[str, RegistryMapping] = field(default_factory=dict)
    registries: dict[str, OciSettings] = field(default_factory=dict)
    source: str = "defaults"

    def mapping_for(self, package: PackageName) -> RegistryMapping | None:
        """The explicit mapping (package override, then namespace) for ``package``."""
        return self.package_registry_overrides.get(package.ref) or self.namespace_registries.get(
            package.namespace
        )

    def registry_for(self, package: PackageName) -> str | None:
        """The registry name serving ``package``, or None when nothing maps it."""
        mapping = self.mapping_for(package)
        if mapping is not None:
            return mapping.registry
        return self.default_registry or BUILTIN_NAMESPACES.get(package.namespace)

    def merge(self, table: Mapping[str, Any], where: str) -> None:
        """Lay the keys of ``table`` (a parsed wasm-pkg config) over this configuration."""
        known = {
            "default_registry",
            "namespace_registries",
            "package_registry_overrides",
            "registry",
        }
        for key in table:
            if key not in known:
                raise WitError(f"{where}: unknown key {key!r} (known: {', '.join(sorted(known))})")
        if "default_registry" in table:
            self.default_registry = _registry(
                table["default_registry"], f"{where}.default_registry"
            )
        for key, target, check in (
            ("namespace_registries", self.namespace_registries, _label),
            ("package_registry_overrides", self.package_registry_overrides, _package),
        ):
            entries = _table(table.get(key, {}), f"{where}.{key}")
            for name, value in entries.items():
                target[check(name, f"{where}.{key}")] = _mapping(value, f"{where}.{key}.{name}")
        registries = _table(table.get("registry", {}), f"{where}.registry")
        for name, value in registries.items():
            path = f"{where}.registry.{name}"
            _registry(name, path)
            oci = _table(_table(value, path).get("oci", {}), f"{path}.oci")
            self.registries[name] = _oci_settings(oci, f"{path}.oci")
        self.source = where


def _table(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise WitError(f"{where}: must be a table")
    return value


def _registry(value: object, where: str) -> str:
    if not isinstance(value, str) or not _REGISTRY.fullmatch(value):
        raise WitError(f"{where}: {value!r} is not a registry host name (host or host:port)")
    return value


def _label(value: str, where: str) -> str:
    PackageName.parse(f"{value}:x")  # a namespace label
    return value


def _package(value: str, where: str) -> str:
    return PackageName.parse(value).ref


def _mapping(value: object, where: str) -> RegistryMapping:
    if isinstance(value, str):
        return RegistryMapping(_registry(value, where))
    table = _table(value, where)
    metadata = table.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise WitError(f"{where}.metadata: must be a table")
    return RegistryMapping(_registry(table.get("registry"), f"{where}.registry"), metadata)


def _oci_settings(table: Mapping[str, Any], where: str) -> OciSettings:
    protocol = table.get("protocol")
    if protocol not in (None, "http", "https"):
        raise WitError(f'{where}.protocol: must be "http" or "https"')
    auth = table.get("auth")
    username = password = None
    if isinstance(auth, str):
        try:
            username, sep, password = base64.b64decode(auth + "==").decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            sep = ""
        if not sep:
            raise WitError(f"{where}.auth: not base64 of username:password")
    elif isinstance(auth, dict):
        username, password = auth.get("username"), auth.get("password")
        if not isinstance(username, str) or not isinstance(password, str):
            raise WitError(f"{where}.auth: needs string username and password")
    elif auth is not None:
        raise WitError(f"{where}.auth: must be a table or a base64 string")
    return OciSettings(username, password, protocol)


def config_path(environ: Mapping[str, str]) -> Path:
    """``$WKG_CONFIG_FILE``, else ``$XDG_CONFIG_HOME/wasm-pkg/config.toml``."""
    explicit = environ.get(CONFIG_ENV, "").strip()
    if explicit:
        return Path(explicit).expanduser()
    xdg = environ.get("XDG_CONFIG_HOME", "").strip()
    base = Path(xdg) if xdg else Path(environ.get("HOME") or Path.home()) / ".config"
    return base / "wasm-pkg" / "config.toml"


def load_config(
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    overrides_where: str = "wit-dependencies",
) -> WasmPkgConfig:
    """The wasm-pkg config file (if any) with ``overrides`` (the plugin's table) laid over it."""
    env = os.environ if environ is None else environ
    config = WasmPkgConfig()
    path = config_path(env)
    try:
        data: bytes | None = read_regular(path, MAX_CONFIG_SIZE)
    except FileNotFoundError:
        if env.get(CONFIG_ENV, "").strip():
            raise WitError(f"{CONFIG_ENV}={path} does not exist") from None
        data = None
    except FileInputError as exc:
        raise WitError(f"wasm-pkg config: {exc}") from None
    if data is not None:
        try:
            parsed = tomllib.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise WitError(f"{path}: not valid TOML ({exc})") from None
        config.merge(parsed, str(path))
    if overrides:
        config.merge(dict(overrides), overrides_where)
    return config
