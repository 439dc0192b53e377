"""One event's way through one destination, from fetched to finished.

``Pipeline.handle`` ends every job in exactly one verdict:

* a **live** event of a parked user is parked behind the user's earlier events, unattempted;
* otherwise it is delivered (``dispatcher/delivery.py``). Delivered: done. Refused for good,
  or undecodable: dead-lettered, done. Exhausted while the destination was otherwise up: its
  user is parked (unless the poison guard says the destination is down for everyone: then the
  breaker opens and the event waits in place with a fresh set of attempts). Waited for a down
  destination until retention came close: parked;
* a **replayed** event is delivered (or dead-lettered if now refused for good): ``REPLAYED``;
  or it failed again: ``REPLAY_FAILED``, and its user waits for the next retry.

Whatever else goes wrong on the way (a bug of ours, a header nobody expected) is caught by the
worker and turned into a dead letter naming the error: no event is ever left unfinished.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Coroutine
from typing import Any

from opentelemetry import trace

from dispatcher.deadletter import DeadLetter, DeadLetterWriter
from dispatcher.delivery import Outcome, Result, deliver
from dispatcher.destinations import Destination
from dispatcher.gate import DestinationGate
from dispatcher.jobs import Job
from dispatcher.manifest import DestinationSpec
from dispatcher.metrics import DeliveryMetrics
from dispatcher.park_store import ParkWriter
from dispatcher.parking import ParkBook, ParkedEvent, PoisonGuard
from dispatcher.timeouts import Timeouts
from eventlog import semconv

__all__ = ["Pipeline", "Verdict", "WorkerStats"]

log = logging.getLogger(__name__)


class Verdict(enum.Enum):
    FINISHED = "finished"
    """A live event is done with: its offset may be committed."""
    REPLAYED = "replayed"
    REPLAY_FAILED = "replay_failed"


class WorkerStats:
    """Counters a worker reports when it closes."""

    __slots__ = ("attempts", "commits", "dead_lettered", "delivered", "parked")

    def __init__(self) -> None:
        self.delivered = 0
        self.dead_lettered = 0
        self.parked = 0
        self.attempts = 0
        self.commits = 0


class Pipeline:
    """The per-event decisions of one destination, with the I/O they need."""

    def __init__(
        self,
        *,
        spec: DestinationSpec,
        topic: str,
        destination: Destination,
        gate: DestinationGate,
        book: ParkBook,
        guard: PoisonGuard,
        park: ParkWriter,
        dead_letters: DeadLetterWriter,
        metrics: DeliveryMetrics,
        stats: WorkerStats,
        retention_ms: int | None,
        traced: bool,
    ) -> None:
        self.name = spec.name
        self._spec = spec
        self._topic = topic
        self._destination = destination
        self._gate = gate
        self._book = book
        self._guard = guard
        self._park = park
        self._dead_letters = dead_letters
        self._metrics = metrics
        self.stats = stats
        self._retention_ms = retention_ms
        self._traced = traced
        self._timeouts = Timeouts(spec.timeout)
        self.evacuated = False
        """Set when the retention guard parked an event; the worker clears it on recovery."""
        self.last_error = ""

    async def handle(self, job: Job) -> Verdict:
        if job.event is None:
            await self.dead_letter(job, f"undecodable record: {job.decode_error}", attempts=0)
            return Verdict.REPLAYED if job.replay else Verdict.FINISHED
        if job.replay:
            return await self._replay(job)
        if self._book.is_parked(job.partition, job.event.user_id):
            await self._park_event(job, "user parked", new=False)
            return Verdict.FINISHED
        while True:
            outcome = self._count(job, await self._deliver(job, deadline=self._deadline(job)))
            if outcome.result is Result.DELIVERED:  # the common case, without a detour
                self._guard.record(parked=False, now=time.time())
                return Verdict.FINISHED
            if outcome.result is Result.EXHAUSTED:
                refusal = self._guard.refusal(time.time())
                if refusal is None and self._book.full:
                    refusal = f"park full ({self._book.event_count} events parked)"
                if refusal is not None:
                    # Down for everyone: wait in place for the breaker, with fresh attempts.
                    self._gate.trip(refusal)
                    continue
            break
        return await self._settle(job, outcome)

    async def _settle(self, job: Job, outcome: Outcome) -> Verdict:
        """A live event that was not delivered: dead-lettered or parked."""
        if outcome.result is Result.REFUSED:
            await self.dead_letter(job, outcome.error or "", attempts=outcome.attempts)
        elif outcome.result is Result.EXHAUSTED:
            self._guard.record(parked=True, now=time.time())
            await self._park_event(job, f"retries exhausted: {outcome.error}", new=True)
        else:
            self.evacuated = True
            await self._park_event(job, "retention guard: destination down too long", new=True)
        return Verdict.FINISHED

    async def _replay(self, job: Job) -> Verdict:
        outcome = self._count(job, await self._deliver(job, deadline=None))
        if outcome.result is Result.REFUSED:
            await self.dead_letter(job, outcome.error or "", attempts=outcome.attempts)
        elif outcome.result is not Result.DELIVERED:
            self.last_error = outcome.error or outcome.result.value
            return Verdict.REPLAY_FAILED
        return Verdict.REPLAYED

    def _deliver(self, job: Job, *, deadline: float | None) -> Coroutine[Any, Any, Outcome]:
        """The delivery of ``job`` to await (a coroutine handed back, not awaited here: one
        frame less on every event's way)."""
        assert job.event is not None
        return deliver(
            self._destination,
            job.event,
            gate=self._gate,
            name=self.name,
            timeouts=self._timeouts,
            policy=self._spec.retry,
            deadline=deadline,
            metrics=self._metrics,
            traced=self._traced,
        )

    def _count(self, job: Job, outcome: Outcome) -> Outcome:
        """Count a delivery's outcome in the stats and metrics."""
        assert job.event is not None
        self.stats.attempts += outcome.attempts
        if outcome.delivered:
            self.stats.delivered += 1
            latency = time.time() - job.event.received_at_ms / 1000
            self._metrics.finished(self.name, "delivered", latency)
        return outcome

    def _deadline(self, job: Job) -> float | None:
        """When a live event waiting for a down destination must be parked instead."""
        if self._retention_ms is None or self._retention_ms <= 0:
            return None
        assert job.event is not None
        born = job.timestamp_ms or job.event.received_at_ms
        return (born + self._retention_ms * self._spec.parking.retention_margin) / 1000

    async def _park_event(self, job: Job, reason: str, *, new: bool) -> None:
        user = job.user
        assert user is not None
        first = self._book.begin_park(job.partition, user, time.time())
        try:
            offset = await self._park.event(job, reason)
        except BaseException:
            self._book.abort_park(job.partition, user)
            raise
        self._book.parked(
            job.partition,
            user,
            ParkedEvent(offset, job.offset, job.key, job.value, job.headers, job.timestamp_ms),
        )
        self.stats.parked += 1
        self._metrics.finished(self.name, "parked", None)
        if first:
            log.warning(
                "user parked destination=%s partition=%d user=%s offset=%d park_offset=%d "
                "reason=%r",
                self.name, job.partition, user, job.offset, offset, reason,
            )  # fmt: skip
        elif new:  # parked again while its earlier events were still parked
            log.info("parked destination=%s user=%s reason=%r", self.name, user, reason)
        if self._traced:
            trace.get_current_span().add_event(
                "parked",
                {
                    semconv.MESSAGING_DESTINATION: self._park.topic,
                    semconv.MESSAGING_KAFKA_OFFSET: offset,
                },
            )

    async def dead_letter(self, job: Job, error: str, *, attempts: int) -> None:
        letter = await self._dead_letters.write(
            DeadLetter(
                destination=self.name,
                error=error,
                attempts=attempts,
                permanent=True,
                topic=self._topic,
                partition=job.partition,
                offset=job.offset,
                key=job.key,
                value=job.value,
                headers=job.headers,
            )
        )
        if self._traced:
            trace.get_current_span().add_event(
                "dead-lettered",
                {
                    semconv.MESSAGING_DESTINATION: letter.topic,
                    semconv.MESSAGING_KAFKA_OFFSET: letter.offset,
                },
            )
        self.stats.dead_lettered += 1
        self._metrics.finished(self.name, "dead_lettered", None)
