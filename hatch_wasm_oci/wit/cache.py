"""A content-addressed cache of fetched WIT package blobs: ``<root>/sha256/<hex>``.

Every read re-hashes the blob: a cached file that no longer matches its name is an error (never
silently fetched again or used), so a lock's digests hold offline too.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from hatch_wasm_oci.files.atomic import replacing
from hatch_wasm_oci.files.cache_home import user_cache_root
from hatch_wasm_oci.files.digest import CHUNK_SIZE
from hatch_wasm_oci.wit.errors import WitError

_HEX = frozenset("0123456789abcdef")


def _hex(digest: str) -> str:
    algorithm, _, hexpart = digest.partition(":")
    if algorithm != "sha256" or len(hexpart) != 64 or not set(hexpart) <= _HEX:
        raise WitError(f"invalid digest {digest!r} (expected sha256:<64 hex digits>)")
    return hexpart


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(CHUNK_SIZE):
            digest.update(block)
    return "sha256:" + digest.hexdigest()


class BlobCache:
    """Blobs by digest under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, digest: str) -> Path:
        """Where the blob ``digest`` lives (whether or not it is there)."""
        return self.root / "sha256" / _hex(digest)

    def get(self, digest: str, what: str) -> Path | None:
        """The cached blob ``digest`` (re-hashed), None if absent; WitError if it was altered."""
        path = self.path(digest)
        if not path.is_file():
            return None
        actual = _file_sha256(path)
        if actual != digest:
            raise WitError(
                f"{what}: the cached blob {path} hashes to {actual}, not {digest} "
                "(corrupted or tampered); delete it to fetch it again"
            )
        return path

    def put(self, source: Path, digest: str) -> Path:
        """Copy ``source`` (already checked to hash to ``digest``) into the cache."""
        path = self.path(digest)
        if path.is_file():
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        with source.open("rb") as src, replacing(path) as sink:
            shutil.copyfileobj(src, sink, CHUNK_SIZE)
        os.chmod(path, 0o444)
        return path


def default_cache_root(environ: Mapping[str, str] | None = None) -> Path:
    """``wit/`` under :func:`user_cache_root`. Blobs are re-hashed on every read, so
    ``HATCH_WASM_OCI_NO_CACHE`` (meant for compiler output) does not apply."""
    return user_cache_root(environ) / "wit"
