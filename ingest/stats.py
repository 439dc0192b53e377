"""What an ingest process counts: totals for its shutdown summary line, which ``/metrics``
also reads (through observable OpenTelemetry counters, at scrape time only)."""

from __future__ import annotations

from collections import Counter

from opentelemetry import metrics
from opentelemetry.metrics import Observation

__all__ = ["IngestStats"]


class IngestStats:
    """Running totals since start-up (one event loop updates them, so no lock)."""

    def __init__(self) -> None:
        self.events_accepted = 0
        """Events Kafka acknowledged."""
        self.events_unacknowledged = 0
        """Events answered 503 (or failed in a batch) because Kafka did not acknowledge them."""
        self._rejected: Counter[str] = Counter()
        self._unavailable: Counter[str] = Counter()
        self._failed: Counter[str] = Counter()
        self._by_key: Counter[tuple[str, str]] = Counter()
        meter = metrics.get_meter("ingest")
        meter.create_observable_counter(
            "ingest_events_accepted", unit="{event}",
            callbacks=[lambda _: [Observation(self.events_accepted)]],
            description="Events Kafka acknowledged.",
        )  # fmt: skip
        meter.create_observable_counter(
            "ingest_events_unacknowledged", unit="{event}",
            callbacks=[lambda _: [Observation(self.events_unacknowledged)]],
            description="Events Kafka did not acknowledge in time (answered 503 or failed).",
        )  # fmt: skip
        meter.create_observable_counter(
            "ingest_requests_rejected", unit="{request}",
            callbacks=[lambda _: _by_reason(self._rejected)],
            description="Requests refused with 4xx, by reason (the problem type).",
        )  # fmt: skip
        meter.create_observable_counter(
            "ingest_requests_unavailable", unit="{request}",
            callbacks=[lambda _: _by_reason(self._unavailable)],
            description="Requests answered 503, by reason.",
        )  # fmt: skip
        meter.create_observable_counter(
            "ingest_requests_failed", unit="{request}",
            callbacks=[lambda _: _by_reason(self._failed)],
            description="Requests answered 500 (Kafka refused for good, or a bug), by reason.",
        )  # fmt: skip

        meter.create_observable_counter(
            "ingest_key_requests", unit="{request}",
            callbacks=[lambda _: _by_key(self._by_key)],
            description="Event requests by API key name (never the key) and outcome: "
            "admitted, or rate-limited.",
        )  # fmt: skip

    @property
    def requests_rejected(self) -> int:
        """Requests answered 4xx: nothing of them reached Kafka."""
        return sum(self._rejected.values())

    @property
    def requests_unavailable(self) -> int:
        """Requests answered 503."""
        return sum(self._unavailable.values())

    @property
    def requests_failed(self) -> int:
        """Requests answered 500."""
        return sum(self._failed.values())

    def accepted(self, count: int) -> None:
        self.events_accepted += count

    def unacknowledged(self, count: int) -> None:
        self.events_unacknowledged += count

    def rejected(self, reason: str) -> None:
        self._rejected[reason] += 1

    def unavailable(self, reason: str) -> None:
        self._unavailable[reason] += 1

    def failed(self, reason: str) -> None:
        self._failed[reason] += 1

    def by_key(self, key: str, outcome: str) -> None:
        """One event request of API key ``key`` (its name), ``admitted`` or ``rate-limited``."""
        self._by_key[key, outcome] += 1


def _by_reason(counts: Counter[str]) -> list[Observation]:
    # list() copies atomically under the GIL while the event loop keeps counting.
    return [Observation(n, {"reason": reason}) for reason, n in list(counts.items())]


def _by_key(counts: Counter[tuple[str, str]]) -> list[Observation]:
    return [Observation(n, {"key": key, "outcome": o}) for (key, o), n in list(counts.items())]
