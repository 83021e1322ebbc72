"""The retry policy, in one place: what is retried, how often, how long, and how to wait.

Retried: connection failures (reset, closed, timed out) and HTTP 429/502/503/504, with
``Retry-After`` honoured, exponential backoff with full jitter otherwise, and a total bound in
seconds per operation (``HATCH_WASM_OCI_MAX_RETRY_SECONDS``). Never retried: local file errors
(ENOSPC, EACCES, a blob that changed on disk), TLS trust failures, 4xx answers, and a host name
that does not resolve (the resolver has already retried; seconds of backoff never fix a typo or
a machine without that network).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from hatch_wasm_oci.errors import RegistryError

RETRY_SECONDS_ENV = "HATCH_WASM_OCI_MAX_RETRY_SECONDS"
RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
MAX_RETRY_AFTER = 60.0


#: The transport's phrase for a registry host whose name does not resolve.
HOST_NOT_FOUND = "host name not found"


class UnresolvedHostError(RegistryError):
    """The registry's host name does not resolve (raised at once, never retried)."""


class TransientError(Exception):
    """A failure worth retrying from the start of a non-idempotent step (e.g. a blob upload)."""

    def __init__(self, description: str, retry_after: float | None = None) -> None:
        super().__init__(description)
        self.description = description
        self.retry_after = retry_after


@dataclass
class RetryPolicy:
    """Exponential backoff with full jitter, bounded by attempts and by seconds per operation."""

    attempts: int = 6
    base: float = 0.5
    cap: float = 20.0
    deadline: float = 120.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RetryPolicy:
        """Defaults, with the time bound taken from HATCH_WASM_OCI_MAX_RETRY_SECONDS if set."""
        env = os.environ if environ is None else environ
        policy = cls()
        raw = env.get(RETRY_SECONDS_ENV)
        if raw:
            try:
                policy.deadline = max(0.0, float(raw))
            except ValueError:
                raise RegistryError(f"{RETRY_SECONDS_ENV} must be a number of seconds") from None
        return policy

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        if retry_after is not None:
            return retry_after
        return random.uniform(self.base / 2, min(self.cap, self.base * 2 ** (attempt - 1)))


@dataclass
class Backoff:
    """The retry state of one operation."""

    policy: RetryPolicy
    started: float = field(default_factory=time.monotonic)
    attempt: int = 0

    def wait_or_raise(self, description: str, retry_after: float | None, action: str) -> None:
        """Sleep before the next attempt, or raise RegistryError when the bound is reached.

        A refused connection is retried twice only: it rarely heals within seconds. A host name
        that does not resolve is not retried (:class:`UnresolvedHostError`).
        """
        self.attempt += 1
        if description == HOST_NOT_FOUND:
            raise UnresolvedHostError(f"{action} failed: {description}")
        limit = 3 if description == "connection refused" else self.policy.attempts
        if self.attempt >= limit:
            raise RegistryError(f"{action} failed after {self.attempt} attempts: {description}")
        delay = self.policy.delay(self.attempt, retry_after)
        elapsed = time.monotonic() - self.started
        if elapsed + delay > self.policy.deadline:
            raise RegistryError(
                f"{action} failed: {description} (gave up after {elapsed:.0f} s and "
                f"{self.attempt} attempts; {RETRY_SECONDS_ENV} sets the limit)"
            )
        time.sleep(delay)


def retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta seconds or an HTTP date), capped at 60."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(MAX_RETRY_AFTER, float(value))
    import email.utils

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    try:
        return min(MAX_RETRY_AFTER, max(0.0, when.timestamp() - time.time()))
    except (OverflowError, OSError, ValueError):
        return None
