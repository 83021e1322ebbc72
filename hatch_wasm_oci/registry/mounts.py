"""Where blobs were pushed before, so a later push can mount them instead of uploading.

Like docker's ``v2metadata-by-digest`` and skopeo's blob-info cache, this is a small local
record: ``$XDG_CACHE_HOME/hatch-wasm-oci/blob-locations.json`` maps host -> digest -> the
repositories (most recent last) that received the blob from this machine. It holds no secrets;
a stale entry costs one mount attempt that the registry answers with an ordinary upload session.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from hatch_wasm_oci.files.atomic import atomic_write
from hatch_wasm_oci.files.json_input import JsonInputError, parse_json
from hatch_wasm_oci.files.regular import FileInputError, read_regular

MAX_REPOS_PER_BLOB = 8
MAX_BLOBS_PER_HOST = 2000
# 2000 blobs x 8 repositories per host fit in a few MiB; a larger file is not ours.
MAX_CACHE_SIZE = 16 << 20


def cache_path() -> Path:
    """The blob-location file under ``$XDG_CACHE_HOME`` (default ``~/.cache``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hatch-wasm-oci" / "blob-locations.json"


class BlobLocations:
    """Load, query and record blob locations; failures to read or write are ignored."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or cache_path()
        self._data: dict[str, dict[str, list[str]]] = {}
        try:
            data = read_regular(self.path, MAX_CACHE_SIZE)
            raw: Any = parse_json(data, str(self.path), MAX_CACHE_SIZE)
        except FileNotFoundError:
            raw = {}
        except (FileInputError, JsonInputError) as exc:
            # A corrupt cache must not break every later push: it is rewritten on save.
            sys.stderr.write(f"hatch-wasm-oci: warning: blob-location cache ignored: {exc}\n")
            raw = {}
        if isinstance(raw, dict):
            for host, blobs in raw.items():
                if isinstance(host, str) and isinstance(blobs, dict):
                    self._data[host] = {
                        d: [r for r in repos if isinstance(r, str)]
                        for d, repos in blobs.items()
                        if isinstance(d, str) and isinstance(repos, list)
                    }

    def candidates(self, host: str, digest: str, exclude: str) -> list[str]:
        """Repositories on ``host`` known to hold ``digest``, most recent first."""
        repos = self._data.get(host, {}).get(digest, [])
        return [r for r in reversed(repos) if r != exclude]

    def record(self, host: str, digest: str, repository: str) -> None:
        """Remember that ``repository`` on ``host`` now holds ``digest``."""
        blobs = self._data.setdefault(host, {})
        repos = [r for r in blobs.pop(digest, []) if r != repository]
        repos.append(repository)
        blobs[digest] = repos[-MAX_REPOS_PER_BLOB:]
        while len(blobs) > MAX_BLOBS_PER_HOST:
            blobs.pop(next(iter(blobs)))

    def save(self) -> None:
        """Write the file atomically (best effort)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.path, json.dumps(self._data, sort_keys=True).encode())
        except OSError:
            pass
