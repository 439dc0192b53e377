"""Whether Kafka acknowledges ingest's writes right now, judged from the latest of them: a
pure decision, given the time.

Cluster metadata alone cannot say so: with two of three brokers down, the survivor kept
describing the topic as healthy (its metadata was stale) while every write timed out. So a
write Kafka did not acknowledge makes ingest unready until one is acknowledged again, or, if
no traffic comes to show it (a load balancer stops sending to an unready instance), for
``hold`` seconds, after which the metadata check alone decides and traffic may probe again.

Waiting for a write to *fail* is too slow: it fails only after ``ack_timeout`` (10 s), and a
sustained outage looked ready for that long after each hold. So a write still unacknowledged
``overdue`` seconds after it was sent counts as failing from then on, for as long as it stays
unacknowledged, unless Kafka acknowledges another write after that moment (then the cluster
takes writes and this one is merely slow).
"""

from __future__ import annotations

import itertools
import math

__all__ = ["WriteHealth"]


class WriteHealth:
    """The outcome of the latest writes and the writes still waiting, and what they say about
    readiness."""

    def __init__(self, *, hold: float, overdue: float = math.inf) -> None:
        self._hold = hold
        self._overdue = overdue
        self._last_success: float | None = None
        self._last_failure: float | None = None
        self._failure_reason = ""
        self._tokens = itertools.count()
        # Write -> when it was sent, oldest first (dicts keep insertion order; the clock given
        # never goes back).
        self._in_flight: dict[int, float] = {}

    def started(self, now: float) -> int:
        """A write was sent at ``now``; returns the token to hand to ``ended``."""
        token = next(self._tokens)
        self._in_flight[token] = now
        return token

    def ended(self, token: int) -> None:
        """The write of ``token`` was answered (either way) or given up."""
        self._in_flight.pop(token, None)

    def succeeded(self, now: float) -> None:
        """Kafka acknowledged a write at ``now``."""
        self._last_success = now

    def failed(self, now: float, reason: str) -> None:
        """A write was not acknowledged at ``now``, for ``reason`` (e.g. ``kafka-timeout``)."""
        self._last_failure = now
        self._failure_reason = reason

    def not_ready_because(self, now: float) -> str | None:
        """``None`` when the latest writes say nothing against readiness, else why not."""
        return self._failed_recently(now) or self._overdue_now(now)

    def _failed_recently(self, now: float) -> str | None:
        failure = self._last_failure
        if failure is None or now - failure >= self._hold:
            return None
        if self._acknowledged_since(failure):
            return None
        return (
            f"kafka did not acknowledge a write {now - failure:.1f}s ago "
            f"({self._failure_reason}) and has acknowledged none since"
        )

    def _overdue_now(self, now: float) -> str | None:
        # The latest write already overdue decides: an acknowledgement after it became overdue
        # covers every older one too.
        latest = next(
            (t for t in reversed(self._in_flight.values()) if now - t >= self._overdue), None
        )
        if latest is None or self._acknowledged_since(latest + self._overdue):
            return None
        oldest = next(iter(self._in_flight.values()))
        return (
            f"a write has been waiting {now - oldest:.1f}s, not acknowledged by kafka "
            f"(writes_waiting={len(self._in_flight)})"
        )

    def _acknowledged_since(self, moment: float) -> bool:
        return self._last_success is not None and self._last_success >= moment
