"""Deterministic componentize-py compiles: the same inputs give the same bytes, with no cache.

componentize-py runs the app's top level inside wasmtime and snapshots the Python heap; what the
guest saw then is kept, also in freed memory: randomness (hash secret, ``random`` state), the
clocks, and the times of every file it looked at (bytecodealliance/componentize-py#247). Where it
works (Linux on x86_64 or aarch64 with a C compiler), each compile loads an ``LD_PRELOAD`` shim
(``deterministic_shim.c``, compiled for that compile into a private temporary directory, never a
shared cache: a planted library would run as the user) that answers those from the input key and
``SOURCE_DATE_EPOCH``; the build environment's site-packages are mirrored into fresh
directories for each compile (:func:`copy_environment`), so the bytecode the guest writes beside
the modules it imports never reaches the environment or the next compile.
``HATCH_WASM_OCI_DETERMINISTIC=0`` switches it off.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

SWITCH_ENV = "HATCH_WASM_OCI_DETERMINISTIC"
SEED_ENV = "HATCH_WASM_OCI_SEED"
SHIM_SOURCE = "deterministic_shim.c"
#: Machines the shim has code for (its seccomp filter and SIGSYS handler are per architecture).
MACHINES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}
#: Seconds allowed for compiling the shim.
CC_TIMEOUT = 60
#: First bytes of native executables and libraries, which a Wasm guest cannot load.
_NATIVE_MAGIC = (b"\x7fELF", b"\xcf\xfa\xed\xfe", b"\xce\xfa\xed\xfe", b"\xca\xfe\xba\xbe", b"MZ")
_CHUNK = 1 << 20

#: Run in the compiler process before componentize-py: refuses to compile when the shim was
#: asked for but is not in place (a loader that ignores LD_PRELOAD, a seccomp-less kernel).
RUNNER_CHECK = f"""\
import os, sys
if {SEED_ENV!r} in os.environ:
    import ctypes
    try:
        _ready = ctypes.CDLL(None).hatch_wasm_oci_shim_ready()
    except AttributeError:
        _ready = 0
    if not _ready:
        print("the determinism shim is not in place; set {SWITCH_ENV}=0 to compile without it",
              file=sys.stderr)
        sys.exit(3)
"""


class ShimUnavailable(Exception):
    """The shim could not be built or loaded here; ``str()`` says why in one line."""


def unavailable(environ: Mapping[str, str] | None = None) -> str | None:
    """Why deterministic compiles are off here (one line), or None when they are on."""
    env = os.environ if environ is None else environ
    if env.get(SWITCH_ENV, "").strip() == "0":
        return f"{SWITCH_ENV}=0"
    if sys.platform != "linux":
        return f"deterministic compiles need Linux (this is {sys.platform})"
    machine = platform.machine().lower()
    if machine not in MACHINES:
        return f"deterministic compiles need x86_64 or aarch64 (this is {machine})"
    if _cc(env) is None:
        return "deterministic compiles need a C compiler (no cc on PATH)"
    return None


def _cc(env: Mapping[str, str]) -> str | None:
    return shutil.which(env.get("CC", "cc") or "cc", path=env.get("PATH", os.defpath))


def seed(key: str) -> str:
    """The shim's seed (64 bits, hex) for the compile whose input key is ``key``."""
    return hashlib.sha256(f"hatch-wasm-oci determinism seed\0{key}".encode()).hexdigest()[:16]


@contextmanager
def shim(key: str, *, environ: Mapping[str, str] | None = None) -> Iterator[dict[str, str]]:
    """Build the shim into a fresh private directory and yield the environment entries that load
    it into one compiler process (``LD_PRELOAD`` and the seed; the compiler's environment must
    also set ``SOURCE_DATE_EPOCH``). The directory is removed afterwards. ShimUnavailable when
    it cannot be built or does not take hold here."""
    env = os.environ if environ is None else environ
    cc = _cc(env)
    if cc is None:
        raise ShimUnavailable("no C compiler (cc on PATH)")
    with tempfile.TemporaryDirectory(prefix="hatch-wasm-oci-shim-") as private:
        library = Path(private) / "shim.so"
        with resources.as_file(resources.files(__package__) / SHIM_SOURCE) as source:
            argv = [cc, "-shared", "-fPIC", "-O2", "-o", str(library), str(source), "-ldl"]
            try:
                built = subprocess.run(
                    argv, capture_output=True, text=True, errors="replace", timeout=CC_TIMEOUT,
                    env={"PATH": env.get("PATH", os.defpath), "LC_ALL": "C"},
                    stdin=subprocess.DEVNULL, check=False,
                )  # fmt: skip
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise ShimUnavailable(f"cannot run {cc}: {exc}") from None
        if built.returncode != 0 or not library.is_file():
            first = next((line for line in built.stderr.splitlines() if "error" in line), "")
            raise ShimUnavailable(f"{cc} could not build the shim: {first or built.stderr[-200:]}")
        entries = {"LD_PRELOAD": str(library), SEED_ENV: seed(key)}
        _check(entries)
        yield entries


def _check(entries: Mapping[str, str]) -> None:
    probe = subprocess.run(
        [sys.executable, "-S", "-c", RUNNER_CHECK],
        env={**entries, "SOURCE_DATE_EPOCH": "315532800", "PATH": os.defpath},
        capture_output=True, text=True, errors="replace", timeout=CC_TIMEOUT,
        stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    if probe.returncode != 0:
        raise ShimUnavailable("the shim does not take hold here (LD_PRELOAD or seccomp refused)")


def site_packages() -> list[Path]:
    """The site-packages directories of this environment that componentize-py would add."""
    paths = sysconfig.get_paths()
    found: list[Path] = []
    for name in ("purelib", "platlib"):
        path = Path(paths[name])
        if path.is_dir() and path not in found:
            found.append(path)
    return found


def copy_environment(prefix: Path, destination: Path) -> Path:
    """Mirror the site-packages of the environment at ``prefix`` at the same relative places
    under ``destination`` (a fresh tree for ``VIRTUAL_ENV``): new directories, without
    ``__pycache__`` and bytecode, holding hard links to the files (copies across filesystems,
    then without native binaries, which no Wasm guest loads). The guest's bytecode then lands
    in directories that go away with the compile. Returns ``destination``."""
    for top in site_packages():
        try:
            relative = top.relative_to(prefix)
        except ValueError:
            continue
        _mirror(top, destination / relative)
    return destination


def _mirror(source: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    with os.scandir(source) as listing:
        entries = sorted(listing, key=lambda entry: entry.name)
    for entry in entries:
        if entry.name == "__pycache__" or entry.name.endswith((".pyc", ".pyo")):
            continue
        if entry.is_dir(follow_symlinks=False):
            _mirror(Path(entry.path), target / entry.name)
        elif entry.is_file():  # regular files (and links to them); never a FIFO or device
            try:
                os.link(entry.path, target / entry.name)
            except OSError:
                _copy_file(Path(entry.path), target / entry.name)


def _copy_file(source: Path, target: Path) -> None:
    try:
        with source.open("rb") as reader:
            chunk = reader.read(_CHUNK)
            if chunk.startswith(_NATIVE_MAGIC):
                return
            with target.open("xb") as writer:
                while chunk:
                    writer.write(chunk)
                    chunk = reader.read(_CHUNK)
    except OSError:  # unreadable or gone: nothing the guest could have read either
        target.unlink(missing_ok=True)
