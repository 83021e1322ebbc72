"""Helpers for the adversarial suite: crafted layouts, bounded CLI runs, small file systems.

Every CLI run of the suite goes through :func:`run_bounded`: a subprocess with a deadline,
an address-space limit (a runaway allocation dies instead of taking the machine) and its peak
RSS measured with ``wait4``, so each case can assert no hang, no traceback and bounded memory.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from hatch_wasm_oci.oci import config as oci_config
from hatch_wasm_oci.oci.annotations import TITLE
from hatch_wasm_oci.oci.descriptor import Descriptor
from hatch_wasm_oci.oci.layout import LayoutWriter
from hatch_wasm_oci.oci.layout_reader import OciLayout

MEMORY_BUDGET = 256 << 20
# The hard address-space limit is looser than the RSS budget: glibc and Python reserve far
# more address space than they touch. What is asserted is the peak RSS.
ADDRESS_SPACE_LIMIT = 1 << 30


@dataclass(frozen=True)
class Run:
    """One finished CLI run."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float
    max_rss: int  # bytes

    def check_clean_failure(self, *needles: str) -> None:
        """Exit status 2, one ``hatch-wasm-oci:`` line on stderr containing every needle."""
        assert self.returncode == 2, (self.returncode, self.stdout, self.stderr)
        self.check_no_traceback()
        lines = self.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("hatch-wasm-oci: "), self.stderr
        for needle in needles:
            assert needle in self.stderr, (needle, self.stderr)

    def check_no_traceback(self) -> None:
        assert "Traceback" not in self.stderr, self.stderr
        assert self.max_rss <= MEMORY_BUDGET, f"peak RSS {self.max_rss >> 20} MiB"


def run_bounded(
    *args: str | os.PathLike[str],
    env: Mapping[str, str],
    timeout: float = 30,
    cwd: Path | None = None,
    obey_permissions: bool = False,
    on_start: Callable[[subprocess.Popen[bytes]], None] | None = None,
    file_size_limit: int | None = None,
    address_space_limit: int | None = ADDRESS_SPACE_LIMIT,
) -> Run:
    """``python -m hatch_wasm_oci ARGS`` under a deadline and an address-space limit.

    ``obey_permissions`` drops root's CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH, so that file
    modes apply as they do for an ordinary user; ``on_start`` gets the process while it
    runs (to signal it); ``file_size_limit`` sets RLIMIT_FSIZE (see small_filesystem);
    ``address_space_limit=None`` lifts the address-space limit (wasmtime reserves several GiB
    of guard pages per linear memory; the peak RSS is still asserted). A run past ``timeout``
    is killed and fails the test.
    """

    def limit() -> None:
        if address_space_limit is not None:
            resource.setrlimit(resource.RLIMIT_AS, (address_space_limit, address_space_limit))
        if file_size_limit is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))
        if obey_permissions and os.geteuid() == 0:
            _drop_capabilities(_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH)

    environment = dict(env)
    environment["MALLOC_ARENA_MAX"] = "2"
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "hatch_wasm_oci", *map(str, args)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=environment,
            cwd=cwd,
            preexec_fn=limit,
        )
        if on_start is not None:
            on_start(proc)
        status, peak = _wait(proc, started + timeout)
        seconds = time.monotonic() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if status is None:
        raise AssertionError(f"still running after {timeout} s: {args}\n{stderr}")
    return Run(status, stdout, stderr, seconds, peak)


_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE = 1
_CAP_DAC_READ_SEARCH = 2


def _drop_capabilities(*caps: int) -> None:
    """Remove ``caps`` from the bounding set: after ``exec`` root no longer has them."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in caps:
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def _wait(proc: subprocess.Popen[bytes], deadline: float) -> tuple[int | None, int]:
    """Wait for ``proc`` (killed at ``deadline``): (exit status or None, peak RSS in bytes).

    The peak is the child's own ``VmHWM``, polled while it runs: ``wait4``'s ``ru_maxrss``
    starts from the parent's RSS at ``fork`` (Linux carries the pre-exec high-water mark across
    ``exec``), so late in a long pytest session it would report pytest's size. A child that
    exits before the first poll falls back to ``ru_maxrss``.
    """
    polled = 0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, polled or usage.ru_maxrss * 1024
        polled = max(polled, _vm_hwm(proc.pid))
        if time.monotonic() > deadline:
            proc.kill()
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            return None, polled or usage.ru_maxrss * 1024
        time.sleep(0.01)


def _vm_hwm(pid: int) -> int:
    """The peak RSS (``VmHWM``) of a running process in bytes; 0 if it cannot be read."""
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def tree(root: Path) -> dict[str, bytes | None]:
    """Every entry under ``root`` (relative path -> content, None for directories)."""
    found: dict[str, bytes | None] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        found[rel] = None if path.is_dir() and not path.is_symlink() else _content(path)
    return found


def _content(path: Path) -> bytes:
    import stat

    if path.is_symlink():
        return b"-> " + os.readlink(path).encode()
    if not stat.S_ISREG(path.lstat().st_mode):
        return b"(special file)"  # a FIFO: reading it would block
    return path.read_bytes()


def retitle(layout_dir: Path, title: str, tag: str, source: str = "base") -> str:
    """Point ``tag`` at a copy of the manifest tagged ``source`` whose layer title is
    ``title``; return its digest. Titles come from the registry: any string at all."""
    manifest = OciLayout.open(layout_dir).manifest(source)
    manifest["layers"][0]["annotations"] = {TITLE: title}
    with LayoutWriter(layout_dir) as writer:
        digest, size = writer.add_blob(oci_config.canonical_json(manifest))
        writer.tag(tag, Descriptor(oci_config.MANIFEST_MEDIA_TYPE, digest, size))
        writer.commit()
    return digest


def replace_blob(layout_dir: Path, digest: str, make: Callable[[Path], None]) -> Path:
    """Remove the blob ``digest`` of a layout and let ``make`` put something at its path."""
    path = layout_dir / "blobs" / "sha256" / digest.split(":", 1)[1]
    path.unlink()
    make(path)
    return path


def fifo(path: Path) -> None:
    """A FIFO nobody writes to: opening it for reading blocks, reading it never ends."""
    os.mkfifo(path)


def dev_zero(path: Path) -> None:
    """A symlink to ``/dev/zero``: endless bytes."""
    path.symlink_to("/dev/zero")


def sparse(size: int) -> Callable[[Path], None]:
    """A sparse file of ``size`` bytes: huge, instant, costs no disk."""

    def make(path: Path) -> None:
        with path.open("wb") as fh:
            fh.truncate(size)

    return make


def nested_json(depth: int) -> bytes:
    """``[[[…]]]``: valid JSON that ``json.loads`` alone turns into a RecursionError."""
    return b"[" * depth + b"]" * depth


def layout_json(layout_dir: Path) -> dict[str, object]:
    """The layout's ``index.json``, parsed."""
    parsed: dict[str, object] = json.loads((layout_dir / "index.json").read_bytes())
    return parsed


@contextlib.contextmanager
def small_filesystem(path: Path, size: int) -> Iterator[str]:
    """Mount a ``size``-byte tmpfs at ``path`` (needs root, as here and in CI containers);
    yields ``"tmpfs"``. Without root, yields ``"rlimit"``: callers then cap the file size of
    the process (RLIMIT_FSIZE), which makes writes fail the same way (EFBIG, not ENOSPC)."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = (
        os.geteuid() == 0
        and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
            capture_output=True,
            check=False,
        ).returncode
        == 0
    )
    try:
        yield "tmpfs" if mounted else "rlimit"
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def sigterm(proc: subprocess.Popen[bytes]) -> None:
    """Send SIGTERM."""
    proc.send_signal(signal.SIGTERM)


def append_sparse_section(path: Path, section_id: int, size: int, head: bytes = b"") -> None:
    """Append a section of ``size`` bytes whose body starts with ``head`` and continues with
    zeros, as a hole: a 1 GiB section costs no disk and no time to make."""
    from hatch_wasm_oci.wasm.leb128 import encode_u32

    with path.open("ab") as fh:
        fh.write(bytes([section_id]) + encode_u32(size) + head)
        fh.truncate(fh.tell() - len(head) + size)


def custom_head(name: str) -> bytes:
    """The start of a custom section's body: its name."""
    from hatch_wasm_oci.wasm.leb128 import encode_u32

    return encode_u32(len(name.encode())) + name.encode()
