"""Which partitions a destination's consumer fetches, as a pure decision.

Three things stop fetching, each for its own reason:

* **backpressure**: the buffer (queued plus in flight) reached ``max_buffered`` events or
  ``max_buffered_bytes``. Every partition pauses, and fetching resumes only once the buffer
  drained to half of both, so a buffer at its limit does not flap (each pause discards what
  librdkafka had pre-fetched);
* **the breaker is open**: no attempt can be made, so there is no point fetching more. A
  partition with nothing buffered still fetches until it has something: the age of its oldest
  waiting event must be known, or retention could delete it unseen. While the retention guard
  is evacuating, the breaker stops nothing (old events are being parked);
* **recovery**: a newly assigned partition's parked users are rebuilt from the park topic
  before any of its live events may be delivered.

``paused_partitions`` is recomputed on every turn of the fetch loop and the worker applies
the difference, so no sequence of assignments, revocations and state changes can leave a
partition fetching when it should not (or paused for good).
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass

__all__ = ["Backpressure", "paused_partitions"]


@dataclass(slots=True)
class Backpressure:
    """Hysteresis on the buffer: full at either limit, free again at half of both."""

    max_events: int
    max_bytes: int
    full: bool = False

    def update(self, events: int, size: int) -> bool:
        """Whether the buffer counts as full now, given what it holds."""
        if self.full:
            if events <= self.max_events // 2 and size <= self.max_bytes // 2:
                self.full = False
        elif events >= self.max_events or size >= self.max_bytes:
            self.full = True
        return self.full


def paused_partitions(
    *,
    assigned: Set[int],
    full: bool,
    breaker_holds: bool,
    buffered_in: Set[int],
    recovering: Set[int],
) -> set[int]:
    """The assigned partitions that must not fetch now (see the module docstring)."""
    if full:
        return set(assigned)
    paused = assigned & recovering
    if breaker_holds:
        paused |= assigned & buffered_in
    return set(paused)
