"""Idle waits that end on a shared beat, so that idle destinations wake together.

A process hosts up to hundreds of destinations, and the consumer API only lets each one poll
its consumer, so an idle destination looks for new events every ``IDLE_SLEEP_MAX`` and does its
periodic duties every ``TICK``. Napping for that long from whenever it last looked, each
destination wakes the event loop on its own: 100 idle destinations woke it 90-120 times a
second. A nap that ends on the next multiple of its length on the loop's clock ends when every
other nap of that length does; the loop runs the timers that are due together in one turn, so
the process wakes once per beat, whatever the number of destinations. No nap gets longer: it
ends at most one length after it starts, as before.
"""

from __future__ import annotations

import math

__all__ = ["due", "next_beat"]

_ON_THE_BEAT = 1e-6
"""How close to a beat, as a share of the period, counts as on it. uvloop's clock counts whole
milliseconds: a nap woken on a beat reads it as the float nearest a whole millisecond, which
may lie a hair below the exact multiple (4.3 s is below 43 x 0.1 s). Taken for "before the
beat", that gives the same beat again, a nap of zero, and a loop that spins until the clock
moves on."""


def next_beat(now: float, period: float) -> float:
    """The first multiple of ``period`` after ``now`` (both in seconds on one clock); ``now``
    within a hair of a multiple counts as on it, so the next one is a whole period later."""
    if period <= 0:
        raise ValueError(f"a beat's period must be positive, got {period!r}")
    return (math.floor(now / period + _ON_THE_BEAT) + 1) * period


def due(beat: float, since: float, interval: float) -> bool:
    """Whether a duty done every ``interval`` and last done at ``since`` is due again on
    ``beat``. Judged on the beats, not on when the loop got round to waking after them: two
    wake-ups a whole interval of beats apart may lie a hair less than an interval apart, and
    the duty would slip to the beat after."""
    return beat - since >= interval * (1 - _ON_THE_BEAT)
