"""Pulling a Wasm OCI artifact: the ``.wasm`` plus an OCI layout, every digest verified.

The manifest digest must equal the ``@sha256:`` of the reference, or for a tag the digest the
registry announced in ``Docker-Content-Digest``; each blob must hash to its descriptor. Nothing
is left behind when a check fails.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hatch_wasm_oci.errors import ArtifactError, LayoutError, RegistryError
from hatch_wasm_oci.files.atomic import place, remove_stale, staged_copy
from hatch_wasm_oci.oci import media_types as mt
from hatch_wasm_oci.oci.annotations import TITLE, annotation_problems
from hatch_wasm_oci.oci.artifact import LAYER_HEAD_SIZE, check_layer_head, parse_config_of
from hatch_wasm_oci.oci.descriptor import Descriptor
from hatch_wasm_oci.oci.layout import LayoutWriter
from hatch_wasm_oci.oci.manifest import MANIFEST_ACCEPT, ImageIndex, WasmManifest, is_index
from hatch_wasm_oci.registry.client import Backoff, RegistryClient, RetryPolicy
from hatch_wasm_oci.registry.credentials import resolve_credentials
from hatch_wasm_oci.registry.errors import registry_codes
from hatch_wasm_oci.registry.progress import Reporter
from hatch_wasm_oci.registry.reference import Reference, parse_reference
from hatch_wasm_oci.registry.tag_list import NoSuchRepository, list_tags, nearest_tags
from hatch_wasm_oci.registry.transport import TRANSPORT_ERRORS

MAX_MANIFEST_SIZE = mt.MAX_DOCUMENT_SIZE
#: The largest blob of a referrer (an SBOM, a provenance statement, a signature) pulled.
MAX_REFERRER_BLOB = 16 << 20
MAX_NAME_STEM = 100
_UNSAFE_IN_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_WINDOWS_DEVICES = frozenset(
    ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"]
    + [f"{p}{n}" for p in ("COM", "LPT") for n in "123456789"]
)
LAYOUT_DIR_NAME = "layout"


@dataclass(frozen=True)
class PullResult:
    """What ``pull`` wrote; ``referrers`` is what the registry lists for the manifest (all
    written into the layout with ``referrers=True``), ``warnings`` what could not be listed."""

    reference: str
    digest: str
    wasm: Path
    layout: Path
    size: int
    referrers: tuple[Descriptor, ...] = ()
    fetched: bool = False
    warnings: tuple[str, ...] = ()


class _Interrupted(Exception):
    """The network failed while a blob streamed in (a disk failure is never this)."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(type(cause).__name__)
        self.cause = cause


class _StreamReader:
    """``readinto`` over a streaming response, refusing more than ``limit`` bytes.

    Network errors become ``_Interrupted`` so that the caller retries them, while errors
    writing the blob (a full disk, a read-only directory) reach the user as they are.
    """

    def __init__(
        self, chunks: Iterator[bytes], limit: int, on_bytes: Callable[[int], None] | None = None
    ) -> None:
        self._on_bytes = on_bytes
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
            except TRANSPORT_ERRORS as exc:
                raise _Interrupted(exc) from None
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        self.count += n
        if self._on_bytes is not None:
            self._on_bytes(n)
        if self.count > self._limit:
            raise RegistryError("the registry sent more bytes than the descriptor's size")
        return n


def wasm_file_name(title: str | None, repository: str) -> str:
    """The name ``pull`` gives the ``.wasm``: ``<sanitised title>.wasm``, never a path.

    The registry chooses the title, so only its last path component is kept, reduced to
    ``[A-Za-z0-9._-]`` without leading dots, at most 100 characters, never a Windows device
    name, and ``.wasm`` is always the extension (a title ``Makefile`` gives ``Makefile.wasm``).
    Without a usable title the repository's last component is used.
    """
    base = (title or "").replace("\\", "/").rsplit("/", 1)[-1]
    if base.lower().endswith(".wasm"):
        base = base[: -len(".wasm")]
    stem = _UNSAFE_IN_NAME.sub("_", base).lstrip("._-")[:MAX_NAME_STEM].rstrip("._-")
    if not stem.strip("_"):
        stem = _UNSAFE_IN_NAME.sub("_", repository.rsplit("/", 1)[-1]).lstrip("._-") or "artifact"
    if stem.split(".", 1)[0].upper() in _WINDOWS_DEVICES:
        stem = "_" + stem
    return stem + ".wasm"


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
        headers={"Accept": MANIFEST_ACCEPT},
    )
    if response.status_code == 404:
        codes = {code for code, _ in registry_codes(response.content)}
        if codes & {"NAME_UNKNOWN", "MANIFEST_UNKNOWN"}:
            raise _missing(client, repo, action, selector, ref.tag if ref.digest is None else None)
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


def _missing(
    client: RegistryClient, repo: str, action: str, selector: str, tag: str | None
) -> RegistryError:
    """What is missing, told apart by listing the tags (distribution answers MANIFEST_UNKNOWN
    for a repository that does not exist too): the repository, or the manifest, then with the
    tags nearest ``tag``. Best effort: a tag list that cannot be had adds nothing."""
    where = f"{client.host}/{repo}"
    try:
        tags = list_tags(client, repo)
    except NoSuchRepository:
        return NoSuchRepository(
            f"{action} failed: the repository {where} does not exist (check the name)"
        )
    except RegistryError:
        tags = None
    message = f"{action} failed: {where} has no manifest {selector}"
    if tag is not None and tags is not None:
        nearest = nearest_tags(tag, tags)
        message += f"; its tags nearest {tag}: {', '.join(nearest)}" if nearest else "; no tags"
    return RegistryError(message)


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
    manifest = _parse_manifest(data, action)
    problems = annotation_problems(manifest.annotations, [ref.tag] if ref.tag else [])
    if problems:  # what verify would report of the layout this pull writes
        raise RegistryError(f"{action}: " + "; ".join(problems))
    return data, digest, manifest


def _fetch_blob(
    client: RegistryClient, ref: Reference, blob: Descriptor, writer: LayoutWriter
) -> None:
    repo = ref.repository
    action = f"pulling blob {blob.digest[:19]} of {ref}"
    backoff = Backoff(client.retry)
    meter = client.reporter.meter("downloading", blob.digest, blob.size)
    while True:
        meter.restart()
        response = client.request(
            "GET",
            f"/v2/{repo}/blobs/{blob.digest}",
            repository=repo,
            action=action,
            size=blob.size,
        )
        if response.status_code != 200:
            raise client.error(response, action=action, repository=repo, what="blob")
        reader = _StreamReader(response.iter_content(1 << 20), blob.size, meter.advance)
        try:
            _, size = writer.add_blob_from(reader, expected_digest=blob.digest)  # type: ignore[arg-type]
        except LayoutError:
            raise RegistryError(
                f"{action} failed: the blob the registry sent does not match its digest "
                "(corrupted or tampered); nothing was written"
            ) from None
        except _Interrupted as exc:
            backoff.wait_or_raise(f"download interrupted ({exc})", None, action)
            continue
        finally:
            response.close()
            meter.finish()
        if size != blob.size:
            raise RegistryError(f"{action} failed: got {size} bytes, descriptor says {blob.size}")
        client.reporter.outcome(blob.digest, blob.size, "downloaded")
        return


def describe_remote(
    reference: str,
    *,
    plain_http: bool = False,
    ca_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """What ``inspect REF`` shows: the Wasm manifest the reference names (its digest checked)
    and the referrers the registry holds for it; nothing is written."""
    from hatch_wasm_oci.registry.referrers import list_referrers

    ref = parse_reference(reference)
    if not ref.tag and not ref.digest:
        ref = ref.with_tag("latest")
    client = RegistryClient(
        ref.api_host,
        resolve_credentials(ref.host, environ),
        plain_http=plain_http,
        ca_file=ca_file,
        retry=RetryPolicy.from_env(environ),
        environ=environ,
    )
    client.want(ref.repository, "pull")
    data, digest, _ = _resolve_manifest(client, ref)
    listing = list_referrers(client, ref.repository, digest, f"listing referrers of {ref}")
    return {
        "reference": str(ref),
        "digest": digest,
        "manifest": json.loads(data),
        "referrers": [
            {"digest": e.digest, "artifactType": e.artifact_type, "size": e.size}
            for e in listing.entries
        ],
        "referrersFrom": listing.source,
    }


def _fetch_referrer(
    client: RegistryClient, ref: Reference, subject: str, entry: Descriptor, writer: LayoutWriter
) -> None:
    """Fetch one referrer into ``writer``: its manifest (digest checked, subject ``subject``),
    its config and layers (each at most MAX_REFERRER_BLOB bytes, JSON ones bounded in depth)."""
    from hatch_wasm_oci.files.json_input import JsonInputError, parse_json
    from hatch_wasm_oci.oci.referrers import Referrer

    action = f"pulling referrer {entry.digest[:19]} of {ref}"
    data, digest, _ = _get_manifest(client, ref.with_digest(entry.digest), action)
    try:
        referrer = Referrer.parse(data)
    except ArtifactError as exc:
        raise RegistryError(f"{action}: {exc}; nothing was written") from None
    if referrer.subject.digest != subject:
        raise RegistryError(
            f"{action}: its subject is {referrer.subject.digest}, not {subject}; refused, "
            "nothing was written"
        )
    for blob in (referrer.config, *referrer.layers):
        if blob.size > MAX_REFERRER_BLOB:
            raise RegistryError(
                f"{action}: its blob {blob.digest[:19]} of {blob.size} bytes is over the "
                f"{MAX_REFERRER_BLOB}-byte limit for a referrer's document; nothing was written"
            )
        _fetch_blob(client, ref, blob, writer)
        if blob.media_type.endswith("json"):
            try:
                parse_json(writer.blob_path(blob.digest).read_bytes(), blob.digest, blob.size)
            except JsonInputError as exc:
                raise RegistryError(f"{action}: {exc}; nothing was written") from None
    writer.add_blob(data)
    writer.add_untagged(
        Descriptor(
            mt.MANIFEST, digest, len(data), dict(referrer.annotations), None, referrer.artifact_type
        )
    )


def pull(
    reference: str,
    out_dir: Path,
    *,
    force: bool = False,
    plain_http: bool = False,
    ca_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    progress: Reporter | None = None,
    max_layer_size: int | None = None,
    referrers: bool = False,
) -> PullResult:
    """Pull ``reference`` into ``out_dir``: ``<title>.wasm`` and ``layout/`` (an OCI layout).

    The registry's referrers of the manifest (SBOM, provenance, others' attestations) are
    listed; with ``referrers`` they are fetched into the layout too, each checked (bounded
    documents, subject the pulled manifest, digests), and one that fails its check fails the
    pull with nothing written.

    An existing ``.wasm`` of that name is replaced only with ``force``. On any failure
    ``out_dir`` is left as it was (removed if this call created it). ``max_layer_size`` refuses
    a layer the manifest says is larger, before any of it is downloaded.
    """
    ref = parse_reference(reference)
    if not ref.tag and not ref.digest:
        ref = ref.with_tag("latest")
    client = RegistryClient(
        ref.api_host,
        resolve_credentials(ref.host, environ),
        plain_http=plain_http,
        ca_file=ca_file,
        retry=RetryPolicy.from_env(environ),
        environ=environ,
    )
    if progress is not None:
        client.reporter = progress
    client.want(ref.repository, "pull")
    data, digest, manifest = _resolve_manifest(client, ref)
    if max_layer_size is not None and manifest.layer.size > max_layer_size:
        raise RegistryError(
            f"{ref}: its layer of {manifest.layer.size} bytes is over the "
            f"{max_layer_size}-byte limit"
        )
    from hatch_wasm_oci.registry.referrers import list_referrers

    warnings: list[str] = []
    listed: tuple[Descriptor, ...] = ()
    try:
        listed = list_referrers(
            client, ref.repository, digest, f"listing referrers of {ref}"
        ).entries
    except RegistryError as exc:
        if referrers:
            raise
        warnings.append(str(exc))
    out_dir = Path(out_dir)
    title = manifest.layer.annotations.get(TITLE)
    wasm_path = out_dir / wasm_file_name(title, ref.repository)
    if not force and os.path.lexists(wasm_path):
        raise LayoutError(f"{wasm_path} exists (pull --force replaces it)")
    created = _make_directory(out_dir)
    fetch = listed if referrers else ()
    try:
        result = _write(client, ref, out_dir, wasm_path, force, data, digest, manifest, fetch)
    except BaseException as exc:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        if isinstance(exc, FileExistsError):
            raise LayoutError(f"{wasm_path} exists (pull --force replaces it)") from None
        if isinstance(exc, OSError):
            raise LayoutError(f"{out_dir}: cannot write: {exc.strerror or exc}") from None
        raise
    return dataclasses.replace(
        result, referrers=listed, fetched=referrers, warnings=tuple(warnings)
    )


def _make_directory(path: Path) -> Path | None:
    """Create ``path`` (and missing parents); return the topmost directory created, if any."""
    if path.is_dir():
        return None
    top = path
    while not top.parent.exists() and top.parent != top:
        top = top.parent
    try:
        path.mkdir(parents=True)
    except OSError as exc:
        raise LayoutError(f"{path}: cannot create: {exc.strerror or exc}") from None
    return top


def _write(
    client: RegistryClient,
    ref: Reference,
    out_dir: Path,
    wasm_path: Path,
    force: bool,
    data: bytes,
    digest: str,
    manifest: WasmManifest,
    referrers: tuple[Descriptor, ...] = (),
) -> PullResult:
    """Stage the layout and a copy of the layer, then commit the layout and place the
    ``.wasm``; whatever fails before the end is undone."""
    action = f"pulling {ref}"
    layer = manifest.layer
    layout_path = out_dir / LAYOUT_DIR_NAME
    with LayoutWriter(layout_path) as writer:
        # Under the layout's lock every staged .wasm in out_dir is a dead pull's.
        remove_stale(out_dir, wasm_path.name, older_than=None)
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
        for entry in referrers:
            _fetch_referrer(client, ref, digest, entry, writer)
        with staged_copy(writer.blob_path(layer.digest), wasm_path) as staged:
            writer.commit()
            try:
                place(staged, wasm_path, replace=force)
            except BaseException:
                writer.rollback()
                raise
    return PullResult(str(ref), digest, wasm_path, layout_path, layer.size)
