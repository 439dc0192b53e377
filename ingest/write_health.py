"""Whether Kafka acknowledges ingest's writes right now, judged from the latest of them: a
pure decision, given the time.

Cluster metadata alone cannot say so: with two of three brokers down, the survivor kept
describing the topic as healthy (its metadata was stale) while every write timed out. So a
write Kafka did not acknowledge makes ingest unready until one is acknowledged again, or, if
no traffic comes to show it (a load balancer stops sending to an unready instance), for
``hold`` seconds, after which the metadata check alone decides and traffic may probe again.
"""

from __future__ import annotations

__all__ = ["WriteHealth"]


class WriteHealth:
    """The outcome of the latest writes, and what it says about readiness."""

    def __init__(self, *, hold: float) -> None:
        self._hold = hold
        self._last_success: float | None = None
        self._last_failure: float | None = None
        self._failure_reason = ""

    def succeeded(self, now: float) -> None:
        """Kafka acknowledged a write at ``now``."""
        self._last_success = now

    def failed(self, now: float, reason: str) -> None:
        """A write was not acknowledged at ``now``, for ``reason`` (e.g. ``kafka-timeout``)."""
        self._last_failure = now
        self._failure_reason = reason

    def not_ready_because(self, now: float) -> str | None:
        """``None`` when the latest writes say nothing against readiness, else why not."""
        failure = self._last_failure
        if failure is None or now - failure >= self._hold:
            return None
        if self._last_success is not None and self._last_success >= failure:
            return None
        return (
            f"kafka did not acknowledge a write {now - failure:.1f}s ago "
            f"({self._failure_reason}) and has acknowledged none since"
        )
