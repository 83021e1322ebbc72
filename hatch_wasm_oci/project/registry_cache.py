"""The compile cache in an OCI registry, so a fresh CI runner reuses the developer's component.

An entry is a Wasm OCI artifact in the cache repository, tagged with the compile's input key
(:func:`~hatch_wasm_oci.project.componentize.input_key`); its manifest annotations record that key
and the compiler version. It is pulled (every digest verified) before compiling and pushed after.
Every failure here is a one-line warning, never a failed build: a registry that is down, or
accepts connections but does not answer, is noticed within :data:`CONNECT_SECONDS` and then left
alone for the rest of the build; a corrupt or foreign entry is ignored and replaced by the fresh
compile.

Trust: without a cache key, an entry is trusted because of where it is, so everyone who can push
to the repository chooses what a build that reads it ships. With ``HATCH_WASM_OCI_CACHE_KEY``
(a secret of at least 32 characters shared by the cache's writers and readers), each entry
carries an HMAC-SHA256 over its input key, its layer digest and its builder record, and entries
without a valid one are refused (a warning; the build compiles). ``cache-signed = true`` in the
project makes the key mandatory: a build without it does not use the registry cache at all.
Every entry records the builder that stored it (hatch-wasm-oci and componentize-py versions,
the signing key's id; nothing about the host or user), shown on a cache hit with ``-v``.

Reading needs pull access only; writing needs push access (a refused push is a warning).
Loopback registries (``localhost``, ``127.0.0.1``, ``[::1]``) are spoken to over plain HTTP.
"""

from __future__ import annotations

import hmac
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from hatch_wasm_oci import __version__
from hatch_wasm_oci.errors import WasmOciError
from hatch_wasm_oci.files.atomic import replacing
from hatch_wasm_oci.files.digest import CHUNK_SIZE, file_digest
from hatch_wasm_oci.files.json_input import parse_json_object
from hatch_wasm_oci.files.user_key import keyed_hasher

KEY_ANNOTATION = "dev.hatch-wasm-oci.cache.input-key"
COMPILER_ANNOTATION = "dev.hatch-wasm-oci.cache.compiler"
BUILDER_ANNOTATION = "dev.hatch-wasm-oci.cache.builder"
SIGNATURE_ANNOTATION = "dev.hatch-wasm-oci.cache.signature"
CACHE_REPOSITORY_ENV = "HATCH_WASM_OCI_CACHE_REPOSITORY"
#: The shared secret that signs and verifies entries (a CI secret; never printed).
CACHE_KEY_ENV = "HATCH_WASM_OCI_CACHE_KEY"
#: The shortest cache key accepted (e.g. ``openssl rand -hex 32`` gives 64 characters).
MIN_KEY_LENGTH = 32
SIGNATURE_PREFIX = "hmac-sha256:"
#: The longest builder record shown (it comes from the registry: hostile until verified).
MAX_RECORD = 200
#: How long the registry may take to answer ``GET /v2/`` before the cache is skipped.
CONNECT_SECONDS = 3.0
#: The bound on retries of one cache request (HATCH_WASM_OCI_MAX_RETRY_SECONDS for it).
RETRY_SECONDS = "5"
_LOOPBACK = ("localhost", "127.0.0.1", "::1")

Log = Callable[[str], None]


def cache_repository(configured: str | None, environ: Mapping[str, str]) -> str | None:
    """The cache repository: ``HATCH_WASM_OCI_CACHE_REPOSITORY`` when set, else the setting.

    An empty variable switches a configured registry cache off.
    """
    if CACHE_REPOSITORY_ENV in environ:
        return environ[CACHE_REPOSITORY_ENV].strip() or None
    return configured


def validate_cache_repository(text: str) -> str | None:
    """None if ``text`` names a repository (``HOST/PATH``, no tag or digest), else why not."""
    from hatch_wasm_oci.registry.reference import parse_reference

    try:
        ref = parse_reference(text)
    except WasmOciError as exc:
        return str(exc)
    if ref.tag or ref.digest:
        return f"{text!r} must name a repository, without a tag or digest"
    if "/" not in text.split("@")[0]:
        return f"{text!r} must name a registry host and a repository (HOST/NAME)"
    return None


def _shown(text: object) -> str:
    """A registry-supplied string made safe for one terminal line."""
    value = text if isinstance(text, str) else repr(text)
    clean = "".join(c if c.isprintable() else "?" for c in value[:MAX_RECORD])
    return clean + ("..." if len(value) > MAX_RECORD else "")


@dataclass(frozen=True)
class CacheHit:
    """A registry cache entry that was used: where, who recorded storing it, and the id of the
    key whose signature verified (None: not checked, no cache key is set)."""

    reference: str
    builder: str | None
    key_id: str | None

    def describe(self) -> str:
        """One line for ``-v``: the builder record and how far it is trusted."""
        who = f"stored by {_shown(self.builder)}" if self.builder else "no builder record"
        if self.key_id is not None:
            trust = f"signature verified with {CACHE_KEY_ENV} (key id {self.key_id})"
        else:
            trust = (
                f"not verified: {CACHE_KEY_ENV} is not set, so anyone who can push to the "
                "cache repository could have stored it"
            )
        return f"Registry cache entry {self.reference}: {who}; {trust}"


@dataclass
class RegistryCache:
    """Compiled components in ``repository`` (``HOST/PATH``), tagged by input key.

    ``required`` (the ``cache-signed`` setting): use the cache only with a cache key."""

    repository: str
    environ: Mapping[str, str] = field(default_factory=dict)
    required: bool = False
    #: Set once the registry proved unreachable (or unusable): nothing more is tried.
    unreachable: bool = False
    #: Set when a fetch got a blob that did not match its digest: the registry's storage holds
    #: a corrupt copy, which a push of the same content cannot replace.
    corrupt_blob_seen: bool = False

    def _secret(self) -> bytes | None:
        text = self.environ.get(CACHE_KEY_ENV, "").strip()
        return text.encode() if text else None

    def key_id(self) -> str | None:
        """A short public name of the cache key (an HMAC of it: reveals nothing about it)."""
        secret = self._secret()
        return None if secret is None else keyed_hasher(secret, "cache-key-id").hexdigest()[:16]

    def _usable(self, warn: Log) -> bool:
        """Whether the cache key (if any) allows using the cache; warns once when not."""
        if self.unreachable:
            return False
        secret = self._secret()
        problem = None
        if secret is not None and len(secret) < MIN_KEY_LENGTH:
            problem = (
                f"{CACHE_KEY_ENV} is too short ({len(secret)} characters, at least "
                f"{MIN_KEY_LENGTH}: e.g. the output of `openssl rand -hex 32`)"
            )
        elif secret is None and self.required:
            problem = f"cache-signed is set and {CACHE_KEY_ENV} is not"
        if problem:
            self.unreachable = True
            warn(f"Not using the registry cache {self.repository}: {problem}; compiling locally")
            return False
        return True

    def builder(self, compiler: str) -> str:
        """The builder record of an entry stored now: tool versions and key id, nothing about
        the host or the user."""
        key_id = self.key_id()
        signed = f"key {key_id}" if key_id else "unsigned"
        return f"hatch-wasm-oci {__version__}, componentize-py {compiler}, {signed}"

    def _signature(self, key: str, layer: str, builder: str) -> str | None:
        secret = self._secret()
        if secret is None:
            return None
        mac = keyed_hasher(secret, "registry-cache-entry")
        mac.update(f"{key}\0{layer}\0{builder}".encode())
        return SIGNATURE_PREFIX + mac.hexdigest()

    def _address(self) -> tuple[str, int | None]:
        from hatch_wasm_oci.registry.reference import parse_reference

        parts = urlsplit("//" + parse_reference(self.repository).api_host)
        return parts.hostname or "", parts.port

    @property
    def _plain_http(self) -> bool:
        return self._address()[0] in _LOOPBACK

    def _env(self) -> dict[str, str]:
        from hatch_wasm_oci.registry.client import RETRY_SECONDS_ENV

        return {**self.environ, RETRY_SECONDS_ENV: RETRY_SECONDS}

    def _reachable(self, warn: Log) -> bool:
        """Whether the registry answers ``GET /v2/`` within :data:`CONNECT_SECONDS` (any HTTP
        status, or a TLS problem the real request will report); warns once when it does not.
        The probe goes through the registry transport, so proxies and deadlines are its."""
        if self.unreachable:
            return False
        from hatch_wasm_oci.registry.reference import parse_reference
        from hatch_wasm_oci.registry.transport import Transport, TransportError

        scheme = "http" if self._plain_http else "https"
        url = f"{scheme}://{parse_reference(self.repository).api_host}/v2/"
        transport = Transport(None, self.environ)
        try:
            transport.request(
                "GET", url, headers={"User-Agent": "hatch-wasm-oci"}, deadline=CONNECT_SECONDS
            ).close()
        except TransportError as exc:
            if exc.tls is not None:
                return True
            self.unreachable = True
            warn(f"Registry cache {self.repository} is unreachable ({exc}); compiling locally")
            return False
        finally:
            transport.close()
        return True

    def fetch(self, key: str, compiler: str, dest: Path, *, warn: Log) -> CacheHit | None:
        """Pull the entry for ``key`` into ``dest``; None (with a warning when something is
        wrong, silently when there is no entry) if there is no usable entry. With a cache key,
        an entry without a valid signature is not usable."""
        if not self._usable(warn) or not self._reachable(warn):
            return None
        from hatch_wasm_oci.registry.progress import Reporter
        from hatch_wasm_oci.registry.pull import MAX_MANIFEST_SIZE, pull
        from hatch_wasm_oci.wasm.binary import WasmKind, read_wasm

        reference = f"{self.repository}:{key}"
        with tempfile.TemporaryDirectory(prefix="hatch-wasm-oci-cache-") as scratch:
            try:
                pulled = pull(
                    reference,
                    Path(scratch) / "entry",
                    plain_http=self._plain_http,
                    environ=self._env(),
                    progress=Reporter("quiet"),
                )
            except WasmOciError as exc:
                if "does not match its digest" in str(exc):
                    self.corrupt_blob_seen = True
                if not _absent(str(exc)):
                    warn(f"Ignoring the registry cache entry: {exc}")
                return None
            manifest_file = pulled.layout / "blobs" / "sha256" / pulled.digest.split(":", 1)[1]
            try:
                manifest = parse_json_object(
                    manifest_file.read_bytes(), "the manifest", MAX_MANIFEST_SIZE
                )
                annotations = manifest.get("annotations")
                annotations = annotations if isinstance(annotations, dict) else {}
                recorded = (annotations.get(KEY_ANNOTATION), annotations.get(COMPILER_ANNOTATION))
                if recorded != (key, compiler):
                    warn(
                        f"Ignoring the registry cache entry {reference}: it records input key "
                        f"{recorded[0]!r} and compiler {recorded[1]!r}, not this compile's "
                        f"({key[:16]}..., componentize-py {compiler})"
                    )
                    return None
                builder = annotations.get(BUILDER_ANNOTATION)
                builder = builder if isinstance(builder, str) else None
                expected = self._signature(key, file_digest(pulled.wasm), builder or "")
                if expected is not None:
                    signature = annotations.get(SIGNATURE_ANNOTATION)
                    if not isinstance(signature, str) or not hmac.compare_digest(
                        signature.encode(), expected.encode()
                    ):
                        why = (
                            f"it is not signed, and {CACHE_KEY_ENV} is set"
                            if signature is None
                            else f"its signature does not verify with {CACHE_KEY_ENV} (altered, "
                            "or signed with another key)"
                        )
                        warn(
                            f"Ignoring the registry cache entry {reference}: {why}; key id "
                            f"{self.key_id()}"
                        )
                        return None
                if read_wasm(pulled.wasm).kind is not WasmKind.COMPONENT:
                    warn(f"Ignoring the registry cache entry {reference}: not a component")
                    return None
                dest.parent.mkdir(parents=True, exist_ok=True)
                with pulled.wasm.open("rb") as source, replacing(dest) as sink:
                    shutil.copyfileobj(source, sink, CHUNK_SIZE)
            except (WasmOciError, OSError) as exc:
                warn(f"Ignoring the registry cache entry {reference}: {exc}")
                return None
        return CacheHit(reference, builder, self.key_id() if expected is not None else None)

    def store(self, key: str, compiler: str, wasm: Path, *, warn: Log) -> str | None:
        """Push ``wasm`` as the entry for ``key``; its manifest digest, or None (and a warning)
        when it could not be stored. With a cache key the entry is signed."""
        if not self._usable(warn) or not self._reachable(warn):
            return None
        from hatch_wasm_oci.oci.layout import pack
        from hatch_wasm_oci.oci.layout_reader import OciLayout
        from hatch_wasm_oci.registry.progress import Reporter
        from hatch_wasm_oci.registry.push import PushOptions, plan_push, push

        builder = self.builder(compiler)
        annotations = {KEY_ANNOTATION: key, COMPILER_ANNOTATION: compiler}
        annotations[BUILDER_ANNOTATION] = builder
        with tempfile.TemporaryDirectory(prefix="hatch-wasm-oci-cache-") as scratch:
            try:
                signature = self._signature(key, file_digest(wasm), builder)
                if signature is not None:
                    annotations[SIGNATURE_ANNOTATION] = signature
                layout_dir = Path(scratch) / "entry"
                pack(wasm, layout_dir, tags=(key,), annotations=annotations)
                layout = OciLayout.open(layout_dir)
                targets = plan_push(layout, [f"{self.repository}:{key}"])
                options = PushOptions(
                    plain_http=self._plain_http, environ=self._env(), progress=Reporter("quiet")
                )
                result = push(layout, targets, options)
            except (WasmOciError, OSError) as exc:
                warn(f"Not stored in the registry cache: {exc}")
                return None
        layer = file_digest(wasm)
        kept = any(b["digest"] == layer and b["outcome"] == "exists" for b in result.blobs)
        if kept and self.corrupt_blob_seen:
            warn(
                f"Not stored in the registry cache: {self.repository} already holds blob "
                f"{layer[:19]}... and it was corrupt when pulled; a push cannot replace a "
                "content-addressed blob, so delete it in the registry's storage"
            )
            return None
        return result.references[0].digest if result.references else None


def _absent(message: str) -> bool:
    """Whether a pull failed only because there is no such entry (or repository) yet."""
    return "has no manifest" in message or "NAME_UNKNOWN" in message or "HTTP 404" in message
