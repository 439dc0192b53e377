"""The retry policy of a destination, as pure arithmetic (``delivery.py`` runs it with tenacity).

Attempt 1 is the first try; with ``max_retries = 3`` an event gets at most 4 attempts. After
failed attempt ``n`` the wait is ``initial_backoff * multiplier ** (n - 1)``, capped at
``max_backoff``; with ``jitter`` a random share of up to half of it is taken off, so many
failing deliveries do not retry in lockstep. A destination's own ``retry_after`` (HTTP
``Retry-After``) is a floor, capped at ``MAX_RETRY_AFTER``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import msgspec

from dispatcher.durations import Duration

__all__ = ["MAX_RETRY_AFTER", "RetryPolicy", "next_backoff"]

MAX_RETRY_AFTER = 300.0
"""Longest ``Retry-After`` honoured, so one destination's wish cannot park an event for hours."""


class RetryPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How a destination retries a failed delivery (manifest key ``retry``)."""

    max_retries: int = 3
    """Retries after the first attempt; 0 means a single attempt."""
    initial_backoff: Duration = Duration(0.1)
    """Wait after the first failed attempt."""
    max_backoff: Duration = Duration(5.0)
    """Longest wait between attempts."""
    multiplier: float = 2.0
    """Growth of the wait from one retry to the next."""
    jitter: bool = True
    """Take a random share (up to half) off each wait."""

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        if not (math.isfinite(self.multiplier) and self.multiplier >= 1):
            raise ValueError("multiplier must be at least 1")
        if self.max_backoff < self.initial_backoff:
            raise ValueError("max_backoff must not be below initial_backoff")

    @property
    def max_attempts(self) -> int:
        return 1 + self.max_retries


def next_backoff(
    *,
    attempt: int,
    policy: RetryPolicy,
    retry_after: float | None = None,
    uniform: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based) before the next one."""
    try:
        grown = policy.initial_backoff * policy.multiplier ** (attempt - 1)
    except OverflowError:  # thousands of retries: the cap has long been reached
        grown = math.inf
    wait = min(float(policy.max_backoff), grown)
    if policy.jitter:
        wait -= wait * 0.5 * uniform()
    if retry_after is not None:
        wait = max(wait, min(retry_after, MAX_RETRY_AFTER))
    return wait
