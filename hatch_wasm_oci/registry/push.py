"""Pushing the manifests of an OCI layout, byte for byte, to registry references.

Order per repository: every blob is confirmed (present, mounted or uploaded and acknowledged)
before the first manifest PUT, and extra tags follow the first, so no tag a push creates ever
points at missing content.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hatch_wasm_oci.errors import LayoutError, RegistryError
from hatch_wasm_oci.oci.descriptor import Descriptor
from hatch_wasm_oci.oci.layout_reader import OciLayout
from hatch_wasm_oci.registry.client import RegistryClient
from hatch_wasm_oci.registry.credentials import Credentials, resolve_credentials
from hatch_wasm_oci.registry.errors import CHUNK_ENV, ERROR_BODY_LIMIT, printable, registry_codes
from hatch_wasm_oci.registry.mounts import BlobLocations
from hatch_wasm_oci.registry.progress import Meter, Reporter
from hatch_wasm_oci.registry.reference import Reference, parse_reference, validate_reference_tag
from hatch_wasm_oci.registry.retry import Backoff, RetryPolicy, TransientError
from hatch_wasm_oci.registry.transport import FileBody

FALLBACK_TAG_PREFIX = "sha256-"
DEFAULT_CHUNKED_ABOVE = 1 << 30
DEFAULT_CHUNK_SIZE = 64 << 20


@dataclass(frozen=True)
class PushTarget:
    """One manifest of the layout going to one repository under zero or more tags."""

    repository: Reference
    manifest: Descriptor
    tags: tuple[str, ...]
    blobs: tuple[Descriptor, ...]


@dataclass(frozen=True)
class PushedReference:
    """A reference that now names the pushed manifest."""

    reference: str
    repository: str
    digest: str
    size: int
    media_type: str

    @property
    def line(self) -> str:
        """``REF@sha256:...`` (just ``REPO@sha256:...`` when pushed by digest)."""
        if self.reference.endswith(self.digest):
            return self.reference
        return f"{self.reference}@{self.digest}"

    def to_json(self) -> dict[str, Any]:
        """The summary entry for signing tools."""
        return {
            "reference": self.reference,
            "repository": self.repository,
            "pinned": f"{self.repository}@{self.digest}",
            "digest": self.digest,
            "size": self.size,
            "mediaType": self.media_type,
        }


@dataclass
class PushStats:
    """Counters of one push."""

    blob_bytes_sent: int = 0
    blobs_uploaded: int = 0
    blobs_present: int = 0
    blobs_mounted: int = 0
    manifests_put: int = 0


@dataclass
class PushResult:
    """What a push (or a dry run) did."""

    references: list[PushedReference] = field(default_factory=list)
    stats: PushStats = field(default_factory=PushStats)
    dry_run: bool = False
    blobs: list[dict[str, Any]] = field(default_factory=list)
    """Per blob and repository: ``digest``, ``size``, ``repository`` (``host/name``, as in the
    references) and ``outcome``
    (``uploaded``, ``exists`` or ``mounted``)."""
    referrers: list[Descriptor] = field(default_factory=list)
    """The referrers (SBOM, provenance) attached after their subjects."""
    warnings: list[str] = field(default_factory=list)
    """What was pushed but not completely (referrers a registry refused)."""

    def add(self, other: PushResult) -> None:
        """Fold ``other`` (another push of the same publish) into this result."""
        self.references.extend(other.references)
        self.blobs.extend(other.blobs)
        self.referrers.extend(other.referrers)
        self.warnings.extend(other.warnings)
        for stat in vars(self.stats):
            setattr(self.stats, stat, getattr(self.stats, stat) + getattr(other.stats, stat))

    def summary(self) -> dict[str, Any]:
        """The JSON summary: references, digests and sizes (never credentials)."""
        return {
            "dryRun": self.dry_run,
            "references": [r.to_json() for r in self.references],
            "stats": {
                "blobBytesSent": self.stats.blob_bytes_sent,
                "blobsUploaded": self.stats.blobs_uploaded,
                "blobsAlreadyPresent": self.stats.blobs_present,
                "blobsMounted": self.stats.blobs_mounted,
                "manifestsPut": self.stats.manifests_put,
            },
            "blobs": self.blobs,
            "referrers": [
                {"digest": r.digest, "artifactType": r.artifact_type} for r in self.referrers
            ],
        }


@dataclass
class PushOptions:
    """Transport and upload settings; ``environ`` (default ``os.environ``) is where credentials
    and HATCH_WASM_OCI_MAX_RETRY_SECONDS are read."""

    plain_http: bool = False
    ca_file: Path | None = None
    chunked_above: int = DEFAULT_CHUNKED_ABOVE
    chunk_size: int = DEFAULT_CHUNK_SIZE
    progress: Reporter | None = None
    """Where blob progress and outcomes go (default: stderr, live on a terminal)."""
    environ: Mapping[str, str] | None = None
    locations: BlobLocations | None = None
    #: Credentials the user gave for this push (``hatch publish -u/-a``): used before any other.
    credentials: Credentials | None = None
    #: One client per registry host, shared by everything that uses these options (the tag
    #: check before a push and the push itself share their connection and token).
    clients: dict[str, RegistryClient] = field(default_factory=dict, repr=False)

    def client(self, ref: Reference) -> RegistryClient:
        """The client for ``ref``'s registry, made once with these options."""
        host = ref.api_host
        if host not in self.clients:
            environ = self.environ
            self.clients[host] = RegistryClient(
                host,
                self.credentials or resolve_credentials(ref.host, environ),
                plain_http=self.plain_http,
                ca_file=self.ca_file,
                retry=RetryPolicy.from_env(environ),
                environ=environ,
            )
        return self.clients[host]


def chunked_above_from_env(environ: Mapping[str, str] | None = None) -> int:
    """The chunked-upload threshold in bytes from HATCH_WASM_OCI_CHUNKED_ABOVE (or the default)."""
    env = os.environ if environ is None else environ
    raw = env.get(CHUNK_ENV)
    return parse_size(raw, CHUNK_ENV) if raw else DEFAULT_CHUNKED_ABOVE


def parse_size(text: str, what: str) -> int:
    """Bytes from ``123``, ``64k``, ``16M`` or ``1G`` (binary units)."""
    raw = text.strip().lower().removesuffix("ib").removesuffix("b")
    factor = 1
    if raw and raw[-1] in "kmg":
        factor = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[raw[-1]]
        raw = raw[:-1]
    if not raw.isdigit():
        raise RegistryError(f"{what}: {text!r} is not a size in bytes (e.g. 536870912 or 512M)")
    return int(raw) * factor


def _manifest_blobs(layout: OciLayout, desc: Descriptor) -> tuple[Descriptor, ...]:
    manifest = layout.manifest(desc)  # checks the manifest's own size and digest
    items = [manifest.get("config"), *(manifest.get("layers") or [])]
    blobs: list[Descriptor] = []
    for item in items:
        blob = Descriptor.from_json(item)
        layout.check_blob(blob)  # a regular file of the descriptor's size
        if blob.digest not in {b.digest for b in blobs}:
            blobs.append(blob)
    return tuple(blobs)


def plan_push(layout: OciLayout, references: Sequence[str]) -> list[PushTarget]:
    """Which manifest goes where under which tags.

    ``REPO:TAG`` pushes the layout's manifest tagged TAG (or its only manifest, tagged TAG);
    ``REPO`` pushes every tag of the layout; ``REPO@sha256:...`` pushes that manifest by digest.
    """
    if not references:
        raise RegistryError("no reference to push to")
    tags = layout.tags()
    for tag in tags:
        try:
            validate_reference_tag(tag)
        except RegistryError:
            raise LayoutError(
                f"{layout.path}: index.json holds the tag {printable(tag)!r}, which is not a valid "
                "OCI tag; refused before contacting any registry"
            ) from None
    manifests = {d.digest: d for d in layout.artifacts()}  # referrers follow their subjects
    if not manifests:
        raise LayoutError(f"{layout.path}: the layout holds no manifest")
    # Per (repository, manifest): the tags, in order, as dict keys (no quadratic membership).
    wanted: dict[tuple[str, str], tuple[Reference, Descriptor, dict[str, None]]] = {}

    def add(ref: Reference, desc: Descriptor, tag: str | None) -> None:
        key = (ref.repo_ref, desc.digest)
        entry = wanted.setdefault(key, (Reference(ref.host, ref.repository), desc, {}))
        if tag:
            entry[2][tag] = None

    for text in references:
        ref = parse_reference(text)
        if ref.digest:
            if ref.digest not in manifests:
                raise RegistryError(f"{text}: the layout has no manifest {ref.digest}")
            add(ref, manifests[ref.digest], ref.tag)
        elif ref.tag:
            if ref.tag in tags:
                add(ref, tags[ref.tag], ref.tag)
            elif len(manifests) == 1:
                add(ref, next(iter(manifests.values())), ref.tag)
            else:
                known = ", ".join(sorted(tags)) or "none"
                raise RegistryError(
                    f"{text}: the layout has several manifests and no tag {ref.tag!r} "
                    f"(its tags: {known})"
                )
        elif pushable := {t: d for t, d in tags.items() if not t.startswith(FALLBACK_TAG_PREFIX)}:
            # Referrers-API fallback tags (sha256-<hex>, as pull writes them) are pushed only
            # when named: pushing them back would create tags the user never asked for.
            for tag, desc in pushable.items():
                add(ref, desc, tag)
        elif len(manifests) == 1:
            add(ref, next(iter(manifests.values())), None)
        else:
            raise RegistryError(f"{text}: the layout has several untagged manifests; name a digest")
    layout_tags: dict[str, list[str]] = {}
    for tag, desc in tags.items():
        layout_tags.setdefault(desc.digest, []).append(tag)
    blob_cache: dict[str, tuple[Descriptor, ...]] = {}
    targets = []
    for repo, desc, tag_list in wanted.values():
        if desc.digest not in blob_cache:
            # Push refuses what verify refuses: the same rules, before any registry is contacted.
            problem = layout.artifact_problem(desc, [*layout_tags.get(desc.digest, []), *tag_list])
            if problem:
                raise LayoutError(
                    f"{layout.path}: {desc.digest}: {problem}; refused before contacting any "
                    "registry"
                )
            blob_cache[desc.digest] = _manifest_blobs(layout, desc)
        targets.append(PushTarget(repo, desc, tuple(tag_list), blob_cache[desc.digest]))
    return targets


def _pushed(target: PushTarget, tag: str | None) -> PushedReference:
    repo = target.repository.repo_ref
    desc = target.manifest
    name = f"{repo}:{tag}" if tag else f"{repo}@{desc.digest}"
    return PushedReference(name, repo, desc.digest, desc.size, desc.media_type)


def dry_run(targets: Sequence[PushTarget]) -> PushResult:
    """What ``push`` would do, contacting nothing."""
    result = PushResult(dry_run=True)
    for target in targets:
        for tag in target.tags or (None,):
            result.references.append(_pushed(target, tag))
    return result


def dry_run_lines(targets: Sequence[PushTarget]) -> list[str]:
    """What a dry run prints: each reference with its manifest digest and size, then the blobs."""
    lines = []
    for target in targets:
        for tag in target.tags or (None,):
            where = f":{tag}" if tag else ""
            lines.append(
                f"would push {target.repository}{where}@{target.manifest.digest} "
                f"(manifest {target.manifest.size} bytes)"
            )
        lines.extend(
            f"  blob {blob.digest} {blob.size} bytes {blob.media_type}" for blob in target.blobs
        )
    return lines


class _Pusher:
    def __init__(self, layout: OciLayout, options: PushOptions) -> None:
        self.layout = layout
        self.options = options
        self.stats = PushStats()
        self.locations = options.locations or BlobLocations()
        self.reporter = options.progress or Reporter()
        self.blobs: list[dict[str, Any]] = []

    def outcome(self, client: RegistryClient, repo: str, blob: Descriptor, outcome: str) -> None:
        """Record and show what became of ``blob`` in ``repo``."""
        self.blobs.append(
            {
                "repository": f"{client.host}/{repo}",
                "digest": blob.digest,
                "size": blob.size,
                "outcome": outcome,
            }
        )
        self.reporter.outcome(blob.digest, blob.size, outcome)

    def client(self, ref: Reference) -> RegistryClient:
        return self.options.client(ref)

    def push_repository(self, targets: list[PushTarget]) -> list[PushedReference]:
        ref = targets[0].repository
        client = self.client(ref)
        repo = ref.repository
        client.want(repo, "pull", "push")
        seen: set[str] = set()
        for target in targets:
            for blob in target.blobs:
                if blob.digest not in seen:
                    seen.add(blob.digest)
                    self.ensure_blob(client, repo, blob)
                    self.locations.record(client.host, blob.digest, repo)
        out = []
        for target in targets:
            data = self.layout.manifest_bytes(target.manifest)
            names: list[str | None] = list(target.tags) or [None]
            for name in names:
                self.put_manifest(client, repo, target.manifest, data, name)
                out.append(_pushed(target, name))
        return out

    def put_manifest(
        self, client: RegistryClient, repo: str, desc: Descriptor, data: bytes, tag: str | None
    ) -> str | None:
        """PUT a manifest; returns the ``OCI-Subject`` the registry answered with, if any (a
        registry with the referrers API names the subject it indexed)."""
        where = f"{client.host}/{repo}:{tag}" if tag else f"{client.host}/{repo}@{desc.digest}"
        action = f"pushing manifest {where}"
        response = client.request(
            "PUT",
            f"/v2/{repo}/manifests/{tag or desc.digest}",
            repository=repo,
            action=action,
            what="manifest",
            headers={"Content-Type": desc.media_type},
            body=lambda: data,
        )
        if response.status_code not in (200, 201):
            raise client.error(response, action=action, repository=repo, what="manifest")
        echoed = response.headers.get("Docker-Content-Digest")
        if echoed and echoed != desc.digest:
            raise RegistryError(
                f"{action}: the registry stored digest {printable(echoed)}, not {desc.digest} "
                "(it rewrote the manifest)"
            )
        self.stats.manifests_put += 1
        return response.headers.get("OCI-Subject")

    def push_referrers(
        self, client: RegistryClient, repo: str, subject: Descriptor, referrers: list[Descriptor]
    ) -> None:
        """Send ``referrers`` of ``subject`` (already pushed): their blobs, their manifests by
        digest, then, when the registry has no referrers API, the merged fallback tag index."""
        from hatch_wasm_oci.oci.referrers import fallback_tag
        from hatch_wasm_oci.registry.referrers import list_referrers, merged_index

        indexed = False
        sent: set[str] = set()  # the empty config is every referrer's: checked once
        for desc in referrers:
            for blob in _manifest_blobs(self.layout, desc):
                if blob.digest not in sent:
                    sent.add(blob.digest)
                    self.ensure_blob(client, repo, blob)
            data = self.layout.manifest_bytes(desc)
            indexed = self.put_manifest(client, repo, desc, data, None) == subject.digest or indexed
        if indexed:
            return
        action = f"attaching referrers to {client.host}/{repo}@{subject.digest}"
        listing = list_referrers(client, repo, subject.digest, action)
        if listing.source == "api":
            return
        tag = fallback_tag(subject.digest)
        index = merged_index(listing.index, referrers)
        index_desc = Descriptor(
            "application/vnd.oci.image.index.v1+json",
            "sha256:" + hashlib.sha256(index).hexdigest(),
            len(index),
        )
        self.put_manifest(client, repo, index_desc, index, tag)

    def ensure_blob(self, client: RegistryClient, repo: str, blob: Descriptor) -> None:
        short = blob.digest[:19]
        action = f"pushing blob {short} to {client.host}/{repo}"
        head = client.request(
            "HEAD", f"/v2/{repo}/blobs/{blob.digest}", repository=repo, action=action
        )
        head.close()
        if head.status_code == 200:
            self.stats.blobs_present += 1
            self.outcome(client, repo, blob, "exists")
            return
        if head.status_code != 404:
            raise client.error(head, action=action, repository=repo, what="blob")
        location = self.mount_or_start(client, repo, blob, action)
        if location is None:
            self.outcome(client, repo, blob, "mounted")
            return
        backoff = Backoff(client.retry)
        while True:
            try:
                if location is None:
                    location = self.start_upload(client, repo, action)
                if blob.size > self.options.chunked_above:
                    self.upload_chunked(client, repo, blob, location, action)
                else:
                    self.upload_monolithic(client, repo, blob, location, action)
                self.stats.blobs_uploaded += 1
                self.outcome(client, repo, blob, "uploaded")
                return
            except TransientError as exc:
                location = None
                backoff.wait_or_raise(exc.description, exc.retry_after, action)

    def mount_or_start(
        self, client: RegistryClient, repo: str, blob: Descriptor, action: str
    ) -> str | None:
        """Mount from a repository known to hold the blob (None when mounted), else return the
        URL of a new upload session. ``locations`` already holds this run's own pushes."""
        candidates = self.locations.candidates(client.host, blob.digest, repo)
        if not candidates:
            return self.start_upload(client, repo, action)
        source = candidates[0]
        client.want(source, "pull")
        response = client.request(
            "POST",
            f"/v2/{repo}/blobs/uploads/",
            repository=repo,
            action=action,
            params=[("mount", blob.digest), ("from", source)],
        )
        response.close()
        if response.status_code == 201:
            self.stats.blobs_mounted += 1
            return None
        location = client.location(response)
        if response.status_code == 202 and location:
            return location
        raise client.error(response, action=action, repository=repo, what="blob")

    def start_upload(self, client: RegistryClient, repo: str, action: str) -> str:
        response = client.request(
            "POST", f"/v2/{repo}/blobs/uploads/", repository=repo, action=action
        )
        response.close()
        location = client.location(response)
        if response.status_code != 202 or not location:
            raise client.error(response, action=action, repository=repo, what="blob")
        return location

    def _body(self, blob: Descriptor, offset: int, length: int, progress: Meter) -> Any:
        path = self.layout.blob_path(blob.digest)

        def on_read(count: int) -> None:
            self.stats.blob_bytes_sent += count
            progress.advance(count)

        return lambda: FileBody(path, offset, length, on_read)

    def _progress(self, blob: Descriptor) -> Meter:
        return self.reporter.meter("uploading", blob.digest, blob.size)

    def _complete(
        self,
        client: RegistryClient,
        repo: str,
        blob: Descriptor,
        location: str,
        action: str,
        body: Any,
    ) -> None:
        """``PUT location?digest=...`` with the last (or only) bytes; check the answer."""
        response = client.request(
            "PUT",
            location,
            repository=repo,
            action=action,
            params=[("digest", blob.digest)],
            headers={"Content-Type": "application/octet-stream"},
            body=body,
            retry=False,
        )
        if response.status_code == 201:
            echoed = response.headers.get("Docker-Content-Digest")
            if echoed and echoed != blob.digest:
                raise RegistryError(f"{action}: the registry computed digest {printable(echoed)}")
            return
        codes = {code for code, _ in registry_codes(response.head(ERROR_BODY_LIMIT))}
        if response.status_code == 400 and "DIGEST_INVALID" in codes:
            raise RegistryError(
                f"{action} failed: the registry says the bytes do not match {blob.digest} — "
                f"hint: run hatch-wasm-oci verify {self.layout.path}"
            )
        raise client.error(response, action=action, repository=repo, what="blob")

    def upload_monolithic(
        self, client: RegistryClient, repo: str, blob: Descriptor, location: str, action: str
    ) -> None:
        progress = self._progress(blob)
        try:
            self._complete(
                client, repo, blob, location, action, self._body(blob, 0, blob.size, progress)
            )
        finally:
            progress.finish()

    def upload_chunked(
        self, client: RegistryClient, repo: str, blob: Descriptor, location: str, action: str
    ) -> None:
        progress = self._progress(blob)
        step = max(1, self.options.chunk_size)
        try:
            for offset in range(0, blob.size, step):
                length = min(step, blob.size - offset)
                response = client.request(
                    "PATCH",
                    location,
                    repository=repo,
                    action=action,
                    headers={
                        "Content-Type": "application/octet-stream",
                        "Content-Range": f"{offset}-{offset + length - 1}",
                    },
                    body=self._body(blob, offset, length, progress),
                    retry=False,
                )
                response.close()
                next_location = client.location(response)
                if response.status_code != 202 or not next_location:
                    raise client.error(response, action=action, repository=repo, what="blob")
                location = next_location
        finally:
            progress.finish()
        self._complete(client, repo, blob, location, action, lambda: b"")


def push(layout: OciLayout, targets: Sequence[PushTarget], options: PushOptions) -> PushResult:
    """Push ``targets`` (from ``plan_push``); RegistryError names what failed and why."""
    pusher = _Pusher(layout, options)
    result = PushResult(stats=pusher.stats, blobs=pusher.blobs)
    groups: dict[str, list[PushTarget]] = {}
    for target in targets:
        groups.setdefault(target.repository.repo_ref, []).append(target)
    try:
        for group in groups.values():
            result.references.extend(pusher.push_repository(group))
            attach_referrers(pusher, group, result)
    finally:
        pusher.locations.save()
    return result


def attach_referrers(pusher: _Pusher, group: Sequence[PushTarget], result: PushResult) -> None:
    """Push the layout's referrers of each manifest just pushed. A registry that refuses them
    fails nothing: the component is there; one warning names what was not attached."""
    done: set[str] = set()
    for target in group:
        subject = target.manifest
        if subject.digest in done:
            continue
        done.add(subject.digest)
        try:
            found = pusher.layout.referrers(subject.digest)
        except LayoutError as exc:
            result.warnings.append(f"referrers of {subject.digest} not attached: {exc}")
            continue
        if not found:
            continue
        entries = [_entry(desc, referrer) for desc, referrer in found]
        client = pusher.client(target.repository)
        try:
            pusher.push_referrers(client, target.repository.repository, subject, entries)
        except (RegistryError, LayoutError, TransientError) as exc:
            kinds = ", ".join(sorted({e.artifact_type or "unknown" for e in entries}))
            result.warnings.append(
                f"{target.repository.repo_ref}@{subject.digest}: pushed, but its referrers "
                f"({kinds}) were not attached: {exc}"
            )
            continue
        result.referrers.extend(entries)


def _entry(desc: Descriptor, referrer: Any) -> Descriptor:
    """The index entry of a layout's referrer: digest, size, artifactType, annotations."""
    return Descriptor(
        desc.media_type,
        desc.digest,
        desc.size,
        dict(referrer.annotations),
        None,
        referrer.artifact_type,
    )
