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

from hatch_wasm_oci.errors import LayoutError, RegistryError
from hatch_wasm_oci.files.atomic import replacing
from hatch_wasm_oci.files.digest import CHUNK_SIZE
from hatch_wasm_oci.oci import config as oci_config
from hatch_wasm_oci.oci.layout import TITLE, Descriptor, LayoutWriter, blob_relpath
from hatch_wasm_oci.registry.client import Backoff, RegistryClient, RetryPolicy
from hatch_wasm_oci.registry.credentials import resolve_credentials
from hatch_wasm_oci.registry.errors import json_object, registry_codes
from hatch_wasm_oci.registry.reference import Reference, parse_reference
from hatch_wasm_oci.registry.transport import TRANSPORT_ERRORS

MAX_MANIFEST_SIZE = 4 << 20
LAYOUT_DIR_NAME = "layout"
ACCEPT = ", ".join(
    [
        oci_config.MANIFEST_MEDIA_TYPE,
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


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


def _parse_manifest(data: bytes, where: str) -> tuple[Descriptor, Descriptor]:
    manifest = json_object(data, f"{where}: the manifest")
    media_type = manifest.get("mediaType")
    if media_type not in (None, oci_config.MANIFEST_MEDIA_TYPE):
        raise RegistryError(f"{where}: {media_type} is not an OCI image manifest")
    try:
        config = Descriptor.from_json(manifest.get("config"))
        layers = [Descriptor.from_json(item) for item in manifest.get("layers") or []]
    except LayoutError as exc:
        raise RegistryError(f"{where}: {exc}") from None
    wasm = [layer for layer in layers if layer.media_type == oci_config.LAYER_MEDIA_TYPE]
    if config.media_type != oci_config.CONFIG_MEDIA_TYPE or len(layers) != 1 or len(wasm) != 1:
        raise RegistryError(
            f"{where}: not a Wasm OCI artifact (config {config.media_type}, "
            f"{len(layers)} layer(s), {len(wasm)} of them application/wasm)"
        )
    return config, wasm[0]


def _get_manifest(client: RegistryClient, ref: Reference) -> tuple[bytes, str, str]:
    """The manifest ``ref`` names: (bytes, digest, media type), its digest checked."""
    repo, expected = ref.repository, ref.digest
    selector = ref.digest or ref.tag or "latest"
    action = f"pulling {ref}"
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
    media_type = response.headers.get("Content-Type", oci_config.MANIFEST_MEDIA_TYPE)
    return data, digest, media_type.split(";")[0].strip()


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
    data, digest, media_type = _get_manifest(client, ref)
    config, layer = _parse_manifest(data, f"pulling {ref}")
    out_dir = Path(out_dir)
    created = not out_dir.exists()
    try:
        return _write(client, ref, out_dir, data, digest, media_type, config, layer)
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
    media_type: str,
    config: Descriptor,
    layer: Descriptor,
) -> PullResult:
    layout_path = out_dir / LAYOUT_DIR_NAME
    wasm_path = out_dir / _wasm_name(layer, ref.repository)
    tag = ref.tag or digest.replace(":", "-")
    with LayoutWriter(layout_path) as writer:
        for blob in (config, layer):
            _fetch_blob(client, ref, blob, writer)
        writer.add_blob(data)
        writer.tag(tag, Descriptor(media_type, digest, len(data)))
        writer.commit()
    blob_file = layout_path / blob_relpath(layer.digest)
    with blob_file.open("rb") as source, replacing(wasm_path) as sink:
        shutil.copyfileobj(source, sink, CHUNK_SIZE)
    return PullResult(str(ref), digest, wasm_path, layout_path, layer.size)
