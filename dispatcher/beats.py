"""Idle waits that end on a shared beat, so that idle destinations wake together.

A process hosts up to hundreds of destinations, and the consumer API only lets each one poll
its consumer, so an idle destination looks for new events every ``IDLE_SLEEP_MAX`` and does its
periodic duties every ``TICK``. Napping for that long from whenever it last looked, each
destination wakes the event loop on its own: a hundred idle destinations woke it 160 times a
second. A nap that ends on the next multiple of its length on the loop's clock ends when every
other nap of that length does; the loop runs the timers that are due together in one turn, so
the process wakes once per beat, whatever the number of destinations. No nap gets longer: it
ends at most one length after it starts, as before.
"""

from __future__ import annotations

import math

__all__ = ["next_beat"]


def next_beat(now: float, period: float) -> float:
    """The first multiple of ``period`` after ``now`` (both in seconds on one clock)."""
    return (math.floor(now / period) + 1) * period
