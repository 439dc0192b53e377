"""A destination's circuit breaker, as a pure state machine (no clock, no I/O of its own).

Placeholder for the policy while the state machine is written; see ``BreakerPolicy``.
"""

from __future__ import annotations

import msgspec

from dispatcher.durations import Duration

__all__ = ["BreakerPolicy"]


class BreakerPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """When a destination counts as down (manifest key ``breaker``)."""

    consecutive_failures: int = 5
    """Failed attempts in a row, across users, that open the breaker."""
    failure_ratio: float = 0.5
    """Share of failed attempts within ``window`` that opens the breaker..."""
    window: Duration = Duration(30.0)
    """...over this sliding window of time..."""
    min_volume: int = 20
    """...once the window holds at least this many attempts."""
    cooldown: Duration = Duration(5.0)
    """Wait after opening before the first probe; doubles after each failed probe..."""
    max_cooldown: Duration = Duration(300.0)
    """...up to this."""

    def __post_init__(self) -> None:
        if self.consecutive_failures < 1:
            raise ValueError("consecutive_failures must be at least 1")
        if not 0 < self.failure_ratio <= 1:
            raise ValueError("failure_ratio must be more than 0 and at most 1")
        if self.min_volume < 1:
            raise ValueError("min_volume must be at least 1")
        if not self.window > 0:
            raise ValueError("window must be more than 0")
        if not self.cooldown > 0:
            raise ValueError("cooldown must be more than 0")
        if self.max_cooldown < self.cooldown:
            raise ValueError("max_cooldown must not be below cooldown")
