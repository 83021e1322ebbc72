"""Writing files so that readers see the old content or the new, never half of it.

Temporary files and directories are named ``.NAME.PID.RANDOM`` beside their destination, so
that what a killed process left behind can be recognised and removed by the next writer (under
the writer's lock, or once it is old: see ``remove_stale``).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


def staging_prefix(name: str) -> str:
    """The prefix of this process's temporary entries for ``name``: ``.NAME.PID.``."""
    return f".{name}.{os.getpid()}."


#: A temporary entry untouched for this long is a leftover of a dead writer. (Liveness by PID
#: is not used: a PID means nothing in another PID namespace, container or host sharing the
#: directory.) Writers that hold a lock on what they write pass ``older_than=None``.
STALE_AFTER = 3600.0


def remove_stale(directory: Path, name: str, *, older_than: float | None = STALE_AFTER) -> None:
    """Remove the temporary entries ``.NAME.PID.*`` in ``directory`` not modified for
    ``older_than`` seconds, or all of them with ``None`` (the caller holds the lock that every
    writer of ``name`` takes, so none of them is live)."""
    import shutil
    import time

    prefix = f".{name}."
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    now = time.time()
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        pid, dot, _ = entry.name[len(prefix) :].partition(".")
        if not dot or not pid.isdigit():
            continue
        try:
            if (
                older_than is not None
                and now - entry.stat(follow_symlinks=False).st_mtime < older_than
            ):
                continue
        except OSError:
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            Path(entry.path).unlink(missing_ok=True)


@contextmanager
def replacing(path: Path, mode: int = 0o644, *, fsync: bool = False) -> Iterator[BinaryIO]:
    """Yield a temporary file beside ``path``; on a clean exit, rename it over ``path``.

    The file gets ``mode`` (and with ``fsync`` its data reaches the disk) before the rename;
    leaving the block with an exception removes it and leaves ``path`` as it was.
    """
    remove_stale(path.parent, path.name)
    fd, tmp_name = tempfile.mkstemp(prefix=staging_prefix(path.name), dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as sink:
            yield sink
            if fsync:
                sink.flush()
                os.fsync(sink.fileno())
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


@contextmanager
def staged_copy(source: Path, dest: Path) -> Iterator[Path]:
    """Copy ``source`` to a temporary file beside ``dest`` and yield its path for
    :func:`place`; whatever is left of it is removed when the block ends."""
    import shutil

    fd, tmp_name = tempfile.mkstemp(prefix=staging_prefix(dest.name), dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as sink, source.open("rb") as src:
            shutil.copyfileobj(src, sink, 1 << 20)
        os.chmod(tmp, 0o644)
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def place(tmp: Path, dest: Path, *, replace: bool) -> None:
    """Move the file ``tmp`` to ``dest`` (same directory); FileExistsError if ``dest`` exists,
    unless ``replace``. Without ``replace`` the check and the move are one atomic ``link``."""
    if replace:
        os.replace(tmp, dest)
        return
    try:
        os.link(tmp, dest)
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links
        if os.path.lexists(dest):
            raise FileExistsError(17, "File exists", str(dest)) from None
        os.replace(tmp, dest)
        return
    tmp.unlink()


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it over ``path``."""
    with replacing(path, mode) as sink:
        sink.write(data)


def write_json(path: Path, document: object) -> None:
    """Write ``document`` as indented, key-sorted JSON, atomically (parents created)."""
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, (json.dumps(document, indent=2, sort_keys=True) + "\n").encode())
