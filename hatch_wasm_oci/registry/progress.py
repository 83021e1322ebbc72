"""Progress of blob transfers on stderr."""

from __future__ import annotations

import sys
import time


class Progress:
    """Bytes and rate of one upload on stderr, only when stderr is a terminal."""

    def __init__(self, label: str, total: int, enabled: bool | None = None) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._start = time.monotonic()
        self._last = 0.0

    def advance(self, count: int) -> None:
        """Record ``count`` more bytes sent."""
        self.done += count
        now = time.monotonic()
        if self.enabled and (now - self._last >= 0.25 or self.done >= self.total):
            self._last = now
            rate = self.done / max(now - self._start, 1e-6) / 2**20
            sys.stderr.write(
                f"\r{self.label} {self.done / 2**20:.1f}/{self.total / 2**20:.1f} MiB "
                f"{rate:.1f} MiB/s"
            )
            sys.stderr.flush()

    def finish(self) -> None:
        """End the progress line."""
        if self.enabled and self._last:
            sys.stderr.write("\n")
            sys.stderr.flush()
