"""What an ingest process counts: totals for its shutdown summary line, and the same events as
OpenTelemetry counters for ``/metrics``."""

from __future__ import annotations

from opentelemetry import metrics

__all__ = ["IngestStats"]


class IngestStats:
    """Running totals since start-up (one event loop updates them, so no lock)."""

    def __init__(self) -> None:
        self.events_accepted = 0
        """Events Kafka acknowledged."""
        self.events_unacknowledged = 0
        """Events answered 503 (or failed in a batch) because Kafka did not acknowledge them."""
        self.requests_rejected = 0
        """Requests answered 4xx: nothing of them reached Kafka."""
        self.requests_unavailable = 0
        """Requests answered 503."""
        meter = metrics.get_meter("ingest")
        self._accepted = meter.create_counter(
            "ingest_events_accepted", unit="{event}", description="Events Kafka acknowledged."
        )
        self._unacknowledged = meter.create_counter(
            "ingest_events_unacknowledged", unit="{event}",
            description="Events Kafka did not acknowledge in time (answered 503 or failed).",
        )  # fmt: skip
        self._rejected = meter.create_counter(
            "ingest_requests_rejected", unit="{request}",
            description="Requests refused with 4xx, by reason (the problem type).",
        )  # fmt: skip
        self._unavailable = meter.create_counter(
            "ingest_requests_unavailable", unit="{request}",
            description="Requests answered 503, by reason.",
        )  # fmt: skip

    def accepted(self, count: int) -> None:
        self.events_accepted += count
        self._accepted.add(count)

    def unacknowledged(self, count: int) -> None:
        self.events_unacknowledged += count
        self._unacknowledged.add(count)

    def rejected(self, reason: str) -> None:
        self.requests_rejected += 1
        self._rejected.add(1, {"reason": reason})

    def unavailable(self, reason: str) -> None:
        self.requests_unavailable += 1
        self._unavailable.add(1, {"reason": reason})
