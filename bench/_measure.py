"""Measuring whole commands: wall time and the peak RSS of exactly that child process."""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Run:
    """One command's best wall time over the repeats and its largest peak RSS."""

    seconds: float
    peak_rss_mib: float


def measure(argv: Sequence[str], repeat: int = 3, shell: bool = False) -> Run:
    """Run ``argv`` ``repeat`` times; raise if it fails; return the best time and max RSS.

    Peak RSS comes from ``/usr/bin/time -f %M`` (Debian package ``time``): a child's own
    ``ru_maxrss`` would start at this benchmark's RSS, which the fork carries over.
    """
    command = list(argv) if not shell else ["/bin/sh", "-c", " ".join(argv)]
    best = float("inf")
    peak = 0.0
    for _ in range(repeat):
        with tempfile.NamedTemporaryFile("r") as report:
            start = time.perf_counter()
            proc = subprocess.run(
                ["/usr/bin/time", "-q", "-f", "%M", "-o", report.name, *command],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                check=False,
            )
            elapsed = time.perf_counter() - start
            if proc.returncode != 0:
                err = proc.stderr.decode(errors="replace")
                raise SystemExit(f"command failed ({proc.returncode}): {' '.join(argv)}\n{err}")
            peak = max(peak, int(report.read().split()[-1]) / 1024)
        best = min(best, elapsed)
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
