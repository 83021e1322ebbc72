"""The compile cache in an OCI registry, so a fresh CI runner reuses the developer's component.

An entry is a Wasm OCI artifact in the cache repository, tagged with the compile's input key
(:func:`~hatch_wasm_oci.project.componentize.input_key`); its manifest annotations record that key
and the compiler version. It is pulled (every digest verified) before compiling and pushed after.
Every failure here is a one-line warning, never a failed build: a registry that is down, or
accepts connections but does not answer, is noticed within :data:`CONNECT_SECONDS` and then left
alone for the rest of the build; a corrupt or foreign entry is ignored and replaced by the fresh
compile.

Reading needs pull access only; writing needs push access (a refused push is a warning).
Loopback registries (``localhost``, ``127.0.0.1``, ``[::1]``) are spoken to over plain HTTP.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from hatch_wasm_oci.errors import WasmOciError
from hatch_wasm_oci.files.atomic import replacing
from hatch_wasm_oci.files.digest import CHUNK_SIZE
from hatch_wasm_oci.files.json_input import parse_json_object

KEY_ANNOTATION = "dev.hatch-wasm-oci.cache.input-key"
COMPILER_ANNOTATION = "dev.hatch-wasm-oci.cache.compiler"
CACHE_REPOSITORY_ENV = "HATCH_WASM_OCI_CACHE_REPOSITORY"
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


@dataclass
class RegistryCache:
    """Compiled components in ``repository`` (``HOST/PATH``), tagged by input key."""

    repository: str
    environ: Mapping[str, str] = field(default_factory=dict)
    #: Set once the registry proved unreachable: nothing more is tried in this build.
    unreachable: bool = False

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

    def fetch(self, key: str, compiler: str, dest: Path, *, warn: Log) -> bool:
        """Pull the entry for ``key`` into ``dest``; False (with a warning when something is
        wrong, silently when there is no entry) if there is no usable entry."""
        if not self._reachable(warn):
            return False
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
                if not _absent(str(exc)):
                    warn(f"Ignoring the registry cache entry: {exc}")
                return False
            manifest_file = pulled.layout / "blobs" / "sha256" / pulled.digest.split(":", 1)[1]
            try:
                manifest = parse_json_object(
                    manifest_file.read_bytes(), "the manifest", MAX_MANIFEST_SIZE
                )
                annotations = manifest.get("annotations") or {}
                recorded = (annotations.get(KEY_ANNOTATION), annotations.get(COMPILER_ANNOTATION))
                if recorded != (key, compiler):
                    warn(
                        f"Ignoring the registry cache entry {reference}: it records input key "
                        f"{recorded[0]!r} and compiler {recorded[1]!r}, not this compile's "
                        f"({key[:16]}..., componentize-py {compiler})"
                    )
                    return False
                if read_wasm(pulled.wasm).kind is not WasmKind.COMPONENT:
                    warn(f"Ignoring the registry cache entry {reference}: not a component")
                    return False
                dest.parent.mkdir(parents=True, exist_ok=True)
                with pulled.wasm.open("rb") as source, replacing(dest) as sink:
                    shutil.copyfileobj(source, sink, CHUNK_SIZE)
            except (WasmOciError, OSError) as exc:
                warn(f"Ignoring the registry cache entry {reference}: {exc}")
                return False
        return True

    def store(self, key: str, compiler: str, wasm: Path, *, warn: Log) -> str | None:
        """Push ``wasm`` as the entry for ``key``; its manifest digest, or None (and a warning)
        when it could not be stored."""
        if not self._reachable(warn):
            return None
        from hatch_wasm_oci.oci.layout import pack
        from hatch_wasm_oci.oci.layout_reader import OciLayout
        from hatch_wasm_oci.registry.progress import Reporter
        from hatch_wasm_oci.registry.push import PushOptions, plan_push, push

        annotations = {KEY_ANNOTATION: key, COMPILER_ANNOTATION: compiler}
        with tempfile.TemporaryDirectory(prefix="hatch-wasm-oci-cache-") as scratch:
            try:
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
        return result.references[0].digest if result.references else None


def _absent(message: str) -> bool:
    """Whether a pull failed only because there is no such entry (or repository) yet."""
    return "has no manifest" in message or "NAME_UNKNOWN" in message or "HTTP 404" in message
