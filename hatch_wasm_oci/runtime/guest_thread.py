"""Calls into wasm on a thread of their own, so that Ctrl-C and SIGTERM are heard at once.

Python runs signal handlers on the main thread between bytecodes; a guest looping inside
wasmtime never gives it the chance. So a call made from the main thread runs on a worker
thread (wasmtime-py releases the GIL inside wasm) while the main thread waits, and a signal's
handler raises there as usual (``KeyboardInterrupt``; the CLI's SIGTERM exception).

Measured against the other way, epoch interruption always armed (componentize-py component,
wasmtime 50, this 2-core machine): epoch checks cost 20-70% more compile time (16.7 -> 20.1 s,
15.8 -> 26.5 s), 8% more code (32.9 -> 35.5 MB) and halve the speed of a tight loop
(0.14 -> 0.33 s); the worker costs ~15-30 us per call (a trivial export call: 45 -> 73 us)
and nothing at compile time. The price: a guest cannot be stopped from outside, so it is
*abandoned*: its store is never entered again, and the CLI ends the process by the signal,
as ``wasmtime run`` does (:func:`end_by_signal`). Nothing is written while a guest runs, so
nothing is left behind.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

#: The exception that interrupted the wait for a guest still running (None: none is).
abandoned: BaseException | None = None


class _Call:
    """One call handed to the worker, and what came of it."""

    def __init__(self, call: Callable[[], Any]) -> None:
        self.call = call
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.call()
        except BaseException as exc:  # handed to the waiting thread
            self.error = exc
        finally:
            self.done.set()


class _Worker:
    """A daemon thread that runs calls one at a time (one thread for many calls: a thread
    per call cost ~300 us, six times a small export call)."""

    def __init__(self) -> None:
        self.calls: queue.SimpleQueue[_Call] = queue.SimpleQueue()
        threading.Thread(target=self._loop, name="wasm-guest", daemon=True).start()

    def _loop(self) -> None:
        while True:
            self.calls.get().run()


_worker: _Worker | None = None


def call_guest(call: Callable[[], T]) -> T:
    """``call()``, run on the worker thread when called from the main thread; an exception
    raised by a signal handler while it runs propagates at once (the guest is abandoned, and
    so is its worker: the next call gets a new one)."""
    global abandoned, _worker
    if threading.current_thread() is not threading.main_thread():
        return call()
    if _worker is None:
        _worker = _Worker()
    job = _Call(call)
    _worker.calls.put(job)
    try:
        job.done.wait()
    except BaseException as exc:
        abandoned = exc
        _worker = None
        raise
    if job.error is not None:
        raise job.error
    result: T = job.result
    return result


def end_by_signal(signum: int) -> None:
    """End this process by ``signum`` with its default action (what a shell and a parent see
    from ``wasmtime run``), after flushing what was printed."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signum})
    os.kill(os.getpid(), signum)
    os._exit(128 + signum)  # pragma: no cover - the signal ends the process first
