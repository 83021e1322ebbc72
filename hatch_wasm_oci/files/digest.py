"""Content digests (``sha256:<hex>``) computed in one streaming pass."""

from __future__ import annotations

import hashlib
import os

from hatch_wasm_oci.files.regular import FileInputError, open_regular

CHUNK_SIZE = 1 << 20
DIGEST_PATTERN = r"sha256:[0-9a-f]{64}"
"""The digests this package writes and accepts (a pattern for ``re.fullmatch``)."""


def file_digest(path: str | os.PathLike[str], size: int | None = None) -> str:
    """``sha256:<hex>`` of a regular file, read in chunks (memory stays flat whatever its size).

    With ``size`` the file must hold exactly that many bytes: reading stops one byte past it,
    so a file far larger than announced is refused without being read whole (FileInputError).
    """
    hasher = hashlib.sha256()
    buffer = bytearray(CHUNK_SIZE)
    view = memoryview(buffer)
    total = 0
    limit = None if size is None else size + 1
    with open_regular(path) as fh:
        while limit is None or total < limit:
            want = CHUNK_SIZE if limit is None else min(CHUNK_SIZE, limit - total)
            n = fh.readinto(view[:want])
            if not n:
                break
            hasher.update(view[:n])
            total += n
    if size is not None and total != size:
        found = f"more than {size}" if total > size else str(total)
        raise FileInputError(f"{os.fspath(path)}: has {found} bytes, descriptor says {size}")
    return "sha256:" + hasher.hexdigest()
