"""Counters an ingest process keeps for its shutdown summary line."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["IngestStats"]


@dataclass(slots=True)
class IngestStats:
    """Running totals since start-up (one event loop updates them, so no lock)."""

    events_accepted: int = 0
    """Events Kafka acknowledged."""
    events_unacknowledged: int = 0
    """Events answered 503 (or failed in a batch) because Kafka did not acknowledge them."""
    requests_rejected: int = 0
    """Requests answered 4xx: nothing of them reached Kafka."""
    requests_unavailable: int = 0
    """Requests answered 503."""
