"""The events one worker holds between fetching and finishing, and what they weigh.

An event is *queued* behind its user's earlier ones (``ordering.KeyedScheduler``), *in
flight*, or *held* while its partition's parked users are being recovered. All three count
against the destination's ``max_buffered`` events and ``max_buffered_bytes``: fetching pauses
when either is reached (``flow``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from dispatcher.jobs import Job
from dispatcher.ordering import KeyedScheduler
from dispatcher.partitions import PartitionState

__all__ = ["Buffer", "Key", "key_of"]

Key = tuple[int, str | None, bool]
"""Ordering key: (partition, user_id, replay); user ``None`` for undecodable records. Live and
replayed events of one user have separate keys: a parked user's live events only go to the
park, so they never race its replay to the destination."""


def key_of(job: Job) -> Key:
    return job.partition, job.user, job.replay


class Buffer:
    """Queued, in-flight and held events of one worker, counted and weighed."""

    __slots__ = ("_scheduler", "bytes", "count", "per_partition", "pop_ready")

    def __init__(self, concurrency: int) -> None:
        self._scheduler: KeyedScheduler[Job, Key] = KeyedScheduler(concurrency)
        self.pop_ready: Callable[[], tuple[Key, Job] | None] = self._scheduler.pop_ready
        """The next event that may be delivered now (see ``KeyedScheduler.pop_ready``): the
        scheduler's own method, called twice per delivery without a layer of ours."""
        self.count = 0
        """Events held in any way (queued, in flight, held): what ``max_buffered`` bounds.
        Kept as events come and go, as ``bytes`` is: it is read on every finish."""
        self.bytes = 0
        """What every event in the buffer weighs (``Job.size``): queued, in flight, held."""
        self.per_partition: Counter[int] = Counter()
        """Events held per partition (for each partition's fair share, ``flow``)."""

    @property
    def in_flight(self) -> int:
        return self._scheduler.in_flight

    def push(self, job: Job) -> None:
        """Queue ``job`` behind its user's earlier events."""
        self._scheduler.push(key_of(job), job)
        self.count += 1
        self.bytes += job.size
        self.per_partition[job.partition] += 1

    def hold(self, state: PartitionState, job: Job) -> None:
        """Keep ``job`` aside until its partition's recovery is done."""
        state.held.append(job)
        self.count += 1
        self.bytes += job.size
        self.per_partition[job.partition] += 1

    def release(self, state: PartitionState) -> None:
        """Recovery is done: queue the partition's held events, in fetch order."""
        held, state.held = state.held, []
        self.count -= len(held)  # pushed back in below
        for job in held:
            self.bytes -= job.size
            self.per_partition[job.partition] -= 1
            self.push(job)

    def finish(self, key: Key, job: Job) -> None:
        """The in-flight ``job`` of ``key`` is done with; the key's next event may go."""
        self._scheduler.finish(key)
        self._took(job)

    def forget(self, key: Key, job: Job) -> None:
        """The in-flight ``job`` of ``key`` is abandoned (its partition went), with whatever
        of the key is still queued (nothing, once ``drop`` ran for the partition)."""
        for queued in self._scheduler.forget(key):
            self._took(queued)
        self._took(job)

    def drop(self, partitions: set[int], states: list[PartitionState]) -> None:
        """Discard the queued and held events of ``partitions`` (``states``: theirs)."""
        for job in self._scheduler.drop(lambda key: key[0] in partitions):
            self._took(job)
        for state in states:
            for job in state.held:
                self._took(job)
            state.held = []

    def _took(self, job: Job) -> None:
        self.count -= 1
        self.bytes -= job.size
        left = self.per_partition[job.partition] - 1
        if left:
            self.per_partition[job.partition] = left
        else:
            del self.per_partition[job.partition]

    def in_flight_keys(self) -> list[Key]:
        return self._scheduler.in_flight_keys()

    def partitions_with_work(self) -> set[int]:
        """Partitions with an event queued, in flight or held."""
        return set(self.per_partition)
