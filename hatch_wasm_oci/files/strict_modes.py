"""OpenSSH's StrictModes for cache directories: only a tree no one else can write is trusted.

Native code read from a cache runs. A directory another user owns, or that group or others can
write to, lets someone else replace what is in it, so such a cache is not read at all. The rule
covers the directory and every parent up to the cache root (the root included); a symlink is
judged by its target (``stat`` follows it). Windows relies on the profile directory's ACL.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


class UntrustedDirectory(Exception):
    """A cache directory others can write to; the message names it and the command that fixes
    it, in one line."""


def check_private_tree(directory: Path, root: Path) -> None:
    """Raise :class:`UntrustedDirectory` unless ``directory`` and each parent up to ``root``
    (included) is owned by this user and not writable by group or others. ``directory`` must
    be ``root`` or below it."""
    if not hasattr(os, "geteuid"):  # pragma: no cover - Windows
        return
    uid = os.geteuid()
    for path in _chain(Path(os.path.abspath(directory)), Path(os.path.abspath(root))):
        try:
            st = os.stat(path)
        except OSError as exc:
            raise UntrustedDirectory(f"cannot inspect {path}: {exc.strerror or exc}") from None
        shown = _shown(path)
        if not stat.S_ISDIR(st.st_mode):
            raise UntrustedDirectory(f"{shown} is not a directory")
        if st.st_uid != uid:
            raise UntrustedDirectory(
                f"{shown} is owned by uid {st.st_uid}, not this user (uid {uid}); "
                f"fix: chown {uid} {os.path.realpath(path)}"
            )
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise UntrustedDirectory(
                f"{shown} is writable by group or others (mode {stat.S_IMODE(st.st_mode):o}); "
                f"fix: chmod go-w {os.path.realpath(path)}"
            )


def make_private_tree(directory: Path, root: Path) -> None:
    """Create the missing directories from ``root`` down to ``directory`` with mode 0700 (an
    umask of 002 would otherwise make them group-writable, and so untrusted)."""
    root = Path(os.path.abspath(root))
    directory = Path(os.path.abspath(directory))
    for path in reversed(_chain(directory, root)):
        if not path.is_dir():
            if path == root:
                path.parent.mkdir(parents=True, exist_ok=True)
            path.mkdir(mode=0o700, exist_ok=True)


def _chain(directory: Path, root: Path) -> list[Path]:
    """``directory`` and its parents up to ``root`` (included), innermost first."""
    if directory != root and root not in directory.parents:
        raise ValueError(f"{directory} is not inside {root}")
    chain = [directory]
    while chain[-1] != root:
        chain.append(chain[-1].parent)
    return chain


def _shown(path: Path) -> str:
    """The cache directory ``path``, with its target when it is a symlink."""
    target = os.path.realpath(path)
    return f"cache directory {path}" + (f" (-> {target})" if target != str(path) else "")
