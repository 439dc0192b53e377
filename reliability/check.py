"""The verdict of one scenario, from what ingest acknowledged and what the destinations got.

Pure: the clients' record of 202s is the oracle (an event answered 202 must reach every
destination); an event never acknowledged may arrive or not. A delivery of an event a
destination already had is a duplicate (at-least-once allows it); an event arriving for the
first time after a later event of the same user arrived is an order violation. So a prefix
delivered again after a crash (5, 6, 7, 6, 7, 8) is duplicates, not a violation.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["Accepted", "Delivery", "Verdict", "judge", "longest_gap"]


@dataclass(frozen=True, slots=True)
class Accepted:
    """An event ingest answered 202 for."""

    event_id: str
    user: str
    seq: int
    """The user's sequence number, increasing with each event the user sent."""
    partition: int = -1
    offset: int = -1
    """Where ingest said it stored the event."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """One request a destination received, in the order the sink saw them."""

    destination: str
    event_id: str
    user: str
    seq: int


@dataclass(frozen=True, slots=True)
class Verdict:
    accepted: int
    """Events answered 202."""
    delivered: int
    """Accepted events that reached every destination."""
    lost: int
    """Accepted events missing at one destination or more (must be 0)."""
    duplicated: int
    """Deliveries of an event a destination already had."""
    order_violations: int
    """First deliveries that came after a later event of the same user (must be 0)."""
    unacknowledged: int
    """Events delivered that ingest never answered 202 for (answered 503 or cut off, but
    stored all the same): allowed, and counted so they are not mistaken for anything else."""
    missing: tuple[str, ...] = ()
    """Up to 10 lost event ids, for the report."""
    lost_by_partition: tuple[tuple[int, int], ...] = ()
    """(partition, lost events) where events were lost, to tell a stuck partition from
    scattered losses."""

    @property
    def passed(self) -> bool:
        return self.lost == 0 and self.order_violations == 0


def judge(
    accepted: Iterable[Accepted], deliveries: Sequence[Delivery], destinations: Iterable[str]
) -> Verdict:
    """Compare every accepted event with what every destination received."""
    acked = {a.event_id: a for a in accepted}
    names = list(destinations)
    seen: dict[str, set[str]] = {name: set() for name in names}
    duplicated = 0
    highest: dict[tuple[str, str], int] = {}
    violations = 0
    for d in deliveries:
        got = seen.setdefault(d.destination, set())
        if d.event_id in got:
            duplicated += 1
            continue
        got.add(d.event_id)
        key = (d.destination, d.user)
        if d.seq < highest.get(key, -1):
            violations += 1
        highest[key] = max(highest.get(key, -1), d.seq)
    missing = [e for e in acked if any(e not in seen[name] for name in names)]
    by_partition = Counter(acked[e].partition for e in missing)
    everywhere = set.union(set(), *seen.values())
    return Verdict(
        accepted=len(acked),
        delivered=len(acked) - len(missing),
        lost=len(missing),
        duplicated=duplicated,
        order_violations=violations,
        unacknowledged=len(everywhere - acked.keys()),
        missing=tuple(missing[:10]),
        lost_by_partition=tuple(sorted(by_partition.items())),
    )


def longest_gap(acknowledged_at: Iterable[float], *, start: float, end: float) -> float:
    """The longest time within [start, end] in which no request was answered 202: how long
    ingest was unavailable to a client that kept sending, at worst."""
    times = sorted(t for t in acknowledged_at if start <= t <= end)
    edges = [start, *times, end]
    return max((b - a for a, b in itertools.pairwise(edges)), default=0.0)
