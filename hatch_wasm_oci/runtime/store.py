"""The local content store: pulled Wasm OCI artifacts kept by digest.

``<cache>/store/blobs/sha256/<hex>`` holds manifests, configs and layers, each hashed on the
way in (a blob is stored only under the digest it hashes to) and again when read.
``<cache>/store/tags/<hash of the reference>.json`` remembers the digest a tag last resolved
to, for ``--offline``; since that record decides what runs, it carries an HMAC under this
user's secret (:mod:`~hatch_wasm_oci.files.user_key`) and one that does not verify is refused.
A tag is resolved against the registry on every use (one manifest request); a digest already
in the store never touches the network.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hatch_wasm_oci.errors import RegistryError, WasmOciError
from hatch_wasm_oci.files.atomic import atomic_write, replacing
from hatch_wasm_oci.files.digest import CHUNK_SIZE
from hatch_wasm_oci.files.json_input import parse_json_object
from hatch_wasm_oci.files.regular import read_regular
from hatch_wasm_oci.files.user_key import UserKeyError, keyed_hasher, user_key
from hatch_wasm_oci.oci.descriptor import Descriptor
from hatch_wasm_oci.oci.layout import blob_relpath
from hatch_wasm_oci.registry.reference import Reference, parse_reference

MAX_MANIFEST = 4 << 20
MAX_TAG_RECORD = 4096
TAG_SEAL_PURPOSE = "store-tag"


@dataclass(frozen=True)
class StoredArtifact:
    """A Wasm OCI artifact in the store: its manifest digest and its verified blobs."""

    reference: str
    digest: str
    config: dict[str, Any]
    layer: Descriptor
    wasm: Path


@dataclass(frozen=True)
class RegistryOptions:
    """How to reach a registry (as for ``pull``)."""

    plain_http: bool = False
    ca_file: Path | None = None
    environ: Mapping[str, str] | None = None
    offline: bool = False


class ContentStore:
    """Blobs by digest under ``root``; every blob hashed on the way in."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def blob_path(self, digest: str) -> Path:
        return self.root / blob_relpath(digest)

    def has(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def add_file(self, source: Path, digest: str) -> Path:
        """Copy ``source`` in as ``digest``; RegistryError if it does not hash to it."""
        target = self.blob_path(digest)
        target.parent.mkdir(parents=True, exist_ok=True)
        hasher = hashlib.sha256()
        with source.open("rb") as src, replacing(target) as sink:
            while chunk := src.read(CHUNK_SIZE):
                hasher.update(chunk)
                sink.write(chunk)
            if "sha256:" + hasher.hexdigest() != digest:
                raise RegistryError(f"{source}: does not hash to {digest}; not stored")
        return target

    def keep(self, layout: Path, reference: str | None = None, digest: str | None = None) -> None:
        """Copy every blob of a pulled layout in (each hashed); remember the tag's digest."""
        for blob in sorted((layout / "blobs" / "sha256").iterdir()):
            self.add_file(blob, f"sha256:{blob.name}")  # replaces a damaged copy
        if reference is not None and digest is not None:
            ref = parse_reference(reference)
            if ref.tag:
                self.remember_tag(ref, digest)

    def read_verified(self, digest: str, limit: int = MAX_MANIFEST) -> bytes | None:
        """A small blob's bytes, or None if absent, too large or not matching its digest."""
        path = self.blob_path(digest)
        try:
            if path.stat().st_size > limit:
                return None
            data = path.read_bytes()
        except OSError:
            return None
        return data if "sha256:" + hashlib.sha256(data).hexdigest() == digest else None

    def verified_path(self, descriptor: Descriptor) -> Path | None:
        """The path of a large blob whose size and hash match ``descriptor``, else None."""
        path = self.blob_path(descriptor.digest)
        try:
            if path.stat().st_size != descriptor.size:
                return None
            hasher = hashlib.sha256()
            with path.open("rb") as handle:
                while chunk := handle.read(CHUNK_SIZE):
                    hasher.update(chunk)
        except OSError:
            return None
        return path if "sha256:" + hasher.hexdigest() == descriptor.digest else None

    def _tag_file(self, ref: Reference) -> Path:
        return self.root / "tags" / (hashlib.sha256(str(ref).encode()).hexdigest() + ".json")

    def remember_tag(self, ref: Reference, digest: str) -> None:
        """Record the digest ``ref`` resolved to, sealed with this user's key (no record
        when the key is unavailable: ``--offline`` by tag then needs one online run)."""
        try:
            seal = _tag_seal(user_key(), str(ref), digest)
        except UserKeyError:
            return
        path = self._tag_file(ref)
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {"reference": str(ref), "digest": digest, "seal": seal}
        atomic_write(path, json.dumps(record).encode())

    def recall_tag(self, ref: Reference) -> str | None:
        """The digest ``ref`` last resolved to; None if never recorded. RegistryError for a
        record this user's key did not seal (planted, copied or damaged): it names what
        runs, so it is never trusted on its own say."""
        path = self._tag_file(ref)
        try:
            data = read_regular(path, MAX_TAG_RECORD)
        except FileNotFoundError:
            return None
        except (OSError, WasmOciError) as exc:
            raise RegistryError(f"{ref}: the store's tag record is unreadable: {exc}") from None
        refused = (
            f"{ref}: the local store's record of this tag does not verify (damaged, or not "
            "written by this user); run once without --offline, or name a digest"
        )
        try:
            record = parse_json_object(data, "tag record", MAX_TAG_RECORD)
            key = user_key()
        except WasmOciError:
            raise RegistryError(refused) from None
        except UserKeyError as exc:
            raise RegistryError(f"{ref}: cannot verify the store's tag record: {exc}") from None
        digest, seal = record.get("digest"), record.get("seal")
        if (
            record.get("reference") != str(ref)
            or not isinstance(digest, str)
            or not isinstance(seal, str)
            or not hmac.compare_digest(_tag_seal(key, str(ref), digest), seal)
        ):
            raise RegistryError(refused)
        return digest

    def artifact(self, ref: Reference, digest: str) -> StoredArtifact | None:
        """The complete, intact artifact with manifest ``digest``, or None."""
        from hatch_wasm_oci.registry import pull as registry_pull  # lazy: HTTP stack, ~50 ms
        data = self.read_verified(digest)
        if data is None:
            return None
        where = f"{ref} (stored {digest[:19]})"
        manifest = registry_pull._parse_manifest(data, where)
        config_desc, layer = manifest.config, manifest.layer
        config_bytes = self.read_verified(config_desc.digest)
        if config_bytes is None:
            return None
        wasm = self.verified_path(layer)
        if wasm is None:
            return None
        config = parse_json_object(config_bytes, f"{where}: config", MAX_MANIFEST)
        return StoredArtifact(str(ref), digest, config, layer, wasm)

    def fetch(self, reference: str, options: RegistryOptions) -> StoredArtifact:
        """The artifact ``reference`` names: from the store when its digest is there."""
        ref = parse_reference(reference)
        if not ref.tag and not ref.digest:
            ref = ref.with_tag("latest")
        digest = ref.digest
        if digest is None and options.offline:
            digest = self.recall_tag(ref)
            if digest is None:
                raise RegistryError(f"{ref} is not in the local store; run once without --offline")
        if digest is None:
            digest = resolve_digest(ref, options)
        found = self.artifact(ref, digest)
        if found is not None:
            if ref.tag:
                self.remember_tag(ref, digest)
            return found
        if options.offline:
            raise RegistryError(f"{ref.with_digest(digest)} is not in the local store (--offline)")
        self._pull_into_store(ref, digest, options)
        found = self.artifact(ref, digest)
        if found is None:  # pragma: no cover - just written and verified
            raise RegistryError(f"{ref.with_digest(digest)}: the store lost it while reading")
        if ref.tag:
            self.remember_tag(ref, digest)
        return found

    def _pull_into_store(self, ref: Reference, digest: str, options: RegistryOptions) -> None:
        from hatch_wasm_oci.registry import pull as registry_pull

        self.root.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".pull-", dir=self.root))
        try:
            pinned = ref.with_digest(digest)
            result = registry_pull.pull(
                str(pinned),
                scratch / "out",
                plain_http=options.plain_http,
                ca_file=options.ca_file,
                environ=options.environ,
            )
            self.keep(result.layout)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


def _tag_seal(key: bytes, reference: str, digest: str) -> str:
    """The HMAC a tag record carries, under this user's key (purpose ``store-tag``)."""
    mac = keyed_hasher(key, TAG_SEAL_PURPOSE)
    mac.update(reference.encode() + b"\0" + digest.encode())
    return mac.hexdigest()


def resolve_digest(ref: Reference, options: RegistryOptions) -> str:
    """The digest the registry's manifest for ``ref`` hashes to (one manifest request)."""
    from hatch_wasm_oci.registry import pull as registry_pull
    from hatch_wasm_oci.registry.client import RegistryClient, RetryPolicy
    from hatch_wasm_oci.registry.credentials import resolve_credentials

    client = RegistryClient(
        ref.api_host,
        resolve_credentials(ref.host, options.environ),
        plain_http=options.plain_http,
        ca_file=options.ca_file,
        retry=RetryPolicy.from_env(options.environ),
    )
    client.want(ref.repository, "pull")
    _data, digest, _manifest = registry_pull._resolve_manifest(client, ref)
    return digest
