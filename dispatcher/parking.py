"""Ordered parking of one destination's failing users, as pure bookkeeping.

Placeholder for the policy while the bookkeeping is written; see ``ParkingPolicy``.
"""

from __future__ import annotations

import msgspec

from dispatcher.durations import Duration

__all__ = ["ParkingPolicy"]

_DEFAULT_SCHEDULE = (
    Duration(60.0), Duration(300.0), Duration(1800.0), Duration(7200.0), Duration(18000.0),
    Duration(36000.0),
)  # fmt: skip


class ParkingPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What happens to a user whose event exhausted its retries (manifest key ``parking``)."""

    retry_schedule: tuple[Duration, ...] = _DEFAULT_SCHEDULE
    """Waits before each automatic retry of a parked user (1m, 5m, 30m, 2h, 5h, 10h: about a
    day in all); after the last, it is retried at that interval until delivered or replayed."""
    retention: Duration = Duration(7 * 86400.0)
    """``retention.ms`` of the park topic when the dispatcher creates it (7 days)."""
    retention_margin: float = 0.75
    """Share of the events topic's retention an unfinished event may reach before the
    destination's waiting events are parked, so retention never deletes one undelivered."""
    poison_ratio: float = 0.5
    """Share of recently finished events being parked that counts as the destination being
    down: parking stops and the breaker opens instead..."""
    poison_min_volume: int = 20
    """...once at least this many events finished in the breaker's window..."""
    poison_users: int = 5
    """...or when this many users in a row were parked with no delivery in between."""
    max_parked_events: int = 100_000
    """Parked events one destination holds in memory for replay; past it, the breaker opens
    and further events wait in Kafka."""

    def __post_init__(self) -> None:
        if not self.retry_schedule:
            raise ValueError("retry_schedule must list at least one wait")
        if any(not step > 0 for step in self.retry_schedule):
            raise ValueError("retry_schedule waits must be more than 0")
        if not 0 < self.retention_margin < 1:
            raise ValueError("retention_margin must be between 0 and 1")
        if not 0 < self.poison_ratio <= 1:
            raise ValueError("poison_ratio must be more than 0 and at most 1")
        if self.poison_min_volume < 1 or self.poison_users < 1:
            raise ValueError("poison_min_volume and poison_users must be at least 1")
        if self.max_parked_events < 1:
            raise ValueError("max_parked_events must be at least 1")
