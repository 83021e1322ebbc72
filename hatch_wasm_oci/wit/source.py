"""WIT packages in an OCI registry: versions from the tags, blobs pulled by our registry client."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path

from hatch_wasm_oci.errors import WasmOciError
from hatch_wasm_oci.files.digest import file_digest
from hatch_wasm_oci.files.json_input import parse_json_object
from hatch_wasm_oci.registry.client import RegistryClient, RetryPolicy
from hatch_wasm_oci.registry.credentials import (
    ENV_PASSWORD,
    ENV_TOKEN,
    ENV_USERNAME,
    resolve_credentials,
)
from hatch_wasm_oci.registry.pull import pull
from hatch_wasm_oci.registry.retry import UnresolvedHostError
from hatch_wasm_oci.wasm.binary import WasmKind, read_wasm
from hatch_wasm_oci.wit.cache import BlobCache
from hatch_wasm_oci.wit.discovery import OciLocation
from hatch_wasm_oci.wit.errors import WitError
from hatch_wasm_oci.wit.names import PackageName
from hatch_wasm_oci.wit.semver import Version

MAX_TAGS_BODY = 4 << 20
MAX_TAG_PAGES = 20
MAX_PACKAGE_SIZE = 16 << 20
"""An encoded WIT package is kilobytes (all of WASI 0.2 is ~200 KiB); a registry that describes
more is refused before its layer is downloaded."""


def registry_environ(location: OciLocation, environ: Mapping[str, str]) -> dict[str, str]:
    """The environment for registry requests: the wasm-pkg config's credentials for this
    registry if it has any, never the host-less HATCH_WASM_OCI_USERNAME/PASSWORD/TOKEN.

    The OCI host comes from the registry's well-known document, so global credentials would go
    wherever that document points; per-host docker config entries still apply."""
    env = {k: v for k, v in environ.items() if k not in (ENV_USERNAME, ENV_PASSWORD, ENV_TOKEN)}
    settings = location.settings
    if settings.username is not None and settings.password is not None:
        env[ENV_USERNAME], env[ENV_PASSWORD] = settings.username, settings.password
    return env


def _fail(package: PackageName, location: OciLocation, exc: WasmOciError) -> WitError:
    if isinstance(exc, UnresolvedHostError):
        return WitError(
            f"{package}: {exc} — {location.registry} does not resolve from here; point "
            f"namespace {package.namespace} at a registry you can reach (namespace_registries in "
            "the wasm-pkg config, or the wit-dependencies table of "
            "[tool.hatch.build.targets.wasm-oci]), or vendor the package under wit/deps/"
        )
    note = f" ({location.note})" if location.note else ""
    return WitError(f"{package}: {exc}{note}")


def list_versions(
    location: OciLocation,
    package: PackageName,
    *,
    ca_file: Path | None,
    environ: Mapping[str, str],
) -> list[Version]:
    """The SemVer tags of the package's repository (other tags are ignored, as in wkg)."""
    ref = location.reference(package)
    env = registry_environ(location, environ)
    try:
        client = RegistryClient(
            ref.api_host,
            resolve_credentials(ref.host, env),
            plain_http=location.plain_http,
            ca_file=ca_file,
            retry=RetryPolicy.from_env(env),
        )
        client.want(ref.repository, "pull")
        tags: list[str] = []
        path: str | None = f"/v2/{ref.repository}/tags/list"
        action = f"listing the versions of {package.ref} at {ref.repo_ref}"
        for _ in range(MAX_TAG_PAGES):
            if path is None:
                break
            response = client.request(
                "GET", path, repository=ref.repository, action=action, what="repository"
            )
            if response.status_code == 404:
                response.close()
                note = f"; {location.note}" if location.note else ""
                raise WitError(
                    f"unknown package {package.ref}: {ref.repo_ref} does not exist "
                    f"(registry {location.registry}{note})"
                )
            if response.status_code != 200:
                raise client.error(
                    response, action=action, repository=ref.repository, what="repository"
                )
            body = bytearray()
            for chunk in response.iter_content(65536):
                body += chunk
                if len(body) > MAX_TAGS_BODY:
                    raise WitError(f"{action}: the tag list is larger than 4 MiB")
            page = parse_json_object(bytes(body), f"{action}: the tag list", MAX_TAGS_BODY)
            names = page.get("tags") or []
            if not isinstance(names, list):
                raise WitError(f"{action}: the tag list is malformed")
            tags.extend(t for t in names if isinstance(t, str))
            path = _next_page(response.headers.get("Link"))
    except WitError:
        raise
    except WasmOciError as exc:
        raise _fail(package, location, exc) from None
    return sorted({v for v in map(Version.parse, tags) if v is not None})


def _next_page(link: str | None) -> str | None:
    """The path of a ``Link: </v2/...>; rel="next"`` header (same host only)."""
    if not link or 'rel="next"' not in link:
        return None
    target = link.split(";", 1)[0].strip().strip("<>")
    return target if target.startswith("/v2/") else None


def pull_package(
    location: OciLocation,
    package: PackageName,
    version: str,
    cache: BlobCache,
    *,
    expect_digest: str | None,
    ca_file: Path | None,
    environ: Mapping[str, str],
) -> tuple[Path, str]:
    """Pull ``package@version`` into the cache; (blob path, layer digest). With
    ``expect_digest`` (from the lock), any other layer digest is an error."""
    ref = location.reference(package, version)
    what = f"{package.ref}@{version}"
    with tempfile.TemporaryDirectory(prefix="hatch-wasm-oci-wit-") as scratch:
        try:
            result = pull(
                str(ref),
                Path(scratch) / "pulled",
                plain_http=location.plain_http,
                ca_file=ca_file,
                environ=registry_environ(location, environ),
                max_layer_size=MAX_PACKAGE_SIZE,
            )
        except WasmOciError as exc:
            wanted = PackageName(package.namespace, package.name, version)
            raise _fail(wanted, location, exc) from None
        digest = file_digest(result.wasm)
        if expect_digest is not None and digest != expect_digest:
            raise WitError(
                f"{what}: {ref} has layer {digest} but wkg.lock records {expect_digest}; "
                "the lock is never updated silently (run `hatch-wasm-oci wit update` to accept "
                "the new content)"
            )
        try:
            kind = read_wasm(result.wasm).kind
        except WasmOciError:
            kind = None
        if kind is not WasmKind.WIT_PACKAGE:
            shown = kind.value if kind is not None else "not valid Wasm"
            raise WitError(f"{what}: {ref} is not a WIT package ({shown})")
        return cache.put(result.wasm, digest), digest
