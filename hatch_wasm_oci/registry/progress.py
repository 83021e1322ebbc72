"""Progress of blob transfers on stderr, and what became of each blob.

On a terminal one live line per blob (redrawn four times a second); elsewhere (CI logs) a plain
line every few seconds or every 10 %, so a long push shows life; ``quiet`` prints nothing.
Blobs smaller than ``SHOW_ABOVE`` get neither progress nor an outcome line: they take no time,
and a failure stays a single line.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

SHOW_ABOVE = 8 << 20
TTY_INTERVAL = 0.25
PLAIN_INTERVAL = 5.0
MODES = ("auto", "tty", "plain", "quiet")


def _mib(count: int) -> str:
    return f"{count / 2**20:.1f} MiB"


class Reporter:
    """Where progress goes: ``mode`` is ``tty``, ``plain``, ``quiet``, or ``auto`` (``tty``
    when the stream is a terminal, else ``plain``)."""

    def __init__(self, mode: str = "auto", stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        if mode == "auto":
            isatty = getattr(self.stream, "isatty", None)
            mode = "tty" if isatty is not None and isatty() else "plain"
        self.mode = mode

    def meter(self, verb: str, digest: str, total: int) -> Meter:
        """A meter for one transfer of ``total`` bytes (silent for small blobs)."""
        shown = self.mode != "quiet" and total >= SHOW_ABOVE
        return Meter(self if shown else None, f"{verb} {digest[:19]}", total)

    def outcome(self, digest: str, size: int, outcome: str) -> None:
        """One line saying what became of a blob (``uploaded``, ``exists``, ``mounted``,
        ``downloaded``)."""
        if self.mode != "quiet" and size >= SHOW_ABOVE:
            self.write(f"blob {digest[:19]} {_mib(size)} {outcome}\n")

    def write(self, text: str) -> None:
        """Write and flush."""
        self.stream.write(text)
        self.stream.flush()


class Meter:
    """Bytes and rate of one transfer."""

    def __init__(self, reporter: Reporter | None, label: str, total: int) -> None:
        self.reporter = reporter
        self.label = label
        self.total = total
        self.done = 0
        self._start = time.monotonic()
        self._last = 0.0
        self._step = 0
        self._drawn = False

    def advance(self, count: int) -> None:
        """Record ``count`` more bytes."""
        self.done += count
        reporter = self.reporter
        if reporter is None:
            return
        now = time.monotonic()
        step = self.done * 10 // max(self.total, 1)
        if reporter.mode == "tty":
            if now - self._last >= TTY_INTERVAL or self.done >= self.total:
                self._last = now
                self._drawn = True
                reporter.write(f"\r\x1b[K{self._status(now)}")
        elif step > self._step or now - (self._last or self._start) >= PLAIN_INTERVAL:
            self._last = now
            self._step = step
            reporter.write(f"{self._status(now)}\n")

    def _status(self, now: float) -> str:
        rate = self.done / max(now - self._start, 1e-6)
        percent = self.done * 100 // max(self.total, 1)
        return (
            f"{self.label} {_mib(self.done)}/{_mib(self.total)} ({percent}%) "
            f"{rate / 2**20:.1f} MiB/s"
        )

    def restart(self) -> None:
        """Start again from zero (the transfer is being retried)."""
        self.done = 0
        self._step = 0

    def finish(self) -> None:
        """End the live line."""
        if self.reporter is not None and self._drawn:
            self.reporter.write("\n")
            self._drawn = False
