"""Measuring whole commands: wall time and the peak RSS of exactly that child process."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Run:
    """One command's best wall time over the repeats and its largest peak RSS."""

    seconds: float
    peak_rss_mib: float


def measure(argv: Sequence[str], repeat: int = 3, shell: bool = False) -> Run:
    """Run ``argv`` ``repeat`` times; raise if it fails; return the best time and max RSS."""
    best = float("inf")
    peak = 0.0
    for _ in range(repeat):
        start = time.perf_counter()
        proc = subprocess.Popen(
            argv if not shell else ["/bin/sh", "-c", " ".join(argv)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise SystemExit(f"command failed ({proc.returncode}): {' '.join(argv)}\n{err}")
        best = min(best, elapsed)
        peak = max(peak, usage.ru_maxrss / 1024)
    return Run(best, peak)


def ratio_line(name: str, ours: Run, peer: Run, peer_name: str, target: float) -> str:
    """A report line with the time ratio against the peer and whether it meets the target."""
    ratio = ours.seconds / peer.seconds
    verdict = "ok" if ratio <= target else "MISSED"
    return (
        f"{name:<34} ours {ours.seconds * 1000:9.1f} ms  {peer_name} "
        f"{peer.seconds * 1000:9.1f} ms  ratio {ratio:5.2f}x (target <= {target}x: {verdict})  "
        f"peak RSS ours {ours.peak_rss_mib:6.1f} MiB, {peer_name} {peer.peak_rss_mib:6.1f} MiB"
    )
