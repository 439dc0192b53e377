"""Which partitions a destination's consumer fetches, as a pure decision.

Four things stop fetching, each for its own reason:

* **backpressure**: the buffer (queued plus in flight) reached ``max_buffered`` events or
  ``max_buffered_bytes``. Every partition pauses, and fetching resumes only once the buffer
  drained to half of both, so a buffer at its limit does not flap (each pause discards what
  librdkafka had pre-fetched);
* **a partition's fair share**: a partition holding ``max_buffered / assigned partitions``
  events pauses alone until it is down to half of that. librdkafka hands over fetched records
  a partition at a time, thousands of them; without shares the buffer filled with a few
  partitions' events, whose few users (one event each in flight) could not use the
  concurrency while the other partitions' users waited unfetched (measured: 0.1 of 256 slots
  in flight with ``max_buffered: 1000``). For the same reason the worker takes at most one
  share from the consumer at a time;
* **the breaker is open**: no attempt can be made, so there is no point fetching more. A
  partition with nothing buffered still fetches until it has something: the age of its oldest
  waiting event must be known, or retention could delete it unseen. While the retention guard
  is evacuating, the breaker stops nothing (old events are being parked);
* **recovery**: a newly assigned partition's parked users are rebuilt from the park topic
  before any of its live events may be delivered.

``paused_partitions`` is recomputed on every turn of the fetch loop and the worker applies
the difference, so no sequence of assignments, revocations and state changes can leave a
partition fetching when it should not (or paused for good).

``frees_fetching`` says whether an event leaving the buffer can un-pause anything, so a
finished delivery wakes the fetch loop only then: at the hysteresis's lower edge, not once per
delivery (a turn of the loop cost more than the rest of a delivery's own work at concurrency 1).
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass, field

__all__ = ["Backpressure", "Shares", "frees_fetching", "paused_partitions"]


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


@dataclass(slots=True)
class Shares:
    """Hysteresis on each partition's fair share of ``max_events``: crowded at its share,
    free again at half of it."""

    max_events: int
    crowded: set[int] = field(default_factory=set)

    def share(self, partitions: int) -> int:
        """Events one of ``partitions`` assigned partitions may hold."""
        return max(1, self.max_events // max(1, partitions))

    def update(self, held: Mapping[int, int], assigned: Set[int]) -> set[int]:
        """The assigned partitions that hold their share now, given the events each holds."""
        share = self.share(len(assigned))
        crowded = {p for p in self.crowded if p in assigned and held.get(p, 0) > share // 2}
        crowded.update(p for p in assigned if held.get(p, 0) >= share)
        self.crowded = crowded
        return set(crowded)


def paused_partitions(
    *,
    assigned: Set[int],
    full: bool,
    crowded: Set[int],
    breaker_holds: bool,
    buffered_in: Set[int],
    recovering: Set[int],
) -> set[int]:
    """The assigned partitions that must not fetch now (see the module docstring)."""
    if full:
        return set(assigned)
    paused = assigned & (recovering | crowded)
    if breaker_holds:
        paused |= assigned & buffered_in
    return set(paused)


def frees_fetching(
    bound: Backpressure,
    shares: Shares,
    *,
    events: int,
    size: int,
    partition: int,
    held: int,
    partitions: int,
) -> bool:
    """Whether a turn of the fetch loop may fetch more now that an event of ``partition`` left
    the buffer (which holds ``events`` weighing ``size`` bytes, ``held`` of them from that
    partition, with ``partitions`` assigned). False only while backpressure, or the
    partition's share, keeps its pause: then the turn would find every partition as it was.
    The breaker and recovery are not judged here."""
    if bound.full:
        return events <= bound.max_events // 2 and size <= bound.max_bytes // 2
    if partition in shares.crowded:
        return held <= shares.share(partitions) // 2
    return True
