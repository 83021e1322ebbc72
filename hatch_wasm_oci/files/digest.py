"""Content digests (``sha256:<hex>``) computed in one streaming pass."""

from __future__ import annotations

import hashlib
from pathlib import Path

CHUNK_SIZE = 1 << 20


def file_digest(path: Path) -> str:
    """``sha256:<hex>`` of a file, read in chunks (memory stays flat whatever its size)."""
    hasher = hashlib.sha256()
    buffer = bytearray(CHUNK_SIZE)
    view = memoryview(buffer)
    with path.open("rb") as fh:
        while n := fh.readinto(view):
            hasher.update(view[:n])
    return "sha256:" + hasher.hexdigest()
