"""The per-user secret that seals what hatch-wasm-oci later trusts from its own caches.

Anything an attacker can compute (a plain hash of public inputs) proves nothing about who wrote
a cache entry. Entries that decide what runs or ships (compiled native code, tag records,
compile outputs) therefore carry an HMAC keyed with a secret only this user can read: 32 random
bytes made on first use with :mod:`secrets`, in a ``0600`` file of a ``0700`` directory the
user owns, kept apart from every cache (``$XDG_STATE_HOME/hatch-wasm-oci/user-key``, else
``~/.local/state/...``; ``~/Library/Application Support`` on macOS, ``%LOCALAPPDATA%`` on
Windows). A key file or directory that is not the user's own, or that others can read or
write, is refused, never repaired: the caller then works without a trusted cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import stat
import sys
from collections.abc import Mapping
from pathlib import Path

KEY_FILE = "user-key"
KEY_SIZE = 32

_cached: dict[Path, bytes] = {}


class UserKeyError(Exception):
    """The per-user key cannot be made or read safely; the message says why, in one line."""


def key_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The directory holding the key (never inside a cache)."""
    env = os.environ if environ is None else environ
    if sys.platform == "win32":
        base = env.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "hatch-wasm-oci" / "State"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "hatch-wasm-oci"
    xdg = env.get("XDG_STATE_HOME", "").strip()
    return (Path(xdg) if xdg else Path.home() / ".local" / "state") / "hatch-wasm-oci"


def _check_private(path: Path, st: os.stat_result, *, directory: bool) -> None:
    if not hasattr(os, "geteuid"):
        return  # Windows: the profile directory's ACL is the protection
    kind = "directory" if directory else "file"
    if st.st_uid != os.geteuid():
        raise UserKeyError(f"key {kind} {path} is not owned by this user (uid {os.geteuid()})")
    if stat.S_IMODE(st.st_mode) & 0o077:
        want = "700" if directory else "600"
        raise UserKeyError(
            f"key {kind} {path} is accessible to group or others "
            f"(mode {stat.S_IMODE(st.st_mode):o}); run: chmod {want} {path}"
        )


def _private_dir(path: Path) -> None:
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = os.lstat(path)
    except OSError as exc:
        raise UserKeyError(f"cannot create key directory {path}: {exc.strerror}") from None
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise UserKeyError(f"key directory {path} is not a plain directory")
    _check_private(path, st, directory=True)


def _read_key(path: Path) -> bytes | None:
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UserKeyError(f"cannot read key file {path}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UserKeyError(f"key file {path} is not a regular file")
        _check_private(path, st, directory=False)
        data = os.read(fd, KEY_SIZE + 1)
    finally:
        os.close(fd)
    if len(data) != KEY_SIZE:
        raise UserKeyError(f"key file {path} is damaged (not {KEY_SIZE} bytes); remove it")
    return data


def _create_key(path: Path) -> None:
    """Write a new key under a temporary name and link it into place: a concurrent reader
    sees no key or the whole key, and of two concurrent creators one key wins."""
    temp = path.with_name(f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(temp, flags, 0o600)
        try:
            os.write(fd, secrets.token_bytes(KEY_SIZE))
            os.fsync(fd)
        finally:
            os.close(fd)
        with contextlib.suppress(FileExistsError):  # another process made it first
            os.link(temp, path)
    except OSError as exc:
        raise UserKeyError(f"cannot create key file {path}: {exc.strerror}") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temp)


def user_key(environ: Mapping[str, str] | None = None) -> bytes:
    """This user's secret, made on first use. Raises :class:`UserKeyError` when it cannot be
    made or read safely."""
    directory = key_dir(environ)
    path = directory / KEY_FILE
    if path in _cached:
        return _cached[path]
    _private_dir(directory)
    key = _read_key(path)
    if key is None:
        _create_key(path)
        key = _read_key(path)
        if key is None:  # pragma: no cover - removed between link and read
            raise UserKeyError(f"key file {path} vanished while being created")
    _cached[path] = key
    return key


def keyed_hasher(key: bytes, purpose: str) -> hmac.HMAC:
    """An HMAC-SHA256 of ``key`` for one purpose (e.g. ``"compiled"``, ``"store-tag"``), so a
    seal made for one kind of entry never verifies as another."""
    mac = hmac.new(key, digestmod=hashlib.sha256)
    mac.update(purpose.encode() + b"\0")
    return mac
