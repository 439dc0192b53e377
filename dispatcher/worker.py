"""One destination's consumer: fetch, deliver in per-user order, dead-letter, commit.

Each destination has its own Kafka consumer in its own group and runs as one asyncio task; a
process hosts many of them without a thread each. The consumer is polled without blocking
(``consume(timeout=0)``) from the event loop, idling with a short, growing sleep when there is
nothing to fetch, so rebalance callbacks also run on the loop thread.

Per event: the ordering key is ``(partition, user_id)``; ``KeyedScheduler`` lets at most one
event per key and ``concurrency`` events overall be in flight, and ``OffsetTracker`` knows the
highest offset of each partition below which everything has finished. Only that is committed,
periodically and on revocation and shutdown: at-least-once, never past an unfinished event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext

from dispatcher.deadletter import DeadLetter, DeadLetterWriter
from dispatcher.delivery import Outcome, deliver
from dispatcher.destinations import Destination
from dispatcher.manifest import DestinationSpec, Manifest
from dispatcher.metrics import DeliveryMetrics
from dispatcher.ordering import KeyedScheduler, OffsetTracker
from eventlog import semconv
from eventlog.clients import consumer_config
from eventlog.exceptions import RecordFormatError
from eventlog.record import Event, Headers, decode
from eventlog.telemetry import extract_context, tracing_enabled
from eventlog.threads import run_in_daemon_thread

__all__ = ["DestinationWorker", "WorkerStats"]

log = logging.getLogger(__name__)
tracer = trace.get_tracer("dispatcher.worker")

FETCH_BATCH = 500
IDLE_SLEEP_MIN = 0.002
IDLE_SLEEP_MAX = 0.1
"""Longest nap of an idle consumer: the most a lone event waits to be picked up. Hundreds of
idle destinations in one process poll 10 times a second each."""


_Key = tuple[int, str | None]
"""Ordering key: (partition, user_id); ``None`` for records that could not be decoded."""


@dataclass(slots=True)
class WorkerStats:
    """Counters a worker reports when it closes."""

    delivered: int = 0
    dead_lettered: int = 0
    attempts: int = 0
    commits: int = 0


@dataclass(slots=True)
class _Pending:
    """A fetched record on its way to the destination."""

    partition: int
    offset: int
    epoch: int
    key: bytes | None
    value: bytes | None
    headers: Headers
    event: Event | None
    """``None`` when the record could not be decoded: it goes straight to the dead letters."""
    decode_error: str | None = None
    trace: SpanContext | None = None
    """The event's (sampled) processing span, parent of its commit span."""


@dataclass(slots=True)
class _PartitionState:
    epoch: int
    offsets: OffsetTracker = field(default_factory=OffsetTracker)
    committed: int | None = None
    uncommitted_traces: list[tuple[int, SpanContext]] = field(default_factory=list)
    """Finished, traced events whose offsets no commit has covered yet."""
    asked_committed: bool = False
    """Whether the group's committed offset was looked up (for lag before the first fetch)."""


class DestinationWorker:
    """Runs one destination until ``stop`` is set, then drains, commits and closes."""

    def __init__(
        self,
        *,
        manifest: Manifest,
        spec: DestinationSpec,
        destination: Destination,
        dead_letters: DeadLetterWriter,
        bootstrap_servers: str,
        commit_interval: float = 1.0,
        drain_timeout: float = 10.0,
        metrics: DeliveryMetrics | None = None,
        consumer_overrides: dict[str, Any] | None = None,
    ) -> None:
        self.name = spec.name
        self.group_id = manifest.group_id(spec)
        self.stats = WorkerStats()
        self._spec = spec
        self._topic = manifest.topic
        self._destination = destination
        self._dead_letters = dead_letters
        self._commit_interval = commit_interval
        self._drain_timeout = drain_timeout
        self._metrics = metrics or DeliveryMetrics()
        self._metrics.watch_in_flight(self.name, lambda: self._scheduler.in_flight)
        self._traced = tracing_enabled()
        self._starts_at_earliest = manifest.start_from == "earliest"
        self._config = consumer_config(
            bootstrap_servers,
            self.group_id,
            start_from=manifest.start_from,
            on_commit=self._on_commit,
            **(consumer_overrides or {}),
        )
        self._scheduler: KeyedScheduler[_Pending, _Key] = KeyedScheduler(spec.concurrency)
        self._partitions: dict[int, _PartitionState] = {}
        self._tasks: dict[_Key, asyncio.Task[None]] = {}
        self._epoch = 0
        self._paused = False
        self._assignment_changed = False
        self._stopping = False
        self._consumer: Consumer | None = None

    # -- lifecycle ---------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> WorkerStats:
        """Consume and deliver until ``stop`` is set; then shut down in order."""
        consumer = Consumer(self._config)
        self._consumer = consumer
        consumer.subscribe(
            [self._topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        log.info("consumer started destination=%s group=%s", self.name, self.group_id)
        commit_task = asyncio.create_task(self._commit_periodically(stop))
        try:
            await self._fetch_until(stop)
        finally:
            await self._shutdown(consumer, commit_task)
        return self.stats

    async def _fetch_until(self, stop: asyncio.Event) -> None:
        consumer = self._consumer
        assert consumer is not None
        idle = IDLE_SLEEP_MIN
        while not stop.is_set():
            self._apply_backpressure(consumer)
            room = self._spec.max_buffered - self._scheduler.buffered
            messages = consumer.consume(num_messages=max(1, min(FETCH_BATCH, room)), timeout=0)
            if not messages:
                # Nothing fetched: yield to deliveries, sleeping a little longer each time (a
                # plain sleep: hundreds of idle destinations poll this way).
                await asyncio.sleep(idle)
                idle = min(idle * 2, IDLE_SLEEP_MAX)
                continue
            idle = IDLE_SLEEP_MIN
            for message in messages:
                self._accept(message)
            self._launch_ready()
            await asyncio.sleep(0)

    async def _shutdown(self, consumer: Consumer, commit_task: asyncio.Task[None]) -> None:
        self._stopping = True  # no new deliveries; in-flight ones may finish
        commit_task.cancel()
        running = [t for t in self._tasks.values() if not t.done()]
        if running:
            log.info(
                "draining destination=%s in_flight=%d timeout=%.1fs",
                self.name,
                len(running),
                self._drain_timeout,
            )
            _, late = await asyncio.wait(running, timeout=self._drain_timeout)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        # Both calls wait on the broker; if it is gone they must not hold the process. What
        # is not committed is redelivered after a restart.
        await self._bounded(lambda: self._commit(asynchronous=False), "final commit")
        # Forget everything here, on the loop thread: close() runs the revoke callback on
        # the closing thread, which then finds nothing left to touch.
        self._abandon(set(self._partitions))
        await self._bounded(consumer.close, "consumer close")
        await self._destination.close()
        log.info(
            "closed destination=%s delivered=%d dead_lettered=%d attempts=%d commits=%d",
            self.name,
            self.stats.delivered,
            self.stats.dead_lettered,
            self.stats.attempts,
            self.stats.commits,
        )

    async def _bounded(self, call: Callable[[], object], what: str) -> None:
        try:
            async with asyncio.timeout(self._drain_timeout):
                await run_in_daemon_thread(call, name=f"{what}:{self.name}")
        except TimeoutError:
            log.warning(
                "kafka did not answer in time destination=%s step=%r timeout=%.1fs; "
                "uncommitted events are redelivered after restart",
                self.name, what, self._drain_timeout,
            )  # fmt: skip

    # -- fetching ----------------------------------------------------------------------

    def _accept(self, message: Message) -> None:
        error = message.error()
        if error is not None:
            if error.fatal():
                raise KafkaException(error)
            log.warning("consumer error destination=%s error=%s", self.name, error.str())
            return
        partition, offset = message.partition(), message.offset()
        assert partition is not None and offset is not None
        state = self._partitions.get(partition)
        if state is None:  # fetched just before a revocation took the partition away
            return
        raw_headers = message.headers() or []
        headers: Headers = list(
            raw_headers.items() if isinstance(raw_headers, dict) else raw_headers
        )
        key, value = message.key(), message.value()
        try:
            event: Event | None = decode(key, value, headers)
            problem = None
        except RecordFormatError as exc:
            event, problem = None, str(exc)
        state.offsets.add(offset)
        pending = _Pending(partition, offset, state.epoch, key, value, headers, event, problem)
        user = event.user_id if event is not None else None
        self._scheduler.push((partition, user), pending)

    def _launch_ready(self) -> None:
        if self._stopping:
            return
        while (ready := self._scheduler.pop_ready()) is not None:
            key, pending = ready
            self._tasks[key] = asyncio.create_task(self._handle(key, pending))

    def _apply_backpressure(self, consumer: Consumer) -> None:
        # Pause when full, resume only once half the buffer drained: each pause discards
        # what librdkafka had pre-fetched, so flapping at the limit would refetch constantly.
        buffered = self._scheduler.buffered
        if buffered >= self._spec.max_buffered and (not self._paused or self._assignment_changed):
            consumer.pause(consumer.assignment())
            self._paused = True
            log.debug("fetching paused destination=%s buffered=%d", self.name, buffered)
        elif self._paused and buffered <= self._spec.max_buffered // 2:
            consumer.resume(consumer.assignment())
            self._paused = False
        self._assignment_changed = False

    # -- delivering --------------------------------------------------------------------

    async def _handle(self, key: _Key, pending: _Pending) -> None:
        try:
            if self._traced:
                await self._process_traced(pending)
            else:  # no span machinery at all when nobody collects spans
                await self._deliver_or_dead_letter(pending)
        except Exception:
            # Left unfinished on purpose: its offset is never committed, so it is redelivered
            # after a restart rather than lost. The log line makes the stall visible.
            log.exception(
                "delivery crashed destination=%s partition=%d offset=%d; left uncommitted",
                self.name,
                pending.partition,
                pending.offset,
            )
            return
        self._finish(key, pending)

    async def _process_traced(self, pending: _Pending) -> None:
        """``_deliver_or_dead_letter`` inside the event's CONSUMER span, continuing the trace
        its record carries."""
        with tracer.start_as_current_span(
            f"process {self._topic}",
            context=extract_context(pending.headers),
            kind=trace.SpanKind.CONSUMER,
            attributes=self._span_attributes(pending),
        ) as span:
            if span.get_span_context().trace_flags.sampled:
                pending.trace = span.get_span_context()
            result = await self._deliver_or_dead_letter(pending)
            span.set_attribute(semconv.DELIVERY_OUTCOME, result)

    def _span_attributes(self, pending: _Pending) -> dict[str, str | int]:
        attributes: dict[str, str | int] = {
            semconv.MESSAGING_SYSTEM: semconv.KAFKA,
            semconv.MESSAGING_DESTINATION: self._topic,
            semconv.MESSAGING_OPERATION_TYPE: "process",
            semconv.MESSAGING_PARTITION: str(pending.partition),
            semconv.MESSAGING_KAFKA_OFFSET: pending.offset,
            semconv.MESSAGING_CONSUMER_GROUP: self.group_id,
            semconv.DELIVERY_DESTINATION: self.name,
        }
        if pending.event is not None:
            attributes[semconv.MESSAGING_KAFKA_KEY] = pending.event.user_id
            attributes[semconv.MESSAGING_MESSAGE_ID] = pending.event.id
        return attributes

    async def _deliver_or_dead_letter(self, pending: _Pending) -> str:
        """Deliver with retries, or write a dead letter; returns which happened."""
        if pending.event is None:
            outcome = Outcome(
                delivered=False,
                attempts=0,
                error=f"undecodable record: {pending.decode_error}",
                permanent=True,
            )
        else:
            outcome = await deliver(
                self._destination,
                pending.event,
                name=self.name,
                attempt_timeout=self._spec.timeout,
                policy=self._spec.retry,
                metrics=self._metrics,
                traced=self._traced,
            )
        self.stats.attempts += outcome.attempts
        if outcome.delivered:
            assert pending.event is not None
            self.stats.delivered += 1
            latency = time.time() - pending.event.received_at_ms / 1000
            self._metrics.finished(self.name, "delivered", latency)
            return "delivered"
        letter = await self._dead_letters.write(
            DeadLetter(
                destination=self.name,
                error=outcome.error or "",
                attempts=outcome.attempts,
                permanent=outcome.permanent,
                topic=self._topic,
                partition=pending.partition,
                offset=pending.offset,
                key=pending.key,
                value=pending.value,
                headers=pending.headers,
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
        return "dead_lettered"

    def _finish(self, key: _Key, pending: _Pending) -> None:
        state = self._partitions.get(pending.partition)
        if state is None or state.epoch != pending.epoch:
            return  # the partition was revoked meanwhile; its new owner redelivers
        state.offsets.done(pending.offset)
        if pending.trace is not None:
            state.uncommitted_traces.append((pending.offset, pending.trace))
        del self._tasks[key]
        self._scheduler.finish(key)
        self._launch_ready()

    # -- committing --------------------------------------------------------------------

    async def _commit_periodically(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.sleep(self._commit_interval)
            self._commit(asynchronous=True)
            await self._report_lag()

    async def _report_lag(self) -> None:
        """Per partition: events on the topic not finished here yet (high watermark minus the
        first unfinished offset, or minus the group's committed offset before any fetch)."""
        consumer = self._consumer
        if consumer is None:
            return
        unknown = [
            TopicPartition(self._topic, p)
            for p, state in self._partitions.items()
            if state.offsets.committable() is None
            and state.committed is None
            and not state.asked_committed
        ]
        for tp in unknown:
            self._partitions[tp.partition].asked_committed = True
        if unknown:
            with contextlib.suppress(TimeoutError, KafkaException):
                async with asyncio.timeout(5):
                    found = await run_in_daemon_thread(
                        lambda: consumer.committed(unknown, timeout=5)
                    )
                for tp in found:
                    state = self._partitions.get(tp.partition)
                    if state is not None and state.committed is None and tp.offset >= 0:
                        state.committed = tp.offset
        lags: dict[int, int] = {}
        for partition, state in self._partitions.items():
            # Cached watermarks come with every fetch response: no extra request.
            low, high = consumer.get_watermark_offsets(
                TopicPartition(self._topic, partition), cached=True
            )
            unfinished = state.offsets.committable()
            if unfinished is None:
                unfinished = state.committed
            if unfinished is None:  # the group never committed here
                unfinished = low if self._starts_at_earliest else high
            if high >= 0 and unfinished >= 0:
                lags[partition] = max(0, high - unfinished)
        self._metrics.set_lag(self.name, lags)

    def _commit(self, *, asynchronous: bool, only: set[int] | None = None) -> None:
        consumer = self._consumer
        if consumer is None:
            return
        offsets = []
        for partition, state in self._partitions.items():
            if only is not None and partition not in only:
                continue
            target = state.offsets.committable()
            if target is not None and target != state.committed:
                offsets.append(TopicPartition(self._topic, partition, target))
                state.committed = target
        if not offsets:
            return
        try:
            if asynchronous:  # the outcome arrives in _on_commit
                consumer.commit(offsets=offsets, asynchronous=True)
            else:
                consumer.commit(offsets=offsets, asynchronous=False)
                self._trace_commits(offsets)
        except KafkaException as exc:
            self._on_commit(exc.args[0], offsets)
            return
        self.stats.commits += 1
        log.debug(
            "committed destination=%s offsets=%s",
            self.name,
            ",".join(f"{tp.partition}:{tp.offset}" for tp in offsets),
        )

    def _on_commit(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        if error is None:
            self._trace_commits(partitions)
            return
        if error.code() == KafkaError._NO_OFFSET:
            return
        log.warning("commit failed destination=%s error=%s", self.name, error.str())
        for tp in partitions:  # make the next periodic commit try again
            if (state := self._partitions.get(tp.partition)) is not None:
                state.committed = None

    def _trace_commits(self, committed: list[TopicPartition]) -> None:
        """Give every traced event that a commit now covers a commit span in its trace."""
        for tp in committed:
            state = self._partitions.get(tp.partition)
            if state is None or not state.uncommitted_traces:
                continue
            covered = [t for t in state.uncommitted_traces if t[0] < tp.offset]
            state.uncommitted_traces = [t for t in state.uncommitted_traces if t[0] >= tp.offset]
            for offset, context in covered:
                tracer.start_span(
                    f"commit {self._topic}",
                    context=trace.set_span_in_context(NonRecordingSpan(context)),
                    kind=trace.SpanKind.CLIENT,
                    attributes={
                        semconv.MESSAGING_SYSTEM: semconv.KAFKA,
                        semconv.MESSAGING_DESTINATION: self._topic,
                        semconv.MESSAGING_OPERATION_TYPE: "settle",
                        semconv.MESSAGING_OPERATION_NAME: "commit",
                        semconv.MESSAGING_PARTITION: str(tp.partition),
                        semconv.MESSAGING_KAFKA_OFFSET: offset,
                        semconv.MESSAGING_CONSUMER_GROUP: self.group_id,
                        "messaging.kafka.committed_offset": tp.offset,
                    },
                ).end()

    # -- rebalancing (called from consume(), on the loop thread) ------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._epoch += 1
            self._partitions[tp.partition] = _PartitionState(epoch=self._epoch)
        self._assignment_changed = True
        log.info(
            "partitions assigned destination=%s partitions=%s",
            self.name,
            ",".join(str(tp.partition) for tp in partitions) or "-",
        )

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        revoked = {tp.partition for tp in partitions}
        self._commit(asynchronous=False, only=revoked)
        self._abandon(revoked)
        log.info(
            "partitions revoked destination=%s partitions=%s",
            self.name,
            ",".join(str(p) for p in sorted(revoked)) or "-",
        )

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Another member may own them already: committing now could move its offsets back.
        lost = {tp.partition for tp in partitions}
        self._abandon(lost)
        log.warning(
            "partitions lost destination=%s partitions=%s",
            self.name,
            ",".join(str(p) for p in sorted(lost)) or "-",
        )

    def _abandon(self, partitions: set[int]) -> None:
        self._scheduler.drop(lambda key: key[0] in partitions)
        for key in list(self._scheduler.in_flight_keys()):
            if key[0] in partitions:
                self._scheduler.forget(key)
                task = self._tasks.pop(key, None)
                if task is not None:
                    task.cancel()
        for partition in partitions:
            self._partitions.pop(partition, None)
