"""Pulling a Wasm OCI artifact: the ``.wasm`` plus an OCI layout, every digest verified.

The manifest digest must equal the ``@sha256:`` of the reference, or for a tag the digest the
registry announced in ``Docker-Content-Digest``; each blob must hash to its descriptor. Nothing
is left behind when a check fails.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hatch_wasm_oci.errors import ArtifactError, LayoutError, RegistryError
from hatch_wasm_oci.files.atomic import replacing
from hatch_wasm_oci.files.digest import CHUNK_SIZE
from hatch_wasm_oci.oci import media_types as mt
from hatch_wasm_oci.oci.artifact import LAYER_HEAD_SIZE, check_layer_head, parse_config_of
from hatch_wasm_oci.oci.descriptor import Descriptor
from hatch_wasm_oci.oci.layout import TITLE, LayoutWriter, blob_relpath
from hatch_wasm_oci.oci.manifest import INDEX_MEDIA_TYPES, ImageIndex, WasmManifest, is_index
from hatch_wasm_oci.registry.client import Backoff, RegistryClient, RetryPolicy
from hatch_wasm_oci.registry.credentials import resolve_credentials
from hatch_wasm_oci.registry.errors import registry_codes
from hatch_wasm_oci.registry.reference import Reference, parse_reference
from hatch_wasm_oci.registry.transport import TRANSPORT_ERRORS

MAX_MANIFEST_SIZE = mt.MAX_DOCUMENT_SIZE
LAYOUT_DIR_NAME = "layout"
# A Wasm artifact is an OCI manifest; a tag may also hold an index that lists one.
ACCEPT = ", ".join([mt.MANIFEST, *INDEX_MEDIA_TYPES])


@dataclass(frozen=True)
class PullResult:
    """What ``pull`` wrote."""

    reference: str
    digest: str
    wasm: Path
    layout: Path
    size: int


class _StreamReader:
    """``readinto`` over a streaming response, refusing more than ``limit`` bytes."""

    def __init__(self, chunks: Iterator[bytes], limit: int) -> None:
        self._chunks = chunks
        self._pending = b""
        self._limit = limit
        self.count = 0

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        self.count += n
        if self.count > self._limit:
            raise RegistryError("the registry sent more bytes than the descriptor's size")
        return n


def _wasm_name(layer: Descriptor, repository: str) -> str:
    title = layer.annotations.get(TITLE, "")
    name = Path(title.replace("\\", "/")).name if title else ""
    if name in ("", ".", "..") or name.startswith("."):
        name = repository.rsplit("/", 1)[-1] + ".wasm"
    return name


def _parse_manifest(data: bytes, where: str) -> WasmManifest:
    try:
        return WasmManifest.parse(data)
    except ArtifactError as exc:
        raise RegistryError(f"{where}: {exc}") from None


def _get_manifest(client: RegistryClient, ref: Reference, action: str) -> tuple[bytes, str, str]:
    """The manifest or index ``ref`` names: (bytes, digest, media type), its digest checked."""
    repo, expected = ref.repository, ref.digest
    selector = ref.digest or ref.tag or "latest"
    response = client.request(
        "GET",
        f"/v2/{repo}/manifests/{selector}",
        repository=repo,
        action=action,
        what="manifest",
        headers={"Accept": ACCEPT},
    )
    if response.status_code == 404:
        codes = {code for code, _ in registry_codes(response.content)}
        if "MANIFEST_UNKNOWN" in codes:
            raise RegistryError(f"{action} failed: {client.host}/{repo} has no manifest {selector}")
    if response.status_code != 200:
        raise client.error(response, action=action, repository=repo, what="manifest")
    received = bytearray()
    for chunk in response.iter_content(65536):
        received += chunk
        if len(received) > MAX_MANIFEST_SIZE:
            raise RegistryError(f"{action} failed: the manifest is larger than 4 MiB")
    data = bytes(received)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    announced = response.headers.get("Docker-Content-Digest")
    if expected is not None and digest != expected:
        raise RegistryError(
            f"{action} failed: the manifest the registry sent hashes to {digest}, "
            f"not {expected}; nothing was written"
        )
    if announced and announced != digest:
        raise RegistryError(
            f"{action} failed: the registry announced {announced} but the manifest it sent "
            f"hashes to {digest}; nothing was written"
        )
    media_type = response.headers.get("Content-Type", mt.MANIFEST).split(";")[0].strip()
    return data, digest, media_type


def _resolve_manifest(client: RegistryClient, ref: Reference) -> tuple[bytes, str, WasmManifest]:
    """The Wasm manifest ``ref`` names, following an index to its wasm/wasip2 (or wasip1) entry."""
    action = f"pulling {ref}"
    data, digest, media_type = _get_manifest(client, ref, action)
    if is_index(data, media_type):
        try:
            chosen = ImageIndex.parse(data).wasm_manifest()
        except ArtifactError as exc:
            raise RegistryError(f"{action}: {exc}") from None
        data, digest, _ = _get_manifest(client, ref.with_digest(chosen.digest), action)
    return data, digest, _parse_manifest(data, action)


def _fetch_blob(
    client: RegistryClient, ref: Reference, blob: Descriptor, writer: LayoutWriter
) -> None:
    repo = ref.repository
    action = f"pulling blob {blob.digest[:19]} of {ref}"
    backoff = Backoff(client.retry)
    while True:
        response = client.request(
            "GET", f"/v2/{repo}/blobs/{blob.digest}", repository=repo, action=action
        )
        if response.status_code != 200:
            raise client.error(response, action=action, repository=repo, what="blob")
        reader = _StreamReader(response.iter_content(1 << 20), blob.size)
        try:
            _, size = writer.add_blob_from(reader, expected_digest=blob.digest)  # type: ignore[arg-type]
        except LayoutError:
            raise RegistryError(
                f"{action} failed: the blob the registry sent does not match its digest "
                "(corrupted or tampered); nothing was written"
            ) from None
        except TRANSPORT_ERRORS as exc:
            backoff.wait_or_raise(f"download interrupted ({type(exc).__name__})", None, action)
            continue
        finally:
            response.close()
        if size != blob.size:
            raise RegistryError(f"{action} failed: got {size} bytes, descriptor says {blob.size}")
        return


def pull(
    reference: str,
    out_dir: Path,
    *,
    plain_http: bool = False,
    ca_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> PullResult:
    """Pull ``reference`` into ``out_dir``: ``<title>.wasm`` and ``layout/`` (an OCI layout)."""
    ref = parse_reference(reference)
    if not ref.tag and not ref.digest:
        ref = ref.with_tag("latest")
    client = RegistryClient(
        ref.api_host,
        resolve_credentials(ref.host, environ),
        plain_http=plain_http,
        ca_file=ca_file,
        retry=RetryPolicy.from_env(environ),
    )
    client.want(ref.repository, "pull")
    data, digest, manifest = _resolve_manifest(client, ref)
    out_dir = Path(out_dir)
    created = not out_dir.exists()
    try:
        return _write(client, ref, out_dir, data, digest, manifest)
    except BaseException:
        if created:
            shutil.rmtree(out_dir, ignore_errors=True)
        raise


def _write(
    client: RegistryClient,
    ref: Reference,
    out_dir: Path,
    data: bytes,
    digest: str,
    manifest: WasmManifest,
) -> PullResult:
    action = f"pulling {ref}"
    layer = manifest.layer
    layout_path = out_dir / LAYOUT_DIR_NAME
    wasm_path = out_dir / _wasm_name(layer, ref.repository)
    with LayoutWriter(layout_path) as writer:
        if manifest.config.size > mt.MAX_DOCUMENT_SIZE:
            raise RegistryError(f"{action}: the config is larger than {mt.MAX_DOCUMENT_SIZE} bytes")
        for blob in (manifest.config, layer):
            _fetch_blob(client, ref, blob, writer)
        try:
            parse_config_of(manifest, writer.blob_path(manifest.config.digest).read_bytes())
            with writer.blob_path(layer.digest).open("rb") as head:
                check_layer_head(manifest, head.read(LAYER_HEAD_SIZE))
        except ArtifactError as exc:
            raise RegistryError(f"{action}: {exc}") from None
        writer.add_blob(data)
        stored = Descriptor(mt.MANIFEST, digest, len(data))
        if ref.tag:
            writer.tag(ref.tag, stored)
        else:
            # Pulled by digest: untagged, never sha256-<hex> (the referrers fallback tag).
            writer.add_untagged(stored)
        writer.commit()
    blob_file = layout_path / blob_relpath(layer.digest)
    with blob_file.open("rb") as source, replacing(wasm_path) as sink:
        shutil.copyfileobj(source, sink, CHUNK_SIZE)
    return PullResult(str(ref), digest, wasm_path, layout_path, layer.size)
