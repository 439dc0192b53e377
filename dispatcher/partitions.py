"""What a worker knows about each partition it owns, and the epochs that tell assignments apart.

Each assignment of a partition gets a new epoch; a job remembers the epoch it was fetched
under, so a completion arriving after the partition was revoked (and maybe assigned again) is
recognised as stale and ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from opentelemetry.trace import SpanContext

from dispatcher.jobs import Job
from dispatcher.ordering import OffsetTracker

__all__ = ["PartitionState", "Partitions"]


@dataclass(slots=True)
class PartitionState:
    epoch: int
    offsets: OffsetTracker = field(default_factory=OffsetTracker)
    timestamps: dict[int, int] = field(default_factory=dict)
    """Record timestamp (ms) of each unfinished offset, for the oldest unfinished age."""
    committed: int | None = None
    committed_checkpoint: int | None = None
    uncommitted_traces: list[tuple[int, SpanContext]] = field(default_factory=list)
    """Finished, traced events whose offsets no commit has covered yet."""
    asked_committed: bool = False
    """Whether the group's committed offset was looked up (for lag before the first fetch)."""
    recovering: bool = True
    """Its parked users are being read back from the park topic: hold its live events."""
    held: list[Job] = field(default_factory=list)
    """Live events fetched while recovering, delivered once recovery is done."""
    recover_until: int = -1
    """The park partition's end when recovery began (``-1``: not looked up yet)."""
    requests: dict[str, str | None] = field(default_factory=dict)
    """Replay requests met during recovery with no ``replay-done`` after them: answered once
    recovery is done (request id -> user, ``None`` for all)."""

    def add(self, job: Job) -> None:
        self.offsets.add(job.offset)
        self.timestamps[job.offset] = job.timestamp_ms

    def done(self, offset: int) -> None:
        self.offsets.done(offset)
        self.timestamps.pop(offset, None)

    def oldest_unfinished_ms(self) -> int | None:
        """Timestamp of the first unfinished event fetched, if any."""
        first = self.offsets.committable()
        if first is None or self.offsets.pending == 0:
            return None
        return self.timestamps.get(first)


class Partitions:
    """The partitions a worker owns, by number."""

    def __init__(self) -> None:
        self._states: dict[int, PartitionState] = {}
        self._epoch = 0

    def assign(self, partition: int) -> PartitionState:
        self._epoch += 1
        state = self._states[partition] = PartitionState(epoch=self._epoch)
        return state

    def drop(self, partition: int) -> None:
        self._states.pop(partition, None)

    def get(self, partition: int) -> PartitionState | None:
        return self._states.get(partition)

    def current(self, partition: int, epoch: int) -> PartitionState | None:
        """The state of ``partition`` if still under assignment ``epoch``."""
        state = self._states.get(partition)
        return state if state is not None and state.epoch == epoch else None

    def items(self) -> list[tuple[int, PartitionState]]:
        return list(self._states.items())

    def numbers(self) -> set[int]:
        return set(self._states)

    def recovering(self) -> set[int]:
        return {p for p, s in self._states.items() if s.recovering}

    def __len__(self) -> int:
        return len(self._states)
