"""Ordered parking of one destination's failing users, as pure bookkeeping.

When a user's event exhausts its retries while the destination is otherwise healthy, the user
is *parked* at that destination: the event, and each later event of that user, is written to
the destination's park topic instead of being attempted, until a replay delivers them all in
order and the user is *released*. ``ParkBook`` keeps that state for the partitions one worker
owns; the worker does the writing and the delivering and tells the book what happened.

The book keeps, per parked ``(partition, user)``, the parked records in park-offset order (the
park topic is the durable copy; this is what a replay delivers), how many automatic retries
failed and when the next is due. It is rebuilt from the park topic with ``recover`` after a
restart or a partition move. ``PoisonGuard`` says when parking itself is the wrong answer: if
many users are being parked, the destination is down for everyone and the breaker should open.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import msgspec

from dispatcher.durations import Duration
from dispatcher.park_records import ParkRead, ReadEvent, ReadRelease, ReadRetry
from eventlog.record import Headers

__all__ = ["ParkBook", "ParkedEvent", "ParkedUser", "ParkingPolicy", "PoisonGuard", "recover"]

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
    """...or when this many users in a row would be parked with no delivery in between."""
    max_parked_events: int = 100_000
    """Parked events one destination holds in memory for replay; past it, no further user is
    parked: the breaker opens and further events wait in Kafka."""

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


@dataclass(frozen=True, slots=True)
class ParkedEvent:
    """One record in the park: the original record and where it sits."""

    park_offset: int
    source_offset: int
    """Its offset on the events topic (same partition number as in the park)."""
    key: bytes | None
    value: bytes | None
    headers: Headers
    timestamp_ms: int


@dataclass(slots=True)
class ParkedUser:
    """A user parked at this destination, on one partition."""

    partition: int
    user: str
    since: float
    next_retry_at: float
    events: deque[ParkedEvent] = field(default_factory=deque)
    retries: int = 0
    """Automatic retries (replays) that failed so far."""
    replaying: bool = False
    writing: int = 0
    """Live events of this user whose park write is not acknowledged yet."""
    delivered_source: int = -1
    """Highest source offset a replay delivered: a repeat in the park is skipped."""
    last_error: str = ""


Key = tuple[int, str]


class ParkBook:
    """Parked users of the partitions one worker owns (see the module docstring)."""

    def __init__(
        self, policy: ParkingPolicy, *, uniform: Callable[[], float] = random.random
    ) -> None:
        self._policy = policy
        self._uniform = uniform
        self._users: dict[Key, ParkedUser] = {}
        self._ends: dict[int, int] = {}
        self._events = 0

    # -- questions -------------------------------------------------------------------

    def is_parked(self, partition: int, user: str) -> bool:
        return (partition, user) in self._users

    def get(self, partition: int, user: str) -> ParkedUser | None:
        return self._users.get((partition, user))

    def users(self) -> Iterator[ParkedUser]:
        return iter(list(self._users.values()))

    @property
    def user_count(self) -> int:
        return len(self._users)

    @property
    def event_count(self) -> int:
        return self._events

    @property
    def full(self) -> bool:
        """No room to park another user (already parked users keep parking in order)."""
        return self._events >= self._policy.max_parked_events

    def due(self, now: float) -> list[Key]:
        """Parked users whose automatic retry is due and who are not replaying."""
        return [
            key
            for key, user in self._users.items()
            if not user.replaying and user.events and user.next_retry_at <= now
        ]

    def next_due_at(self) -> float | None:
        times = [u.next_retry_at for u in self._users.values() if not u.replaying and u.events]
        return min(times) if times else None

    def checkpoint(self, partition: int) -> int | None:
        """Where a new owner must start reading the park partition to rebuild this state:
        the first parked record still held, else the end of what is known."""
        firsts = [
            user.events[0].park_offset
            for (p, _), user in self._users.items()
            if p == partition and user.events
        ]
        if firsts:
            return min(firsts)
        return self._ends.get(partition)

    # -- live parking ----------------------------------------------------------------

    def begin_park(self, partition: int, user: str, now: float) -> bool:
        """A live event of ``user`` is about to be written to the park; ``True`` if this
        parks the user (it was not parked before)."""
        key = (partition, user)
        parked = self._users.get(key)
        new = parked is None
        if parked is None:
            parked = self._users[key] = ParkedUser(
                partition, user, since=now, next_retry_at=now + self._wait(0)
            )
        parked.writing += 1
        return new

    def parked(self, partition: int, user: str, event: ParkedEvent) -> None:
        """The park write begun with ``begin_park`` was acknowledged at ``event.park_offset``."""
        parked = self._users[(partition, user)]
        parked.writing -= 1
        parked.events.append(event)
        self._events += 1
        self.note_end(partition, event.park_offset + 1)

    def abort_park(self, partition: int, user: str) -> None:
        """The park write begun with ``begin_park`` will not happen (cancelled)."""
        parked = self._users.get((partition, user))
        if parked is None:
            return
        parked.writing -= 1
        if not parked.events and not parked.writing:
            del self._users[(partition, user)]

    def note_end(self, partition: int, next_offset: int) -> None:
        """The park partition is known to hold records below ``next_offset``."""
        if next_offset > self._ends.get(partition, -1):
            self._ends[partition] = next_offset

    # -- replaying -------------------------------------------------------------------

    def start_replay(self, key: Key) -> ParkedEvent | None:
        """Mark ``key`` replaying and return its first parked event (``None``: none left)."""
        parked = self._users[key]
        parked.replaying = True
        return self._head(parked)

    def replay_delivered(self, key: Key) -> ParkedEvent | None:
        """The replayed head is done (delivered, or dead-lettered as refused for good); the
        next one to replay, if any."""
        parked = self._users[key]
        head = parked.events.popleft()
        self._events -= 1
        parked.delivered_source = max(parked.delivered_source, head.source_offset)
        return self._head(parked)

    def can_release(self, key: Key) -> bool:
        """Every parked event of ``key`` was replayed and none is being written."""
        parked = self._users.get(key)
        return parked is not None and parked.replaying and not parked.events and not parked.writing

    def release(self, key: Key) -> None:
        """The release marker is stored: ``key`` is no longer parked."""
        parked = self._users.pop(key, None)
        if parked is not None:
            self._events -= len(parked.events)

    def replay_failed(self, key: Key, now: float, error: str) -> ParkedUser:
        """The head failed again: wait for the next step of the schedule."""
        parked = self._users[key]
        parked.replaying = False
        parked.retries += 1
        parked.next_retry_at = now + self._wait(parked.retries)
        parked.last_error = error
        return parked

    def retry_now(
        self, now: float, *, partition: int | None = None, user: str | None = None
    ) -> list[Key]:
        """Make matching parked users due at once (breaker closed, or an operator's replay)."""
        hits = []
        for key, parked in self._users.items():
            if (partition is None or key[0] == partition) and (user is None or key[1] == user):
                if not parked.replaying:
                    parked.next_retry_at = now
                hits.append(key)
        return hits

    def drop_partition(self, partition: int) -> None:
        """Forget a partition this worker no longer owns (its new owner recovers it)."""
        for key in [k for k in self._users if k[0] == partition]:
            self.release(key)
        self._ends.pop(partition, None)

    # -- recovery --------------------------------------------------------------------

    def recover_event(self, partition: int, user: str, event: ParkedEvent, now: float) -> None:
        """A parked record read back from the park topic, in offset order."""
        key = (partition, user)
        parked = self._users.get(key)
        if parked is None:
            # Spread the recovered users' first retries over the first wait, so a restart
            # does not retry them all at once.
            wait = self._policy.retry_schedule[0] * self._uniform()
            parked = self._users[key] = ParkedUser(
                partition, user, since=now, next_retry_at=now + wait
            )
        parked.events.append(event)
        self._events += 1
        self.note_end(partition, event.park_offset + 1)

    def recover_release(self, partition: int, user: str, up_to: int, offset: int) -> None:
        """A release marker: every parked record of ``user`` at or below ``up_to`` is done."""
        key = (partition, user)
        parked = self._users.get(key)
        if parked is not None:
            while parked.events and parked.events[0].park_offset <= up_to:
                parked.events.popleft()
                self._events -= 1
            if not parked.events:
                del self._users[key]
        self.note_end(partition, offset + 1)

    def recover_retry(
        self, partition: int, user: str, retries: int, next_at: float, offset: int
    ) -> None:
        """A retry marker: how many retries failed and when the next is due."""
        parked = self._users.get((partition, user))
        if parked is not None:
            parked.retries = retries
            parked.next_retry_at = next_at
        self.note_end(partition, offset + 1)

    def _head(self, parked: ParkedUser) -> ParkedEvent | None:
        # A record parked twice (a previous owner's late write) is replayed once.
        while parked.events and parked.events[0].source_offset <= parked.delivered_source:
            parked.events.popleft()
            self._events -= 1
        return parked.events[0] if parked.events else None

    def _wait(self, retries: int) -> float:
        schedule = self._policy.retry_schedule
        step = float(schedule[min(retries, len(schedule) - 1)])
        return step - step * 0.2 * self._uniform()  # jitter: parked users spread out


class PoisonGuard:
    """Whether parking one more user is still a per-user answer, or the destination is down.

    Counts, over ``window`` seconds, the live events that finished (delivered or parked), and
    how many users were parked in a row with no delivery in between.
    """

    def __init__(self, policy: ParkingPolicy, window: float) -> None:
        self._policy = policy
        self._window_seconds = window
        self._window: deque[tuple[float, bool]] = deque()
        self._parked = 0
        self._in_a_row = 0

    def record(self, *, parked: bool, now: float) -> None:
        window = self._window
        window.append((now, parked))
        self._parked += parked
        if window[0][0] < now - self._window_seconds:  # once per delivery: trim only if due
            self._trim(now)
        self._in_a_row = self._in_a_row + 1 if parked else 0

    def refusal(self, now: float) -> str | None:
        """Why parking another user now would be wrong (``None``: parking is fine)."""
        self._trim(now)
        if self._in_a_row + 1 >= self._policy.poison_users:
            return f"poison guard: {self._in_a_row + 1} users in a row would be parked"
        volume = len(self._window) + 1
        if volume >= self._policy.poison_min_volume:
            share = (self._parked + 1) / volume
            if share > self._policy.poison_ratio:
                return f"poison guard: {share:.0%} of recent events would be parked"
        return None

    def _trim(self, now: float) -> None:
        window = self._window
        horizon = now - self._window_seconds
        while window and window[0][0] < horizon:
            _, parked = window.popleft()
            self._parked -= parked


def recover(book: ParkBook, partition: int, offset: int, read: ParkRead, *, now: float) -> None:
    """Apply one record read back from a park partition (in offset order) to ``book``."""
    if isinstance(read, ReadEvent):
        event = ParkedEvent(
            offset, read.source_offset, read.key, read.value, read.headers, read.timestamp_ms
        )
        book.recover_event(partition, read.user, event, now)
    elif isinstance(read, ReadRelease):
        book.recover_release(partition, read.user, read.up_to, offset)
    elif isinstance(read, ReadRetry):
        book.recover_retry(partition, read.user, read.retries, read.next_at_ms / 1000, offset)
    else:
        book.note_end(partition, offset + 1)
