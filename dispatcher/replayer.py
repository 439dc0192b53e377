"""Parked users back into delivery: on their schedule, when the breaker closes, on request.

Only the owner of an events partition replays that partition's parked users, inside its own
event loop, so nothing else can interleave with a user's replay. One parked event of a user is
replayed at a time, in park order, through the normal delivery path. When the last one was
delivered and no live event of the user is still being parked, a ``release`` marker is
written; only once it is acknowledged does the user's live traffic flow again. A live event
parked while the marker was on its way simply continues the replay.

A ``dispatcher replay`` request (a ``replay-request`` record on the park partition) makes the
matching users due now; each user's result and one ``replay-done`` per partition are written
back for the command to read.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from dispatcher.jobs import Job, job_from_parked
from dispatcher.park_store import ParkWriter
from dispatcher.parking import Key, ParkBook, ParkedEvent
from dispatcher.partitions import Partitions

__all__ = ["Replayer"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Request:
    partition: int
    waiting: set[str] = field(default_factory=set)
    users: int = 0


class Replayer:
    """Starts, continues and ends the replays of one worker's parked users."""

    def __init__(
        self,
        *,
        name: str,
        book: ParkBook,
        park: ParkWriter,
        partitions: Partitions,
        push: Callable[[Job], None],
        spawn: Callable[[Coroutine[Any, Any, object]], None],
    ) -> None:
        self._name = name
        self._book = book
        self._park = park
        self._partitions = partitions
        self._push = push
        self._spawn = spawn
        self._active: set[Key] = set()
        """Users with a replayed event queued or in flight."""
        self._stalled: set[Key] = set()
        """Users whose replay waits for a live event's park write to be acknowledged."""
        self._replayed: dict[Key, int] = {}
        self._last_offset: dict[Key, int] = {}
        self._requests: dict[tuple[str, int], _Request] = {}

    def tick(self, now: float) -> None:
        """Start the replays that are due."""
        for key in self._book.due(now):
            if key not in self._active:
                self._start(key)

    def offer_probe(self) -> None:
        """The breaker is open and nothing waits at it: replay the parked user due soonest,
        so its head becomes the probe. (After the retention guard parked everything, no live
        event would be left to find out that the destination is back.)"""
        candidates = [
            u for u in self._book.users() if u.events and (u.partition, u.user) not in self._active
        ]
        if candidates:
            first = min(candidates, key=lambda u: u.next_retry_at)
            self._start((first.partition, first.user))

    def retry_all(self, now: float) -> None:
        """The breaker closed: every parked user's failure was most likely the outage."""
        self._book.retry_now(now)
        self.tick(now)

    def request(self, request: str, partition: int, user: str | None, now: float) -> None:
        """An operator asked for a replay (of one user, or of every parked user here)."""
        keys = self._book.retry_now(now, partition=partition, user=user)
        entry = _Request(partition, {k[1] for k in keys}, len(keys))
        log.info(
            "replay requested destination=%s partition=%d user=%s request=%s users=%d",
            self._name, partition, user or "*", request, len(keys),
        )  # fmt: skip
        if not entry.waiting:
            self._spawn(self._park.replay_done(partition, request, 0))
            return
        self._requests[request, partition] = entry
        self.tick(now)

    def on_parked(self, key: Key) -> None:
        """A live event of ``key`` was parked: a replay waiting on it can go on."""
        if key in self._stalled:
            self._stalled.discard(key)
            self._start(key)

    async def replayed(self, job: Job) -> None:
        """A replayed event is done with; replay the next, or release the user."""
        key = self._key(job)
        if key is None:
            return
        self._replayed[key] = self._replayed.get(key, 0) + 1
        self._last_offset[key] = max(self._last_offset.get(key, -1), job.park_offset or -1)
        following = self._book.replay_delivered(key)
        if following is not None:
            self._push_parked(key, following)
            return
        await self._release(key)

    async def failed(self, job: Job, error: str) -> None:
        """A replayed event failed again: the user waits for its next retry."""
        key = self._key(job)
        if key is None:
            return
        self._active.discard(key)
        parked = self._book.replay_failed(key, time.time(), error)
        log.warning(
            "replay failed destination=%s partition=%d user=%s retries=%d next_retry_in=%.0fs "
            "error=%r",
            self._name, key[0], key[1], parked.retries, parked.next_retry_at - time.time(),
            error[:200],
        )  # fmt: skip
        await self._park.retry(key[0], key[1], parked.retries, parked.next_retry_at, error)
        await self._report(key, released=False, error=error)

    def drop(self, partition: int) -> None:
        """The partition is no longer ours."""
        for keys in (self._active, self._stalled):
            for key in [k for k in keys if k[0] == partition]:
                keys.discard(key)
        for key in [k for k in self._replayed if k[0] == partition]:
            self._replayed.pop(key, None)
            self._last_offset.pop(key, None)
        for request in [r for r in self._requests if r[1] == partition]:
            del self._requests[request]

    @property
    def replaying(self) -> int:
        return len(self._active)

    def _start(self, key: Key) -> None:
        state = self._partitions.get(key[0])
        if state is None or state.recovering or self._book.get(*key) is None:
            return
        head = self._book.start_replay(key)
        if head is None:
            self._spawn(self._release(key))
            return
        if key not in self._replayed:
            parked = self._book.get(*key)
            log.info(
                "replaying destination=%s partition=%d user=%s parked=%d",
                self._name, key[0], key[1], len(parked.events) if parked else 0,
            )  # fmt: skip
        self._push_parked(key, head)

    def _push_parked(self, key: Key, head: ParkedEvent) -> None:
        state = self._partitions.get(key[0])
        if state is None:
            return
        self._active.add(key)
        self._push(job_from_parked(key[0], head, state.epoch))

    async def _release(self, key: Key) -> None:
        self._active.discard(key)
        if not self._book.can_release(key):
            parked = self._book.get(*key)
            if parked is not None and parked.writing:
                self._stalled.add(key)  # a live event is on its way into the park
            elif parked is not None and parked.events:
                self._start(key)
            return
        up_to = self._last_offset.get(key, -1)
        await self._park.release(key[0], key[1], up_to)
        if not self._book.can_release(key):
            self._start(key)  # parked more while the marker was on its way: go on
            return
        self._book.release(key)
        replayed = self._replayed.pop(key, 0)
        self._last_offset.pop(key, None)
        log.info(
            "user released destination=%s partition=%d user=%s replayed=%d",
            self._name, key[0], key[1], replayed,
        )  # fmt: skip
        await self._report(key, released=True, error="", replayed=replayed)

    async def _report(
        self, key: Key, *, released: bool, error: str, replayed: int | None = None
    ) -> None:
        count = self._replayed.get(key, 0) if replayed is None else replayed
        for (request, partition), entry in list(self._requests.items()):
            if partition != key[0] or key[1] not in entry.waiting:
                continue
            entry.waiting.discard(key[1])
            await self._park.replay_result(
                partition, request, key[1], replayed=count, released=released, error=error
            )
            if not entry.waiting:
                del self._requests[request, partition]
                await self._park.replay_done(partition, request, entry.users)

    def _key(self, job: Job) -> Key | None:
        user = job.user
        return (job.partition, user) if user is not None else None
