"""An exclusive lock on a file beside what it protects, so that writers of one layout take turns.

``fcntl.flock`` on POSIX, ``msvcrt.locking`` on Windows: the kernel releases the lock when its
holder dies, however it dies, so a lock is never stale and nothing needs a PID to tell a live
writer from a dead one (PIDs mean nothing across PID namespaces, containers or hosts sharing a
directory). The lock file is removed on release; a waiter that wakes up holding the lock of a
file already removed starts over.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path

from hatch_wasm_oci.errors import WasmOciError

#: How long a writer waits for another one before giving up with a clear message.
WAIT_SECONDS = 300.0
_POLL_SECONDS = 0.05


class LockTimeout(WasmOciError):
    """Another process held the lock for longer than the wait allows."""


def _try_lock(fd: int) -> bool:
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


class FileLock:
    """An exclusive lock held through the file ``path`` (created if missing)."""

    def __init__(self, path: Path, what: str, wait: float = WAIT_SECONDS) -> None:
        self.path = path
        self.what = what
        self.wait = wait
        self._fd: int | None = None

    def acquire(self) -> None:
        """Wait (polling) until the lock is ours; LockTimeout after ``wait`` seconds."""
        deadline = time.monotonic() + self.wait
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o644)
            if _try_lock(fd) and self._still_linked(fd):
                self._fd = fd
                return
            os.close(fd)
            if time.monotonic() > deadline:
                raise LockTimeout(
                    f"{self.what} is being written by another process (lock {self.path} "
                    f"held for more than {self.wait:.0f} s)"
                )
            time.sleep(_POLL_SECONDS)

    def _still_linked(self, fd: int) -> bool:
        """Whether ``fd`` is still the file at ``path`` (the holder before us may have removed
        it after we opened it)."""
        try:
            current = os.stat(self.path)
        except FileNotFoundError:
            return False
        opened = os.fstat(fd)
        return (current.st_dev, current.st_ino) == (opened.st_dev, opened.st_ino)

    def release(self) -> None:
        """Remove the lock file and release the lock (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        if os.name != "nt":  # Windows cannot remove a file others hold open
            with contextlib.suppress(OSError):
                os.unlink(self.path)
        os.close(fd)


def lock_for(path: Path) -> FileLock:
    """The lock every writer of ``path`` (a layout, an installed build) takes: the file
    ``.NAME-lock`` beside it."""
    return FileLock(path.parent / f".{path.name}-lock", str(path))
