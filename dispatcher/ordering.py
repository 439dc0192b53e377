"""Per-user ordering and commit bookkeeping of one destination's consumer, as pure code.

Two questions are answered here, with no I/O, so they can be tested exhaustively:

* **What may be delivered now?** ``KeyedScheduler`` keeps one FIFO queue per ordering key
  (``(partition, user_id)``) and lets at most one item per key, and at most ``concurrency``
  items overall, be in flight. The next item of a key waits until the current one has finished
  all its retries, so one user's events arrive in offset order; keys take turns in the order they
  became ready, so a busy user cannot starve the others.
* **What may be committed?** ``OffsetTracker`` follows one partition: its committable offset is
  the lowest offset still pending (Kafka's "next offset to read"), so a restart re-delivers every
  unfinished event and never skips one.

Every operation is O(1) amortised: they run once per event on the consumer's hot path. Misuse
(an offset going backwards, finishing what is not in flight) raises ``ValueError``: it is a bug
in the caller, and carrying on would risk committing past an undelivered event.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

# typing's own TypeVar takes ``default`` only from Python 3.13.
from typing_extensions import TypeVar as TypeVarWithDefault

__all__ = ["KeyedScheduler", "OffsetTracker"]

T = TypeVar("T")
"""The caller's item (an event wrapper); never inspected here."""
K = TypeVarWithDefault("K", bound=Hashable, default=Hashable)
"""The ordering key. ``KeyedScheduler[Item, tuple[int, str]]`` lets callers index keys in
``drop`` predicates and ``in_flight_keys``; plain ``KeyedScheduler[Item]`` means ``Hashable``."""


class OffsetTracker:
    """Commit bookkeeping for one partition: which fetched offsets are still unfinished.

    Offsets arrive strictly increasing but not necessarily contiguous (compaction and
    transaction markers leave gaps), and finish in any order. ``_window`` holds the added
    offsets from the lowest pending one on, in order; its head is always pending, so
    ``committable`` is a lookup. Finished offsets behind a pending head stay in the window
    until the head finishes, then are popped together.
    """

    __slots__ = ("_last", "_pending", "_window")

    def __init__(self) -> None:
        self._window: deque[int] = deque()
        self._pending: set[int] = set()
        self._last = -1

    def add(self, offset: int) -> None:
        """Record a fetched event at ``offset``, which must be above every offset added before."""
        if offset <= self._last:
            raise ValueError(
                f"offset {offset} is not above the last one added ({self._last}); "
                "offsets of a partition must be added strictly increasing"
            )
        self._window.append(offset)
        self._pending.add(offset)
        self._last = offset

    def done(self, offset: int) -> None:
        """Record that the event at ``offset`` finished (delivered, or given up on)."""
        pending = self._pending
        try:
            pending.remove(offset)
        except KeyError:
            raise ValueError(f"offset {offset} is not pending") from None
        window = self._window
        if window[0] == offset:
            window.popleft()
            while window and window[0] not in pending:
                window.popleft()

    def committable(self) -> int | None:
        """The offset to commit: the lowest pending one, else one past the last added.

        ``None`` when nothing was ever added, so there is nothing to say about this partition.
        """
        if self._window:
            return self._window[0]
        return self._last + 1 if self._last >= 0 else None

    @property
    def pending(self) -> int:
        """Events added and not yet done."""
        return len(self._pending)


class KeyedScheduler(Generic[T, K]):
    """Per-key FIFO queues; at most one item in flight per key, at most ``concurrency`` overall.

    A key is *ready* when it has queued items and nothing in flight. Ready keys wait in
    ``_ready`` in the order they became ready (pushed while idle, or finished with more
    queued), and ``pop_ready`` serves them first come, first served. A key that finishes goes
    to the back of that line, so a user with a long backlog takes one turn per round.

    Items are opaque: the scheduler never looks at them, so it holds whatever the consumer
    needs to deliver and commit an event.
    """

    __slots__ = ("_concurrency", "_in_flight", "_queued", "_queues", "_ready")

    def __init__(self, concurrency: int) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {concurrency}")
        self._concurrency = concurrency
        # Invariant: a key is in ``_queues`` iff it has queued items, and in ``_ready`` iff it
        # is in ``_queues`` and not in ``_in_flight``.
        self._queues: dict[K, deque[T]] = {}
        self._ready: deque[K] = deque()
        self._in_flight: set[K] = set()
        self._queued = 0

    def push(self, key: K, item: T) -> None:
        """Queue ``item`` behind the earlier items of ``key``."""
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = deque()
            if key not in self._in_flight:
                self._ready.append(key)
        queue.append(item)
        self._queued += 1

    def pop_ready(self) -> tuple[K, T] | None:
        """The next item to deliver, now marked in flight; ``None`` if none may start now.

        ``None`` means either ``concurrency`` items are in flight, or every key with queued
        items already has one in flight: wait for a ``finish``.
        """
        ready = self._ready
        if not ready or len(self._in_flight) >= self._concurrency:
            return None
        key = ready.popleft()
        queue = self._queues[key]
        item = queue.popleft()
        if not queue:
            del self._queues[key]
        self._in_flight.add(key)
        self._queued -= 1
        return key, item

    def finish(self, key: K) -> None:
        """The in-flight item of ``key`` finished; the key's next item becomes ready."""
        try:
            self._in_flight.remove(key)
        except KeyError:
            raise ValueError(f"key {key!r} has nothing in flight") from None
        if key in self._queues:
            self._ready.append(key)

    def drop(self, predicate: Callable[[K], bool]) -> list[T]:
        """Remove and return the queued items of every key matching ``predicate``.

        Used when partitions are revoked, with the items in push order per key. In-flight items
        are not touched: they stay in flight until ``finish`` or ``forget``. O(keys), which is
        fine for a rare rebalance.
        """
        dropped: list[T] = []
        for key in [key for key in self._queues if predicate(key)]:
            dropped.extend(self._queues.pop(key))
        self._queued -= len(dropped)
        if dropped:
            self._ready = deque(key for key in self._ready if key in self._queues)
        return dropped

    def forget(self, key: K) -> list[T]:
        """Abandon the in-flight item of ``key`` and remove the key entirely.

        For a revoked partition whose deliveries will not be waited for: frees the in-flight
        slot and discards any items still queued for ``key``, returning them (none if ``drop``
        ran first) so nothing is lost silently. ``ValueError`` if ``key`` has nothing in
        flight.

        The abandoned delivery may still complete later. After ``forget`` the scheduler cannot
        tell that stale completion from one of a new item of the same key (the partition may
        come back), so the caller must not pass it to ``finish``.
        """
        if key not in self._in_flight:
            raise ValueError(f"key {key!r} has nothing in flight")
        self._in_flight.remove(key)
        queue = self._queues.pop(key, None)
        if queue is None:
            return []
        # An in-flight key is never in ``_ready``, so only the count needs fixing.
        self._queued -= len(queue)
        return list(queue)

    def queued_keys(self) -> list[K]:
        """The keys that have items waiting (a snapshot)."""
        return list(self._queues)

    def in_flight_keys(self) -> list[K]:
        """The keys that have an item in flight (a snapshot, safe to ``forget`` while iterating)."""
        return list(self._in_flight)

    @property
    def in_flight(self) -> int:
        """Items being delivered."""
        return len(self._in_flight)

    @property
    def buffered(self) -> int:
        """Items held, queued plus in flight."""
        return self._queued + len(self._in_flight)
