"""Opening input files that must be regular files, and reading them with a size cap.

A layout, a cache or a config file can hold a FIFO (opening it blocks), ``/dev/zero`` or a
symlink to a device (reading it never ends) or a file far larger than it should be. Every
input this package reads goes through :func:`open_regular` (opened without blocking, then
checked with ``fstat``) and, when it is read whole, :func:`read_regular` (at most ``limit``
bytes are read, however large the file).
"""

from __future__ import annotations

import io
import os
import stat

from hatch_wasm_oci.errors import WasmOciError

# Never block on open (a FIFO without a writer); text mode translations never apply.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)


class FileInputError(WasmOciError):
    """An input file is not a regular file, is larger than allowed, or cannot be read."""


def open_regular(path: str | os.PathLike[str]) -> io.BufferedReader:
    """Open ``path`` for binary reading if it is a regular file (symlinks followed).

    ``FileNotFoundError`` propagates (callers say what a missing file means); every other
    problem is a FileInputError naming the path.
    """
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except (FileNotFoundError, NotADirectoryError):
        raise FileNotFoundError(2, "No such file or directory", os.fspath(path)) from None
    except OSError as exc:
        raise FileInputError(f"{os.fspath(path)}: cannot open: {exc.strerror or exc}") from None
    except ValueError:  # an embedded NUL
        raise FileInputError(f"{os.fspath(path)!r}: not a valid path") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
            raise FileInputError(f"{os.fspath(path)}: {kind}, expected a regular file")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | os.PathLike[str], limit: int) -> bytes:
    """The content of the regular file ``path``; FileInputError if it is over ``limit`` bytes.

    At most ``limit + 1`` bytes are read, so a huge file costs no more than a small one.
    """
    with open_regular(path) as fh:
        try:
            data = fh.read(limit + 1)
        except OSError as exc:
            raise FileInputError(f"{os.fspath(path)}: cannot read: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise FileInputError(f"{os.fspath(path)}: larger than {limit} bytes")
    return data


def read_exactly(path: str | os.PathLike[str], size: int) -> bytes:
    """The content of the regular file ``path``, which its descriptor says is ``size`` bytes.

    At most ``size + 1`` bytes are read: a file far larger than announced costs nothing.
    """
    with open_regular(path) as fh:
        try:
            data = fh.read(size + 1)
        except OSError as exc:
            raise FileInputError(f"{os.fspath(path)}: cannot read: {exc.strerror or exc}") from None
    if len(data) != size:
        found = f"more than {size}" if len(data) > size else str(len(data))
        raise FileInputError(f"{os.fspath(path)}: has {found} bytes, descriptor says {size}")
    return data
