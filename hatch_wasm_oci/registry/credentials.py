"""Registry credentials: environment variables, then the docker config, then anonymous.

Only ``Credentials.source`` (where the secret came from) may ever be shown to the user.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from hatch_wasm_oci.errors import RegistryError
from hatch_wasm_oci.files.json_input import JsonInputError, parse_json_object
from hatch_wasm_oci.files.regular import FileInputError, read_regular
from hatch_wasm_oci.registry.reference import DOCKER_HUB, DOCKER_HUB_CONFIG_KEY

ENV_USERNAME = "HATCH_WASM_OCI_USERNAME"
ENV_PASSWORD = "HATCH_WASM_OCI_PASSWORD"
ENV_TOKEN = "HATCH_WASM_OCI_TOKEN"

# A docker config with a few hundred registries is some 100 KiB.
MAX_CONFIG_SIZE = 4 << 20
_DOCKER_HUB_ALIASES = ("docker.io", "index.docker.io", "registry-1.docker.io")


@dataclass(frozen=True)
class Credentials:
    """What to authenticate with; secrets are excluded from ``repr``."""

    source: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    registry_token: str | None = field(default=None, repr=False)
    identity_token: str | None = field(default=None, repr=False)

    @property
    def anonymous(self) -> bool:
        """True when there is nothing to authenticate with."""
        return not (self.password or self.registry_token or self.identity_token)


ANONYMOUS = Credentials(source="anonymous (no credentials found)")


def docker_config_path(environ: Mapping[str, str] | None = None) -> Path:
    """``$DOCKER_CONFIG/config.json`` if DOCKER_CONFIG is set, else ``~/.docker/config.json``."""
    env = os.environ if environ is None else environ
    directory = env.get("DOCKER_CONFIG")
    if directory:
        return Path(directory) / "config.json"
    return Path(env.get("HOME") or Path.home()) / ".docker" / "config.json"


def _key_host(key: str) -> str:
    """The host a docker config key names (``https://host/v1/`` -> ``host``)."""
    text = key.strip()
    for scheme in ("https://", "http://"):
        if text.startswith(scheme):
            text = text[len(scheme) :]
    return text.split("/", 1)[0].lower()


def _hosts_for(host: str) -> set[str]:
    host = host.lower()
    if host in _DOCKER_HUB_ALIASES:
        return set(_DOCKER_HUB_ALIASES)
    return {host}


def _helper_server_url(host: str) -> str:
    return DOCKER_HUB_CONFIG_KEY if host.lower() in _DOCKER_HUB_ALIASES else host


def _run_helper(
    name: str, host: str, config: Path, environ: Mapping[str, str]
) -> Credentials | None:
    import shutil
    import subprocess

    binary = f"docker-credential-{name}"
    path = shutil.which(binary, path=environ.get("PATH"))
    if path is None:
        raise RegistryError(f"{config} names the credential helper {binary}, which is not on PATH")
    try:
        proc = subprocess.run(
            [path, "get"],
            input=_helper_server_url(host).encode(),
            capture_output=True,
            check=False,
            timeout=60,
            env=dict(environ),
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RegistryError(
            f"credential helper {binary} could not run: {type(exc).__name__}"
        ) from None
    if proc.returncode != 0:
        if b"not found" in proc.stdout.lower() or b"not found" in proc.stderr.lower():
            return None
        raise RegistryError(
            f"credential helper {binary} failed (exit {proc.returncode}) for {host}"
        )
    try:
        payload = parse_json_object(proc.stdout, binary, MAX_CONFIG_SIZE)
        username = str(payload.get("Username") or "")
        secret = str(payload.get("Secret") or "")
    except JsonInputError:
        raise RegistryError(
            f"credential helper {binary} printed something that is not JSON"
        ) from None
    if not secret:
        return None
    source = f"credential helper {binary} (from {config})"
    if username == "<token>":
        return Credentials(source=source, identity_token=secret)
    return Credentials(source=source, username=username, password=secret)


def _from_auths_entry(entry: Mapping[str, object], source: str) -> Credentials | None:
    identity = entry.get("identitytoken")
    encoded = entry.get("auth")
    username = entry.get("username")
    password = entry.get("password")
    if isinstance(encoded, str) and encoded:
        try:
            decoded = base64.b64decode(encoded).decode()
        except (ValueError, UnicodeDecodeError):
            raise RegistryError(
                f"{source}: the 'auth' value is not base64 of user:password"
            ) from None
        username, sep, password = decoded.partition(":")
        if not sep:
            raise RegistryError(f"{source}: the 'auth' value is not base64 of user:password")
    if isinstance(identity, str) and identity:
        return Credentials(source=source, username=str(username or ""), identity_token=identity)
    if isinstance(password, str) and password:
        return Credentials(source=source, username=str(username or ""), password=password)
    return None


def _from_docker_config(host: str, environ: Mapping[str, str]) -> Credentials | None:
    config = docker_config_path(environ)
    try:
        data = parse_json_object(
            read_regular(config, MAX_CONFIG_SIZE), str(config), MAX_CONFIG_SIZE
        )
    except FileNotFoundError:
        return None
    except (FileInputError, JsonInputError) as exc:
        raise RegistryError(str(exc)) from None
    wanted = _hosts_for(host)
    helpers = data.get("credHelpers") or {}
    if isinstance(helpers, dict):
        for key, helper in helpers.items():
            if _key_host(key) in wanted and isinstance(helper, str) and helper:
                return _run_helper(helper, host, config, environ)
    store = data.get("credsStore")
    if isinstance(store, str) and store:
        found = _run_helper(store, host, config, environ)
        if found is not None:
            return found
    auths = data.get("auths") or {}
    if isinstance(auths, dict):
        for key, entry in auths.items():
            if _key_host(key) in wanted and isinstance(entry, dict):
                found = _from_auths_entry(entry, f"{config} (auths {key!r})")
                if found is not None:
                    return found
    return None


def resolve_credentials(host: str, environ: Mapping[str, str] | None = None) -> Credentials:
    """Find credentials for ``host``: environment, then docker config, then anonymous."""
    env = os.environ if environ is None else environ
    token = env.get(ENV_TOKEN)
    username = env.get(ENV_USERNAME)
    password = env.get(ENV_PASSWORD)
    if token:
        return Credentials(source=f"the {ENV_TOKEN} environment variable", registry_token=token)
    if username or password:
        if not (username and password):
            missing = ENV_PASSWORD if username else ENV_USERNAME
            raise RegistryError(
                f"{missing} is not set (set both {ENV_USERNAME} and {ENV_PASSWORD})"
            )
        return Credentials(
            source=f"the {ENV_USERNAME}/{ENV_PASSWORD} environment variables",
            username=username,
            password=password,
        )
    found = _from_docker_config(DOCKER_HUB if host in _DOCKER_HUB_ALIASES else host, env)
    return found if found is not None else ANONYMOUS
