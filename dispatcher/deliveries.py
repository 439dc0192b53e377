"""Running one worker's deliveries: lanes of events in flight, and what each verdict means.

``launch_ready`` starts a *lane* (a task) for each event the buffer lets go (one per user, at
most ``concurrency``). A lane runs its event through ``Pipeline.handle`` (inside the event's
CONSUMER span when tracing), applies the verdict, and goes on with the next event the buffer
lets go, in the same task: the slot its event freed is the one it fills. A lane ends when no
event may go; the fetch loop starts new ones when it has buffered more. A task per event
would cost the loop a task's creation, scheduling and teardown each time (issue 14). The
verdicts:

* ``FINISHED``: the live event is done with; its offset may be committed;
* ``REPLAYED`` / ``REPLAY_FAILED``: the replayer goes on with the user's parked events, or
  schedules its next retry.

Whatever else escapes the pipeline (a bug of ours, a header nobody expected) becomes a dead
letter naming the error: no event is ever left unfinished, holding its user and its
partition's commits for good. A completion arriving after its partition was revoked is
recognised by its epoch and ignored: the partition's new owner delivers it again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from opentelemetry import trace

from dispatcher.buffer import Buffer, Key
from dispatcher.chores import Chores
from dispatcher.durable import StoreRefused
from dispatcher.jobs import Job
from dispatcher.parking import ParkBook
from dispatcher.partitions import Partitions
from dispatcher.pipeline import Pipeline, Verdict
from dispatcher.replayer import Replayer
from eventlog import semconv
from eventlog.telemetry import extract_context

__all__ = ["Deliveries"]

log = logging.getLogger(__name__)
tracer = trace.get_tracer("dispatcher.deliveries")

YIELD_EVERY = 100
"""Events a lane delivers before it lets the loop take a turn, in case none of them waited."""


class Deliveries:
    """The deliveries in flight at one destination."""

    def __init__(
        self,
        *,
        name: str,
        topic: str,
        group_id: str,
        pipeline: Pipeline,
        partitions: Partitions,
        buffer: Buffer,
        book: ParkBook,
        replayer: Replayer,
        chores: Chores,
        wake: asyncio.Event,
        worth_a_turn: Callable[[int], bool],
        traced: bool,
    ) -> None:
        self._name = name
        self._topic = topic
        self._group_id = group_id
        self._pipeline = pipeline
        self._partitions = partitions
        self._buffer = buffer
        self._book = book
        self._replayer = replayer
        self._chores = chores
        self._wake = wake
        self._worth_a_turn = worth_a_turn
        self._traced = traced
        self._tasks: dict[Key, tuple[asyncio.Task[None], Job]] = {}
        self.stopping = False
        """Set at shutdown: no new delivery starts."""

    def launch_ready(self) -> None:
        """Start a delivery for every event that may go now."""
        if self.stopping:
            return
        while (ready := self._buffer.pop_ready()) is not None:
            key, job = ready
            self._tasks[key] = (asyncio.create_task(self._lane(key, job)), job)

    def running(self) -> list[asyncio.Task[None]]:
        return [task for task, _ in self._tasks.values() if not task.done()]

    def abandon(self, partitions: set[int]) -> None:
        """Cancel the deliveries of ``partitions`` (revoked or lost): never waited for."""
        for key in self._buffer.in_flight_keys():
            if key[0] in partitions:
                task, job = self._tasks.pop(key)
                self._buffer.forget(key, job)
                task.cancel()

    async def _lane(self, key: Key, job: Job) -> None:
        """Deliver ``job``, then each next event that may go, until none may. A lane waits
        between two events only every ``YIELD_EVERY`` of them, holding none, so a
        cancellation (``abandon``) always lands in the event it was meant for; after one, the
        lane stops."""
        lane = asyncio.current_task()
        assert lane is not None
        handle = self._traced_handle if self._traced else self._pipeline.handle
        delivered = 0
        while True:
            try:
                verdict = await handle(job)
            except StoreRefused as exc:
                self._chores.stop(str(exc))
                return  # left unfinished: uncommitted, delivered after the topic is fixed
            except Exception as exc:
                recovered = await self._internal_error(job, exc)
                if recovered is None:
                    return  # the dead letter was refused too: stopped, as above
                verdict = recovered
            if not self._finish(key, job, verdict) or lane.cancelling():
                break
            delivered += 1
            if delivered % YIELD_EVERY == 0:
                # Between two events, holding none: a destination that answers without
                # waiting (a mock) must not keep the loop from everyone else.
                await asyncio.sleep(0)
            if (ready := None if self.stopping else self._buffer.pop_ready()) is None:
                return
            key, job = ready
            self._tasks[key] = (lane, job)
            self.launch_ready()  # whatever else may go now (a replayed event, say)
        self.launch_ready()

    async def _internal_error(self, job: Job, exc: Exception) -> Verdict | None:
        """A bug on the delivery path must not freeze the partition: the event becomes a dead
        letter naming the error, and its user's next event goes on."""
        log.error(
            "delivery path failed destination=%s partition=%d offset=%d; dead-lettering it",
            self._name, job.partition, job.offset, exc_info=exc,
        )  # fmt: skip
        try:
            await self._pipeline.dead_letter(
                job, f"internal error: {type(exc).__name__}: {exc}", attempts=0
            )
        except StoreRefused as refused:
            self._chores.stop(str(refused))
            return None
        return Verdict.REPLAYED if job.replay else Verdict.FINISHED

    async def _traced_handle(self, job: Job) -> Verdict:
        """``Pipeline.handle`` inside the event's CONSUMER span, continuing the trace its
        record carries."""
        with tracer.start_as_current_span(
            f"process {self._topic}",
            context=extract_context(job.headers),
            kind=trace.SpanKind.CONSUMER,
            attributes=self._span_attributes(job),
        ) as span:
            if span.get_span_context().trace_flags.sampled:
                job.trace = span.get_span_context()
            verdict = await self._pipeline.handle(job)
            span.set_attribute(semconv.DELIVERY_OUTCOME, verdict.value)
            return verdict

    def _span_attributes(self, job: Job) -> dict[str, str | int]:
        attributes: dict[str, str | int] = {
            semconv.MESSAGING_SYSTEM: semconv.KAFKA,
            semconv.MESSAGING_DESTINATION: self._topic,
            semconv.MESSAGING_OPERATION_TYPE: "process",
            semconv.MESSAGING_PARTITION: str(job.partition),
            semconv.MESSAGING_KAFKA_OFFSET: job.offset,
            semconv.MESSAGING_CONSUMER_GROUP: self._group_id,
            semconv.DELIVERY_DESTINATION: self._name,
        }
        if job.event is not None:
            attributes[semconv.MESSAGING_KAFKA_KEY] = job.event.user_id
            attributes[semconv.MESSAGING_MESSAGE_ID] = job.event.id
        return attributes

    def _finish(self, key: Key, job: Job, verdict: Verdict) -> bool:
        """Apply ``verdict``; ``False`` when the partition was revoked meanwhile (its new
        owner delivers the event again)."""
        state = self._partitions.current(job.partition, job.epoch)
        if state is None:
            return False
        del self._tasks[key]
        self._buffer.finish(key, job)
        wake = True
        if verdict is Verdict.FINISHED:
            state.done(job.offset)
            if job.trace is not None:
                state.uncommitted_traces.append((job.offset, job.trace))
            if job.user is not None and self._book.is_parked(job.partition, job.user):
                self._replayer.on_parked((job.partition, job.user))
            else:  # the fetch loop is woken only when the room freed lets it fetch more
                wake = self._worth_a_turn(job.partition)
        elif verdict is Verdict.REPLAYED:
            self._chores.spawn(self._replayer.replayed(job))
        else:
            self._chores.spawn(self._replayer.failed(job, self._pipeline.last_error))
        if wake:
            self._wake.set()
        return True
