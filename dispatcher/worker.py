"""One destination's consumer: the orchestrator that wires fetching, delivery and commits.

Each destination has its own Kafka consumer in its own group and runs as one asyncio task; a
process hosts many of them without a thread each. The consumer is polled without blocking
(``consume(timeout=0)``) from the event loop, so rebalance callbacks also run on the loop
thread. The decisions live elsewhere, each in a module of its own:

* what may be delivered now: ``ordering.KeyedScheduler`` (one event per user in flight);
* whether the destination is up: ``breaker`` / ``gate``;
* which partitions fetch: ``flow`` (backpressure, breaker, recovery);
* one event's way to an end: ``pipeline`` (deliver, dead-letter, park);
* parked users: ``parking`` (the book), ``replayer`` (replays), ``park_store`` (Kafka);
* what may be committed: ``partitions`` + ``commits``; how far behind: ``progress``.

This class holds them together: the fetch loop, the rebalance callbacks, and shutdown in order
(stop fetching, drain in flight, commit, close).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from opentelemetry import trace

from dispatcher import park_records
from dispatcher.breaker import State, Transition
from dispatcher.breaker_state import StatePublisher
from dispatcher.commits import Committer, parse_checkpoint
from dispatcher.deadletter import DeadLetterWriter
from dispatcher.destinations import Destination
from dispatcher.durable import StoreRefused
from dispatcher.flow import Backpressure, paused_partitions
from dispatcher.gate import DestinationGate
from dispatcher.jobs import Job, job_from_message
from dispatcher.manifest import DestinationSpec, Manifest
from dispatcher.metrics import DeliveryMetrics
from dispatcher.ordering import KeyedScheduler
from dispatcher.park_store import ParkReader, ParkWriter, decode_message
from dispatcher.parking import ParkBook, PoisonGuard, recover
from dispatcher.partitions import Partitions
from dispatcher.pipeline import Pipeline, Verdict, WorkerStats
from dispatcher.progress import Progress
from dispatcher.replayer import Replayer
from eventlog import semconv
from eventlog.clients import consumer_config
from eventlog.kafka_logs import kafka_logger
from eventlog.producer import AsyncProducer
from eventlog.telemetry import extract_context, tracing_enabled
from eventlog.threads import run_in_daemon_thread

__all__ = ["DestinationWorker", "WorkerStats"]

log = logging.getLogger(__name__)
tracer = trace.get_tracer("dispatcher.worker")

FETCH_BATCH = 500
IDLE_SLEEP_MAX = 0.1
"""Longest nap of an idle consumer: the most a lone event waits to be picked up. A finished
delivery that frees room wakes the loop at once."""
TICK = 0.5
"""Seconds between the periodic duties: replays that are due, lag, commits (own interval)."""

_Key = tuple[int, str | None, bool]
"""Ordering key: (partition, user_id, replay); user ``None`` for undecodable records. Live and
replayed events of one user have separate keys: a parked user's live events only go to the
park, so they never race its replay to the destination."""

_STATE_VALUE = {State.CLOSED: 0, State.HALF_OPEN: 1, State.OPEN: 2}
_NO_SUCH_TOPIC = (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_PARTITION)
_T = TypeVar("_T")


class DestinationWorker:
    """Runs one destination until ``stop`` is set, then drains, commits and closes."""

    def __init__(
        self,
        *,
        manifest: Manifest,
        spec: DestinationSpec,
        destination: Destination,
        dead_letters: DeadLetterWriter,
        park: ParkWriter,
        bootstrap_servers: str,
        retention_ms: int | None = None,
        producer: AsyncProducer | None = None,
        commit_interval: float = 1.0,
        drain_timeout: float = 10.0,
        metrics: DeliveryMetrics | None = None,
        consumer_overrides: dict[str, Any] | None = None,
        consumer_factory: Callable[[dict[str, Any]], Consumer] = Consumer,
        reader_factory: Callable[[], ParkReader] | None = None,
    ) -> None:
        self.name = spec.name
        self.group_id = manifest.group_id(spec)
        self.stats = WorkerStats()
        self.stopped_by: str | None = None
        """Why the destination stopped by itself (Kafka refused a dead letter or park record)."""
        self._spec = spec
        self._topic = manifest.topic
        self._commit_interval = commit_interval
        self._drain_timeout = drain_timeout
        self._metrics = metrics or DeliveryMetrics()
        self._traced = tracing_enabled()
        self._start_from = manifest.start_from
        self._config = consumer_config(
            bootstrap_servers,
            self.group_id,
            start_from=manifest.start_from,
            security=manifest.security,
            logger=kafka_logger("consumer", destination=spec.name),
            on_commit=self._on_commit,
            **(consumer_overrides or {}),
        )
        # We position partitions ourselves (see _position): a committed offset that fell out
        # of retention must be said out loud, and only a brand-new group honours start_from.
        self._config["auto.offset.reset"] = "error"
        self._consumer_factory = consumer_factory
        self._reader_topic = park.topic
        reader_logger = kafka_logger("park-reader", destination=spec.name)
        self._reader_factory = reader_factory or (
            lambda: ParkReader(
                bootstrap_servers, park.topic, logger=reader_logger, **manifest.security
            )
        )
        self._scheduler: KeyedScheduler[Job, _Key] = KeyedScheduler(spec.concurrency)
        self._partitions = Partitions()
        self._tasks: dict[_Key, tuple[asyncio.Task[None], Job]] = {}
        self._chores: set[asyncio.Task[Any]] = set()
        self._buffered_bytes = 0
        self._held = 0
        self._backpressure = Backpressure(spec.max_buffered, spec.max_buffered_bytes)
        self._paused: set[int] = set()
        self._stopping = False
        self._halt = asyncio.Event()
        self._wake = asyncio.Event()
        self._consumer: Consumer | None = None
        self._reader: ParkReader | None = None
        self._publisher = StatePublisher(producer, f"{manifest.topic}.dispatcher-state", self.name)
        self._book = ParkBook(spec.parking)
        self._gate = DestinationGate(spec.breaker, on_transition=self._on_breaker)
        self._committer = Committer(
            name=self.name, topic=self._topic, group_id=self.group_id,
            partitions=self._partitions, checkpoint=self._book.checkpoint,
        )  # fmt: skip
        self._pipeline = Pipeline(
            spec=spec, topic=self._topic, destination=destination, gate=self._gate,
            book=self._book, guard=PoisonGuard(spec.parking, spec.breaker.window), park=park,
            dead_letters=dead_letters, metrics=self._metrics, stats=self.stats,
            retention_ms=retention_ms, traced=self._traced,
        )  # fmt: skip
        self._destination = destination
        self._replayer = Replayer(
            name=self.name, book=self._book, park=park, partitions=self._partitions,
            push=self._push, spawn=self._spawn,
        )  # fmt: skip
        self._progress = Progress(
            name=self.name, topic=self._topic, partitions=self._partitions,
            metrics=self._metrics, starts_at_earliest=manifest.start_from == "earliest",
            retention_ms=retention_ms,
        )  # fmt: skip
        self._metrics.watch_in_flight(self.name, lambda: self._scheduler.in_flight)
        self._metrics.watch("breaker_state", self.name, lambda: _STATE_VALUE[self.breaker_state])
        self._metrics.watch("parked_users", self.name, lambda: self._book.user_count)
        self._metrics.watch("parked_events", self.name, lambda: self._book.event_count)

    @property
    def breaker_state(self) -> State:
        return self._gate.breaker.state

    @property
    def book(self) -> ParkBook:
        return self._book

    @property
    def buffered(self) -> int:
        """Events held: queued, in flight, or waiting for their partition's recovery."""
        return self._scheduler.buffered + self._held

    # -- lifecycle ---------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> WorkerStats:
        """Consume and deliver until ``stop`` is set; then shut down in order."""
        consumer = self._consumer_factory(self._config)
        self._consumer = consumer
        self._reader = self._reader_factory()
        consumer.subscribe(
            [self._topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        log.info("consumer started destination=%s group=%s", self.name, self.group_id)
        started = Transition(State.CLOSED, "started", time.time(), None)
        self._spawn(self._publisher.publish(started))  # so status shows it from the start
        duties = asyncio.create_task(self._periodically(stop))
        duties.add_done_callback(self._duties_ended)
        try:
            await self._fetch_until(stop)
        finally:
            await self._shutdown(consumer, duties)
        return self.stats

    async def _fetch_until(self, stop: asyncio.Event) -> None:
        consumer = self._consumer
        assert consumer is not None
        idle = 0.001
        while not (stop.is_set() or self._halt.is_set()):
            self._apply_flow(consumer)
            room = self._spec.max_buffered - self.buffered
            messages = consumer.consume(num_messages=max(1, min(FETCH_BATCH, room)), timeout=0)
            for message in messages:
                self._accept(message)
            self._poll_park()
            self._launch_ready()
            if messages:
                idle = 0.001
                await asyncio.sleep(0)
                continue
            # Nothing fetched: yield to deliveries, napping a little longer each time (many
            # idle destinations poll this way), woken early when room frees up.
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(idle):
                    await self._wake.wait()
            idle = min(idle * 2, IDLE_SLEEP_MAX)

    async def _shutdown(self, consumer: Consumer, duties: asyncio.Task[None]) -> None:
        self._stopping = True  # no new deliveries; in-flight ones may finish
        duties.cancel()
        running = [task for task, _ in self._tasks.values() if not task.done()]
        drain = self._drain_timeout
        if not self._gate.closed:
            drain = 0.0  # they wait at the open breaker: none can finish by waiting longer
        if running:
            log.info(
                "draining destination=%s in_flight=%d timeout=%.1fs",
                self.name, len(running), drain,
            )  # fmt: skip
            _, late = await asyncio.wait(running, timeout=drain) if drain else (set(), running)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        if self._chores:
            await asyncio.wait(list(self._chores), timeout=self._drain_timeout)
        # Both calls wait on the broker; if it is gone they must not hold the process. What
        # is not committed is redelivered after a restart.
        await self._bounded(
            lambda: self._committer.commit(consumer, asynchronous=False), "final commit"
        )
        # Forget everything here, on the loop thread: close() runs the revoke callback on
        # the closing thread, which then finds nothing left to touch.
        self._abandon(self._partitions.numbers())
        await self._bounded(consumer.close, "consumer close")
        if self._reader is not None:
            await self._bounded(self._reader.close, "park reader close")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2):
                await self._publisher.leave()
        await self._destination.close()
        self.stats.commits = self._committer.commits
        log.info(
            "closed destination=%s delivered=%d dead_lettered=%d parked=%d attempts=%d "
            "commits=%d",
            self.name, self.stats.delivered, self.stats.dead_lettered, self.stats.parked,
            self.stats.attempts, self.stats.commits,
        )  # fmt: skip

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

    async def _periodically(self, stop: asyncio.Event) -> None:
        consumer = self._consumer
        assert consumer is not None
        last_commit = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(min(TICK, self._commit_interval))
            self._replayer.tick(time.time())
            if not self._gate.closed and not self._scheduler.in_flight:
                self._replayer.offer_probe()
            if time.monotonic() - last_commit >= self._commit_interval:
                last_commit = time.monotonic()
                self._committer.commit(consumer, asynchronous=True)
                await self._progress.report(consumer)

    def _duties_ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and (error := task.exception()) is not None:
            # Without commits and replays the destination would only look alive: stop it.
            log.error("periodic duties failed destination=%s", self.name, exc_info=error)
            self._stop_destination(f"{type(error).__name__}: {error}")

    def _spawn(self, work: object) -> None:
        """Run a coroutine of bookkeeping I/O (markers, results) beside the deliveries."""
        assert asyncio.iscoroutine(work)
        task = asyncio.create_task(self._guarded(work))
        self._chores.add(task)
        task.add_done_callback(self._chores.discard)

    async def _guarded(self, work: Coroutine[Any, Any, object]) -> None:
        try:
            await work
        except StoreRefused as exc:
            self._stop_destination(str(exc))
        except Exception as exc:
            # Bookkeeping I/O failing unexpectedly leaves some user or partition unable to
            # move; stopping the destination says so, rather than letting it stall quietly.
            log.error("bookkeeping failed destination=%s", self.name, exc_info=exc)
            self._stop_destination(f"{type(exc).__name__}: {exc}")

    def _stop_destination(self, why: str) -> None:
        if self.stopped_by is None:
            self.stopped_by = why
            log.error(
                "destination stopped destination=%s error=%r; its unfinished events stay "
                "uncommitted in Kafka: fix the topic, then restart",
                self.name, why,
            )  # fmt: skip
            self._metrics.stopped(self.name)
        self._halt.set()

    # -- fetching ----------------------------------------------------------------------

    def _apply_flow(self, consumer: Consumer) -> None:
        full = self._backpressure.update(self.buffered, self._buffered_bytes)
        breaker_holds = not self._gate.closed and not self._pipeline.evacuated
        buffered_in: set[int] = set()
        if breaker_holds:  # O(users), so only while the breaker holds fetching back
            buffered_in = {key[0] for key in self._scheduler.in_flight_keys()}
            buffered_in.update(key[0] for key in self._scheduler.queued_keys())
        wanted = paused_partitions(
            assigned=self._partitions.numbers(), full=full, breaker_holds=breaker_holds,
            buffered_in=buffered_in, recovering=self._partitions.recovering(),
        )  # fmt: skip
        if wanted == self._paused:
            return
        pause, resume = wanted - self._paused, self._paused - wanted
        if pause:
            consumer.pause([TopicPartition(self._topic, p) for p in pause])
        if resume:
            consumer.resume([TopicPartition(self._topic, p) for p in resume])
        self._paused = wanted

    def _accept(self, message: Message) -> None:
        error = message.error()
        if error is not None:
            self._on_consumer_error(error, message)
            return
        partition = message.partition()
        assert partition is not None
        state = self._partitions.get(partition)
        if state is None:  # fetched just before a revocation took the partition away
            return
        job = job_from_message(message, state.epoch)
        state.add(job)
        if state.recovering:
            state.held.append(job)
            self._held += 1
            self._buffered_bytes += job.size
        else:
            self._push(job)

    def _push(self, job: Job) -> None:
        self._scheduler.push((job.partition, job.user, job.replay), job)
        self._buffered_bytes += job.size

    def _on_consumer_error(self, error: KafkaError, message: Message) -> None:
        if error.fatal():
            raise KafkaException(error)
        if error.code() == KafkaError._AUTO_OFFSET_RESET and message.partition() is not None:
            partition = message.partition()
            assert partition is not None
            state = self._partitions.get(partition)
            if state is not None:
                self._spawn(self._position(partition, state.epoch))
            return
        log.warning("consumer error destination=%s error=%s", self.name, error.str())

    async def _position(self, partition: int, epoch: int) -> None:
        """Place a partition that has no usable committed offset: a brand-new group starts
        where ``start_from`` says; a committed offset that fell out of retention resumes at
        the earliest retained event, with an ERROR saying how many were lost."""
        consumer = self._consumer
        assert consumer is not None
        tp = TopicPartition(self._topic, partition)

        def lookup() -> tuple[TopicPartition, int]:
            committed = consumer.committed([tp], timeout=10)[0]
            return committed, consumer.get_watermark_offsets(tp, timeout=10)[0]

        found = await self._ask_kafka(partition, epoch, "start offset", lookup)
        if found is None:
            return
        committed, low = found
        state = self._partitions.current(partition, epoch)
        if state is None:
            return
        if committed.offset < 0 and state.offsets.committable() is None:
            start = OFFSET_BEGINNING if self._start_from == "earliest" else OFFSET_END
            log.debug(  # once per partition: the assignment line already said it
                "new consumer group starts destination=%s partition=%d start_from=%s",
                self.name, partition, self._start_from,
            )  # fmt: skip
        else:
            position = max(committed.offset, state.offsets.committable() or 0)
            lost = max(0, low - position)
            log.error(
                "events lost to retention destination=%s partition=%d committed=%d "
                "earliest_retained=%d lost=%d; resuming at the earliest retained event",
                self.name, partition, position, low, lost,
            )  # fmt: skip
            self._metrics.lost_to_retention(self.name, lost)
            start = OFFSET_BEGINNING
        consumer.incremental_unassign([tp])
        consumer.incremental_assign([TopicPartition(self._topic, partition, start)])
        # Whether librdkafka keeps a pause across the re-assignment is its business: pause it
        # explicitly, so the next turn of the fetch loop resumes it exactly when flow says.
        consumer.pause([tp])
        self._paused.add(partition)

    async def _ask_kafka(
        self, partition: int, epoch: int, what: str, call: Callable[[], _T]
    ) -> _T | None:
        """``call()`` off the loop, asked again every second while Kafka cannot answer (a
        broker restarting, a leader moving) and the partition is still this assignment's;
        ``None`` once it is not. A missing topic is no passing trouble: that is raised."""
        while self._partitions.current(partition, epoch) is not None:
            try:
                return await run_in_daemon_thread(call)
            except (KafkaException, TimeoutError) as exc:
                if isinstance(exc, KafkaException) and exc.args[0].code() in _NO_SUCH_TOPIC:
                    raise
                log.warning(
                    "%s not known yet destination=%s partition=%d error=%s",
                    what, self.name, partition, exc,
                )  # fmt: skip
                await asyncio.sleep(1)
        return None

    # -- the park: recovery and requests ------------------------------------------------

    async def _recover(self, partition: int, epoch: int) -> None:
        """Read the partition's park from its checkpoint to its end before any live event of
        it is delivered (the records arrive through ``_poll_park``)."""
        consumer, reader = self._consumer, self._reader
        assert consumer is not None and reader is not None
        tp = TopicPartition(self._topic, partition)

        def lookup() -> tuple[list[TopicPartition], int, int]:
            return consumer.committed([tp], timeout=10), *reader.watermarks(partition)

        try:
            found = await self._ask_kafka(partition, epoch, "park", lookup)
        except KafkaException as exc:
            if exc.args[0].code() not in _NO_SUCH_TOPIC:
                raise
            # Never created, so nothing was ever parked in it (the app creates it).
            log.warning(
                "no park topic destination=%s topic=%s; nothing to recover",
                self.name, self._reader_topic,
            )  # fmt: skip
            if self._partitions.current(partition, epoch) is not None:
                self._recovered(partition)
            return
        if found is None:
            return
        committed, low, high = found
        state = self._partitions.current(partition, epoch)
        if state is None:
            return
        checkpoint = parse_checkpoint(committed[0].metadata)
        start = max(low, checkpoint if checkpoint is not None else low)
        state.recover_until = high
        reader.assign(partition, min(start, high))
        if start >= high:
            self._book.note_end(partition, high)
            self._recovered(partition)

    def _poll_park(self) -> None:
        reader = self._reader
        if reader is None:
            return
        for message in reader.poll():
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF and message.partition() is not None:
                    state = self._partitions.get(message.partition() or 0)
                    if state is not None and state.recovering and state.recover_until >= 0:
                        self._recovered(message.partition() or 0)
                continue
            record = decode_message(message)
            if record is None:
                continue
            state = self._partitions.get(record.partition)
            if state is None:
                continue
            if state.recovering:
                if isinstance(record.read, park_records.ReadReplayRequest):
                    state.requests[record.read.request] = record.read.user
                elif isinstance(record.read, park_records.ReadReplayDone):
                    state.requests.pop(record.read.request, None)
                recover(self._book, record.partition, record.offset, record.read, now=time.time())
                if record.offset >= state.recover_until - 1:
                    self._recovered(record.partition)
            elif isinstance(record.read, park_records.ReadReplayRequest):
                self._replayer.request(
                    record.read.request, record.partition, record.read.user, time.time()
                )

    def _recovered(self, partition: int) -> None:
        state = self._partitions.get(partition)
        if state is None or not state.recovering:
            return
        state.recovering = False
        parked = sum(1 for user in self._book.users() if user.partition == partition)
        if parked:
            log.info(
                "parked users recovered destination=%s partition=%d users=%d",
                self.name, partition, parked,
            )  # fmt: skip
        held, state.held = state.held, []
        self._held -= len(held)
        for job in held:
            self._buffered_bytes -= job.size
            self._push(job)
        now = time.time()
        for request, user in state.requests.items():
            self._replayer.request(request, partition, user, now)
        state.requests.clear()

    # -- delivering --------------------------------------------------------------------

    def _launch_ready(self) -> None:
        if self._stopping:
            return
        while (ready := self._scheduler.pop_ready()) is not None:
            key, job = ready
            self._tasks[key] = (asyncio.create_task(self._handle(key, job)), job)

    async def _handle(self, key: _Key, job: Job) -> None:
        try:
            verdict = await (
                self._process_traced(job) if self._traced else self._pipeline.handle(job)
            )
        except StoreRefused as exc:
            self._stop_destination(str(exc))
            return  # left unfinished: uncommitted, delivered after the topic is fixed
        except Exception as exc:
            recovered = await self._internal_error(job, exc)
            if recovered is None:
                return
            verdict = recovered
        self._finish(key, job, verdict)

    async def _internal_error(self, job: Job, exc: Exception) -> Verdict | None:
        """A bug on the delivery path must not freeze the partition: the event becomes a dead
        letter naming the error, and its user's next event goes on."""
        log.error(
            "delivery path failed destination=%s partition=%d offset=%d; dead-lettering it",
            self.name, job.partition, job.offset, exc_info=exc,
        )  # fmt: skip
        try:
            await self._pipeline.dead_letter(
                job, f"internal error: {type(exc).__name__}: {exc}", attempts=0
            )
        except StoreRefused as refused:
            self._stop_destination(str(refused))
            return None
        return Verdict.REPLAYED if job.replay else Verdict.FINISHED

    async def _process_traced(self, job: Job) -> Verdict:
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
            semconv.MESSAGING_CONSUMER_GROUP: self.group_id,
            semconv.DELIVERY_DESTINATION: self.name,
        }
        if job.event is not None:
            attributes[semconv.MESSAGING_KAFKA_KEY] = job.event.user_id
            attributes[semconv.MESSAGING_MESSAGE_ID] = job.event.id
        return attributes

    def _finish(self, key: _Key, job: Job, verdict: Verdict) -> None:
        state = self._partitions.current(job.partition, job.epoch)
        if state is None:
            return  # the partition was revoked meanwhile; its new owner redelivers
        self._buffered_bytes -= job.size
        del self._tasks[key]
        self._scheduler.finish(key)
        if verdict is Verdict.FINISHED:
            state.done(job.offset)
            if job.trace is not None:
                state.uncommitted_traces.append((job.offset, job.trace))
            if job.user is not None and self._book.is_parked(job.partition, job.user):
                self._replayer.on_parked((job.partition, job.user))
        elif verdict is Verdict.REPLAYED:
            self._spawn(self._replayer.replayed(job))
        else:
            self._spawn(self._replayer.failed(job, self._pipeline.last_error))
        self._wake.set()
        self._launch_ready()

    # -- the breaker ---------------------------------------------------------------------

    def _on_breaker(self, transition: Transition) -> None:
        state = transition.state
        self._metrics.transition(self.name, state.value)
        if state is State.OPEN:
            wait = (transition.next_probe_at or transition.at) - transition.at
            log.warning(
                "breaker opened destination=%s reason=%r next_probe_in=%.3gs",
                self.name, transition.reason, wait,
            )  # fmt: skip
        elif state is State.HALF_OPEN:
            log.info("breaker half-open destination=%s: probing", self.name)
        else:
            log.info("breaker closed destination=%s reason=%r", self.name, transition.reason)
            self._pipeline.evacuated = False
            self._replayer.retry_all(time.time())
        self._spawn(self._publisher.publish(transition))
        self._wake.set()

    # -- committing ----------------------------------------------------------------------

    def _on_commit(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        self._committer.on_commit(error, partitions)

    # -- rebalancing (called from consume(), on the loop thread) ------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self._stopping:
            return  # close() runs callbacks on its own thread; everything was settled before
        for tp in partitions:
            state = self._partitions.assign(tp.partition)
            self._spawn(self._recover(tp.partition, state.epoch))
        log.info(
            "partitions assigned destination=%s partitions=%s",
            self.name, ",".join(str(tp.partition) for tp in partitions) or "-",
        )  # fmt: skip

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self._stopping:
            return  # committed and abandoned already, on the loop thread
        revoked = {tp.partition for tp in partitions}
        self._committer.commit(consumer, asynchronous=False, only=revoked)
        self._abandon(revoked)
        log.info(
            "partitions revoked destination=%s partitions=%s",
            self.name, ",".join(str(p) for p in sorted(revoked)) or "-",
        )  # fmt: skip

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self._stopping:
            return
        # Another member may own them already: committing now could move its offsets back.
        lost = {tp.partition for tp in partitions}
        self._abandon(lost)
        log.warning(
            "partitions lost destination=%s partitions=%s",
            self.name, ",".join(str(p) for p in sorted(lost)) or "-",
        )  # fmt: skip

    def _abandon(self, partitions: set[int]) -> None:
        for job in self._scheduler.drop(lambda key: key[0] in partitions):
            self._buffered_bytes -= job.size
        for key in self._scheduler.in_flight_keys():
            if key[0] in partitions:
                self._scheduler.forget(key)
                task, job = self._tasks.pop(key)
                self._buffered_bytes -= job.size
                task.cancel()
        for partition in partitions:
            state = self._partitions.get(partition)
            if state is not None:
                self._held -= len(state.held)
                self._buffered_bytes -= sum(job.size for job in state.held)
            self._partitions.drop(partition)
            self._book.drop_partition(partition)
            self._replayer.drop(partition)
            self._paused.discard(partition)
            if self._reader is not None:
                self._reader.unassign(partition)
