"""Serving a ``wasi:http/proxy`` component with the wasmtime CLI (``wasmtime serve``).

wasmtime-py has no HTTP server side; the wasmtime CLI does. Only the bytes whose digest was
verified reach it: they are handed over as an open, sealed in-memory file (``/dev/fd/N``), so
no path exists that could be swapped between the check and the use, and nothing is fetched
twice. The CLI comes from ``HATCH_WASM_OCI_WASMTIME`` or ``PATH``; nothing is downloaded.
"""

from __future__ import annotations

import contextlib
import io
import ipaddress
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import IO

from hatch_wasm_oci.errors import ComponentError, WasmOciError
from hatch_wasm_oci.runtime.target import Artifact
from hatch_wasm_oci.wasm.binary import WasmKind

WASMTIME_ENV = "HATCH_WASM_OCI_WASMTIME"
HTTP_HANDLER = "wasi:http/incoming-handler@"
DEFAULT_ADDR = "127.0.0.1:8080"
INSTALL_HINT = (
    "install it (https://docs.wasmtime.dev/cli-install.html) and put it on PATH, "
    f"or point {WASMTIME_ENV} at the executable"
)
#: Variables the wasmtime process itself (its loader, allocator, Rust runtime) reads: a value
#: given with --env NAME=VALUE for the guest must not reconfigure the host.
HOST_PREFIXES = ("LD_", "DYLD_", "GLIBC_", "MALLOC_", "RUST_", "WASMTIME_", "TOKIO_")
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_SERVING = b"Serving HTTP on "
_EARLY_LIMIT = 64 << 10


def find_wasmtime(environ: Mapping[str, str] | None = None) -> str:
    """The wasmtime executable: ``$HATCH_WASM_OCI_WASMTIME``, else ``wasmtime`` on PATH."""
    env = os.environ if environ is None else environ
    chosen = env.get(WASMTIME_ENV)
    if chosen:
        if not (os.path.isfile(chosen) and os.access(chosen, os.X_OK)):
            raise WasmOciError(f"{WASMTIME_ENV}={chosen}: not an executable file")
        return chosen
    found = shutil.which("wasmtime", path=env.get("PATH", os.defpath))
    if found is None:
        raise WasmOciError(f"`serve` needs the wasmtime CLI, which is not on PATH: {INSTALL_HINT}")
    return found


def check_proxy(artifact: Artifact) -> None:
    """ComponentError unless ``artifact`` exports ``wasi:http/incoming-handler``."""
    if artifact.kind is not WasmKind.COMPONENT:
        raise ComponentError(
            f"{artifact.source}: is a core module, not a wasi:http/proxy component to serve"
        )
    if not any(name.startswith(HTTP_HANDLER) for name in artifact.exports):
        exports = ", ".join(artifact.exports) or "none"
        raise ComponentError(
            f"{artifact.source}: exports no wasi:http/incoming-handler, so it is not a "
            f"wasi:http/proxy component to serve; exports: {exports}"
        )


def parse_addr(text: str) -> str:
    """``IP:PORT`` (``[IPv6]:PORT``) as wasmtime takes it; WasmOciError if it is not one."""
    host, sep, port = text.rpartition(":")
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ip = ipaddress.ip_address(bare)
        number = int(port)
    except ValueError:
        ip = None
        number = -1
    if not sep or ip is None or not port.isdigit() or not 0 <= number <= 65535:
        raise WasmOciError(f"--addr takes IP:PORT (e.g. {DEFAULT_ADDR}), got {text!r}")
    return f"[{ip}]:{number}" if ip.version == 6 else f"{ip}:{number}"


def guest_environment(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` checked: no name the wasmtime process itself would read (see HOST_PREFIXES)
    unless it already has that value here (``--env NAME`` passes the host's own value)."""
    for name, value in env.items():
        if name.startswith(HOST_PREFIXES) and os.environ.get(name) != value:
            raise WasmOciError(
                f"--env {name}=...: wasmtime itself reads {name}; export it and pass --env {name}"
            )
    return dict(env)


@contextlib.contextmanager
def sealed_copy(wasm: bytes) -> Iterator[int]:
    """A file descriptor of an anonymous file holding ``wasm``: a sealed memfd on Linux (no
    one can change it, not even through ``/proc``), else an unlinked temporary file."""
    memfd = getattr(os, "memfd_create", None)
    if memfd is not None:
        import fcntl

        fd = memfd("component.wasm", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            with open(fd, "wb", closefd=False) as sink:
                sink.write(wasm)
            seals = fcntl.F_SEAL_WRITE | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_SEAL
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
            os.lseek(fd, 0, os.SEEK_SET)
            yield fd
        finally:
            os.close(fd)
        return
    with tempfile.TemporaryFile(prefix="hatch-wasm-oci-serve-") as handle:  # pragma: no cover
        handle.write(wasm)
        handle.flush()
        handle.seek(0)
        yield handle.fileno()


def serve_command(
    wasmtime: str,
    fd: int,
    addr: str,
    env_names: Sequence[str],
    dirs: Sequence[tuple[str, str]],
    cache: bool,
) -> list[str]:
    """The ``wasmtime serve`` command line (values of ``--env`` go in its environment)."""
    argv = [wasmtime, "serve", "--addr", addr, "-S", "cli=y"]
    if not cache:
        argv += ["-C", "cache=n"]
    for name in env_names:
        argv += ["--env", name]
    for host, guest in dirs:
        argv += ["--dir", f"{host}::{guest}"]
    return [*argv, f"/dev/fd/{fd}"]


def serve(
    artifact: Artifact,
    *,
    addr: str = DEFAULT_ADDR,
    env: Mapping[str, str] | None = None,
    dirs: Sequence[tuple[str, str]] = (),
    cache: bool = True,
    announce: Callable[[str], None] = print,
) -> int:
    """Serve ``artifact`` until wasmtime stops; its exit status (128+N after signal N).

    ``announce`` gets the URL once wasmtime listens. SIGINT, SIGTERM and SIGHUP are passed on
    to wasmtime (which runs in its own session, so a terminal's Ctrl-C reaches it once).
    A wasmtime that stops before it listens is a WasmOciError naming its error.
    """
    check_proxy(artifact)
    wasmtime = find_wasmtime()
    guest_env = guest_environment(env or {})
    with sealed_copy(artifact.wasm) as fd:
        argv = serve_command(wasmtime, fd, parse_addr(addr), list(guest_env), dirs, cache)
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, **guest_env},
            pass_fds=(fd,),
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
    assert process.stderr is not None
    with _forwarding(process):
        url, early = _wait_until_serving(process.stderr)
        if url is None:  # wasmtime closed its stderr: it is exiting
            code = process.wait()
            if code < 0:
                return 128 - code
            raise WasmOciError(f"wasmtime serve failed: {wasmtime_error(early)}")
        announce(url)
        _relay(process.stderr)
        code = process.wait()
    return 128 - code if code < 0 else code


def _wait_until_serving(stream: IO[bytes]) -> tuple[str | None, bytes]:
    """Read wasmtime's stderr up to its ``Serving HTTP on URL`` line: the URL (None if the
    stream ended first) and what came before it."""
    early = b""
    while line := stream.readline(_EARLY_LIMIT):
        if line.startswith(_SERVING):
            return line[len(_SERVING) :].decode(errors="replace").strip(), early
        early = (early + line)[-_EARLY_LIMIT:]
    return None, early


def _relay(stream: IO[bytes]) -> None:
    """Copy the rest of wasmtime's stderr (the guests' logs) to ours as it comes."""
    assert isinstance(stream, io.BufferedReader)
    out = getattr(sys.stderr, "buffer", None)
    while chunk := stream.read1(1 << 16):
        if out is not None:
            with contextlib.suppress(OSError, ValueError):
                out.write(chunk)
                out.flush()


def wasmtime_error(text: bytes) -> str:
    """One line from wasmtime's error report: the ``Error:`` line and its last cause."""
    lines = [line.strip() for line in text.decode(errors="replace").splitlines()]
    lines = lines[: lines.index("Stack backtrace:")] if "Stack backtrace:" in lines else lines
    errors = [line for line in lines if line.startswith("Error: ")]
    if not errors:
        shown = [line for line in lines if line]
        return shown[-1] if shown else "it exited before listening"
    message = errors[0][len("Error: ") :]
    if "Caused by:" in lines:
        causes = [line for line in lines[lines.index("Caused by:") + 1 :] if line]
        if causes:
            message += ": " + causes[-1].split(": ", 1)[-1]
    return message


@contextlib.contextmanager
def _forwarding(process: subprocess.Popen[bytes]) -> Iterator[None]:
    def forward(signum: int, frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signum)

    previous = {signum: signal.signal(signum, forward) for signum in FORWARDED}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if process.poll() is None:  # we are leaving early (an error): do not leave it serving
            process.terminate()
            process.wait()


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: wasmtime gets SIGTERM if this process dies without passing a signal on."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
