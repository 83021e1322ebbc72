"""The local compile cache: componentize-py outputs by input key, each sealed by this user.

An entry is ``<cache>/componentize-py/<key>.wasm`` plus ``<key>.seal``, an HMAC-SHA256 keyed
with the per-user secret (:func:`~hatch_wasm_oci.files.user_key.user_key`) over the input key
and the component's bytes. The input key is a hash of public inputs: anyone can compute it, so
a file in the right place proves nothing about who wrote it. An entry whose seal is missing or
does not verify (planted, copied from another user, altered, truncated) is not used, with a
one-line notice, and the fresh compile replaces it. An entry is verified while it is copied out
of the cache, so what is used is exactly what was checked, even if the file changes meanwhile.
"""

from __future__ import annotations

import contextlib
import hmac
from collections.abc import Callable
from pathlib import Path

from hatch_wasm_oci.files.atomic import replacing
from hatch_wasm_oci.files.digest import CHUNK_SIZE
from hatch_wasm_oci.files.regular import FileInputError, open_regular, read_regular
from hatch_wasm_oci.files.user_key import UserKeyError, keyed_hasher, user_key

#: The HMAC purpose of a seal (never verifies as any other kind of entry).
PURPOSE = "componentize-output"
SEAL_PREFIX = "hmac-sha256:"
#: Most recently used compiled components kept per cache directory.
ENTRIES_KEPT = 16
#: The largest entry read (a planted huge file costs no more than this).
MAX_ENTRY_SIZE = 1 << 30

Log = Callable[[str], None]


def entry_path(cache_dir: Path, key: str) -> Path:
    """Where the component compiled from input ``key`` is kept in ``cache_dir``."""
    return cache_dir / "componentize-py" / f"{key}.wasm"


def _seal_path(entry: Path) -> Path:
    return entry.with_suffix(".seal")


def _secret(notice: Log) -> bytes | None:
    try:
        return user_key()
    except UserKeyError as exc:
        notice(f"Not using the local compile cache: {exc}")
        return None


def load(cache_dir: Path, key: str, dest: Path, *, notice: Log) -> bool:
    """Copy the entry for ``key`` to ``dest`` if its seal verifies; True when it did.

    A missing entry is silent; an unsealed or badly sealed one is a one-line ``notice`` (and
    nothing is left at ``dest``)."""
    secret = _secret(notice)
    entry = entry_path(cache_dir, key)
    if secret is None or not entry.is_file():
        return False
    mac = keyed_hasher(secret, PURPOSE)
    mac.update(key.encode() + b"\0")
    try:
        recorded = read_regular(_seal_path(entry), 256).decode("ascii", "replace").strip()
    except FileNotFoundError:
        recorded = ""
    except FileInputError:
        recorded = "?"
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with open_regular(entry) as source, dest.open("wb") as sink:
            copied = 0
            while chunk := source.read(CHUNK_SIZE):
                copied += len(chunk)
                if copied > MAX_ENTRY_SIZE:
                    raise FileInputError(f"larger than {MAX_ENTRY_SIZE >> 20} MiB")
                mac.update(chunk)
                sink.write(chunk)
    except (OSError, FileInputError) as exc:
        dest.unlink(missing_ok=True)
        notice(f"Not reusing the cached component {entry}: {exc}; compiling again")
        return False
    if not hmac.compare_digest(recorded, SEAL_PREFIX + mac.hexdigest()):
        dest.unlink(missing_ok=True)
        why = (
            "it has no seal (from an older hatch-wasm-oci, or planted)"
            if not recorded
            else "its seal does not verify (written by another user, altered, or planted)"
        )
        notice(f"Not reusing the cached component {entry}: {why}; compiling again")
        return False
    with contextlib.suppress(OSError):
        entry.touch()  # most recently used: kept longest
    return True


def save(cache_dir: Path, key: str, wasm: Path, *, notice: Log) -> Path | None:
    """Keep a copy of ``wasm`` as the sealed entry for ``key``; its path, or None when the
    cache cannot be written (a ``notice``) or there is no user key (:func:`load` said why)."""
    try:
        secret = user_key()
    except UserKeyError:
        return None
    entry = entry_path(cache_dir, key)
    mac = keyed_hasher(secret, PURPOSE)
    mac.update(key.encode() + b"\0")
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        _seal_path(entry).unlink(missing_ok=True)  # never a stale seal beside new bytes
        with open_regular(wasm) as source, replacing(entry) as sink:
            while chunk := source.read(CHUNK_SIZE):
                mac.update(chunk)
                sink.write(chunk)
        with replacing(_seal_path(entry)) as sink:
            sink.write((SEAL_PREFIX + mac.hexdigest() + "\n").encode())
        _prune(entry.parent, ENTRIES_KEPT)
    except (OSError, FileInputError) as exc:
        notice(f"Not caching the component ({entry.parent}: {getattr(exc, 'strerror', exc)})")
        return None
    return entry


def _prune(directory: Path, keep: int) -> None:
    entries = sorted(directory.glob("*.wasm"), key=lambda p: p.stat().st_mtime_ns, reverse=True)
    for old in entries[keep:]:
        old.unlink(missing_ok=True)
        _seal_path(old).unlink(missing_ok=True)
