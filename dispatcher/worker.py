"""One destination's consumer: the orchestrator that wires fetching, delivery and commits.

Each destination has its own Kafka consumer in its own group and runs as one asyncio task; a
process hosts many of them without a thread each. The consumer is polled without blocking
(``consume(timeout=0)``) from the event loop, so rebalance callbacks also run on the loop
thread; questions that wait for the broker (committed offsets, watermarks) go through
``lookups``, a client of their own, never the consumer's handle (only its cached watermarks
are read, which do not wait).
Each concern is a module of its own:

* ``fetching``: which partitions fetch (``flow``: backpressure, breaker, recovery) and what
  becomes of each record; ``placement``: where a partition without a usable offset starts;
* ``buffer``: the events held, one per user in flight (``ordering.KeyedScheduler``);
* ``deliveries``: lanes (tasks) taking event after event in flight, through ``pipeline``
  (deliver, dead-letter, park) behind the breaker (``breaker`` / ``gate``);
* ``rebalance``: assigned, revoked and lost partitions; ``recovery``: rebuilding a partition's
  parked users (``parking``) from the park topic; ``replayer``: replaying them;
* ``commits`` + ``partitions``: what may be committed; ``progress``: how far behind;
* ``chores``: bookkeeping I/O beside the deliveries, and stopping when it fails.

This class holds them together: the fetch loop, the periodic duties, the breaker's
transitions, and shutdown in order (stop fetching, drain in flight, commit, close).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaError, TopicPartition

from dispatcher.beats import due, next_beat
from dispatcher.breaker import State, Transition
from dispatcher.breaker_state import StatePublisher
from dispatcher.buffer import Buffer
from dispatcher.chores import Chores
from dispatcher.commits import Committer
from dispatcher.deadletter import DeadLetterWriter
from dispatcher.deliveries import Deliveries
from dispatcher.destinations import Destination
from dispatcher.fetching import Fetcher
from dispatcher.gate import DestinationGate
from dispatcher.lookups import ConsumerLookups, Lookups, LookupSlots
from dispatcher.manifest import DestinationSpec, Manifest
from dispatcher.metrics import DeliveryMetrics
from dispatcher.park_reader import ParkReader, ParkReaders
from dispatcher.park_store import ParkWriter
from dispatcher.parking import ParkBook, PoisonGuard
from dispatcher.partitions import Partitions
from dispatcher.pipeline import Pipeline, WorkerStats
from dispatcher.placement import Placement
from dispatcher.progress import Progress
from dispatcher.rebalance import Rebalance
from dispatcher.recovery import ParkRecovery
from dispatcher.replayer import Replayer
from eventlog.clients import consumer_config
from eventlog.kafka_logs import kafka_logger
from eventlog.producer import AsyncProducer
from eventlog.telemetry import tracing_enabled
from eventlog.threads import run_in_daemon_thread

__all__ = ["DestinationWorker", "WorkerStats"]

log = logging.getLogger(__name__)

IDLE_SLEEP_MAX = 0.1
"""Longest nap of an idle consumer: the most a lone event waits to be picked up. A finished
delivery that frees room wakes the loop at once. Naps end on a beat shared by every
destination of the process (``beats``)."""
TICK = 0.5
"""Seconds between the periodic duties: replays that are due, lag, commits (own interval);
on the beat too."""
LEAVE_TIMEOUT = 2.0
"""Seconds the breaker-state tombstone may take at shutdown (best effort)."""

_STATE_VALUE = {State.CLOSED: 0, State.HALF_OPEN: 1, State.OPEN: 2}


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
        lookups: Lookups | None = None,
        commit_interval: float = 1.0,
        drain_timeout: float = 10.0,
        metrics: DeliveryMetrics | None = None,
        consumer_overrides: dict[str, Any] | None = None,
        consumer_factory: Callable[[dict[str, Any]], Consumer] = Consumer,
        lookup_slots: LookupSlots | None = None,
        park_readers: ParkReaders | None = None,
        reader_factory: Callable[[], ParkReader] | None = None,
    ) -> None:
        self.name = spec.name
        self.group_id = manifest.group_id(spec)
        self.stats = WorkerStats()
        self._topic = manifest.topic
        if commit_interval <= 0:
            raise ValueError(f"commit_interval must be positive, got {commit_interval!r}")
        self._commit_interval = commit_interval
        self._drain_timeout = drain_timeout
        self._metrics = metrics = metrics or DeliveryMetrics()
        self._config = consumer_config(
            bootstrap_servers,
            self.group_id,
            start_from=manifest.start_from,
            security=manifest.security,
            logger=kafka_logger("consumer", destination=spec.name),
            on_commit=self._on_commit,
            **(consumer_overrides or {}),
        )
        # Partitions are placed here (``placement``): a committed offset that fell out of
        # retention must be said out loud, and only a brand-new group honours start_from.
        self._config["auto.offset.reset"] = "error"
        self._consumer_factory = consumer_factory
        self._lookups = lookups or ConsumerLookups(
            bootstrap_servers, self.group_id, security=manifest.security,
            logger=kafka_logger("lookups", destination=spec.name), slots=lookup_slots,
        )  # fmt: skip
        # The process's shared park consumer; a worker on its own gets one of its own.
        readers = park_readers or ParkReaders(
            bootstrap_servers, logger=kafka_logger("park-reader", destination=spec.name),
            **manifest.security,
        )  # fmt: skip
        self._destination = destination
        self._wake = asyncio.Event()
        self._publisher = StatePublisher(producer, f"{manifest.topic}.dispatcher-state", self.name)
        self._chores = chores = Chores(self.name, metrics)
        self._partitions = partitions = Partitions()
        self._buffer = buffer = Buffer(spec.concurrency)
        self._book = book = ParkBook(spec.parking)
        self._gate = gate = DestinationGate(spec.breaker, on_transition=self._on_breaker)
        self._committer = Committer(
            name=self.name, topic=self._topic, group_id=self.group_id, partitions=partitions,
            checkpoint=book.checkpoint,
        )  # fmt: skip
        self._pipeline = pipeline = Pipeline(
            spec=spec, topic=self._topic, destination=destination, gate=gate, book=book,
            guard=PoisonGuard(spec.parking, spec.breaker.window), park=park,
            dead_letters=dead_letters, metrics=metrics, stats=self.stats,
            retention_ms=retention_ms, traced=tracing_enabled(),
        )  # fmt: skip
        self._replayer = replayer = Replayer(
            name=self.name, book=book, park=park, partitions=partitions, push=buffer.push,
            spawn=chores.spawn,
        )  # fmt: skip
        self._recovery = recovery = ParkRecovery(
            name=self.name, topic=self._topic, group_id=self.group_id, park_topic=park.topic,
            park_made=lambda: park.made,
            lookups=self._lookups, partitions=partitions, book=book, buffer=buffer,
            replayer=replayer,
            reader_factory=reader_factory or (lambda: readers.reader(park.topic)),
        )  # fmt: skip
        placement = Placement(
            name=self.name, topic=self._topic, group_id=self.group_id,
            start_from=manifest.start_from, lookups=self._lookups, partitions=partitions,
            metrics=metrics,
        )  # fmt: skip
        self._fetcher = fetcher = Fetcher(
            name=self.name, topic=self._topic, spec=spec, partitions=partitions, buffer=buffer,
            gate=gate, pipeline=pipeline, placement=placement, chores=chores,
        )  # fmt: skip
        self._deliveries = deliveries = Deliveries(
            name=self.name, topic=self._topic, group_id=self.group_id, pipeline=pipeline,
            partitions=partitions, buffer=buffer, book=book, replayer=replayer, chores=chores,
            wake=self._wake, worth_a_turn=fetcher.worth_a_turn, traced=tracing_enabled(),
        )  # fmt: skip
        self._rebalance = Rebalance(
            name=self.name, committer=self._committer, partitions=partitions, buffer=buffer,
            deliveries=deliveries, fetcher=fetcher, recovery=recovery, book=book,
            replayer=replayer, chores=chores,
        )  # fmt: skip
        self._progress = Progress(
            name=self.name, topic=self._topic, group_id=self.group_id, partitions=partitions,
            lookups=self._lookups, metrics=metrics,
            starts_at_earliest=manifest.start_from == "earliest", retention_ms=retention_ms,
        )  # fmt: skip
        metrics.watch_in_flight(self.name, lambda: buffer.in_flight)
        metrics.watch("breaker_state", self.name, lambda: _STATE_VALUE[self.breaker_state])
        metrics.watch("parked_users", self.name, lambda: book.user_count)
        metrics.watch("parked_events", self.name, lambda: book.event_count)

    @property
    def breaker_state(self) -> State:
        return self._gate.breaker.state

    @property
    def book(self) -> ParkBook:
        return self._book

    @property
    def buffered(self) -> int:
        """Events held: queued, in flight, or waiting for their partition's recovery."""
        return self._buffer.count

    @property
    def buffered_bytes(self) -> int:
        """What the held events weigh."""
        return self._buffer.bytes

    @property
    def stopped_by(self) -> str | None:
        """Why the destination stopped by itself (Kafka refused a dead letter or park record,
        or its bookkeeping failed)."""
        return self._chores.stopped_by

    # -- lifecycle ---------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> WorkerStats:
        """Consume and deliver until ``stop`` is set; then shut down in order."""
        consumer = self._consumer_factory(self._config)
        self._recovery.open()
        rebalance = self._rebalance
        consumer.subscribe(
            [self._topic],
            on_assign=rebalance.on_assign,
            on_revoke=rebalance.on_revoke,
            on_lost=rebalance.on_lost,
        )
        log.info("consumer started destination=%s group=%s", self.name, self.group_id)
        started = Transition(State.CLOSED, "started", time.time(), None)
        self._chores.spawn(self._publisher.publish(started))  # status shows it from the start
        duties = asyncio.create_task(self._periodically(consumer, stop))
        duties.add_done_callback(self._duties_ended)
        try:
            await self._fetch_until(consumer, stop)
        finally:
            await self._shutdown(consumer, duties)
        return self.stats

    async def _fetch_until(self, consumer: Consumer, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        idle = 0.001
        while not (stop.is_set() or self._chores.halt.is_set()):
            self._fetcher.apply_flow(consumer)
            fetched = self._fetcher.fetch(consumer)
            self._recovery.poll()
            self._deliveries.launch_ready()
            if fetched:
                idle = 0.001
                await asyncio.sleep(0)
                continue
            # Nothing fetched: yield to deliveries, napping a little longer each time (many
            # idle destinations poll this way, waking together on the beat), woken early when
            # room frees up.
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(next_beat(loop.time(), idle)):
                    await self._wake.wait()
            idle = min(idle * 2, IDLE_SLEEP_MAX)

    async def _shutdown(self, consumer: Consumer, duties: asyncio.Task[None]) -> None:
        self._deliveries.stopping = True  # no new deliveries; in-flight ones may finish
        self._rebalance.closing = True  # callbacks from here on come from close()
        duties.cancel()
        running = self._deliveries.running()
        # Deliveries held at an open breaker cannot finish by waiting longer.
        drain = self._drain_timeout if self._gate.closed else 0.0
        if running:
            log.info(
                "draining destination=%s in_flight=%d timeout=%.1fs",
                self.name, len(running), drain,
            )  # fmt: skip
            _, late = await asyncio.wait(running, timeout=drain) if drain else (set(), running)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        # What follows waits on Kafka and shares one budget: a broker that is gone must not
        # hold the process (a supervisor kills it soon). What is not committed is delivered
        # again after a restart.
        deadline = time.monotonic() + self._drain_timeout
        self._chores.interrupt()  # lookups for partitions about to be let go
        await self._chores.settle(within=deadline - time.monotonic())
        commit = self._committer.commit
        await self._bounded(
            lambda: commit(consumer, asynchronous=False), "final commit", deadline, floor=0.5
        )
        # Forget everything here, on the loop thread: close() runs the revoke callback on
        # the closing thread, which then finds nothing left to touch.
        self._rebalance.abandon(self._partitions.numbers())
        await self._bounded(consumer.close, "consumer close", deadline, floor=0.5)
        await self._bounded(self._recovery.close, "park reader close", deadline)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.1, deadline - time.monotonic())):
                await self._lookups.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(min(LEAVE_TIMEOUT, max(0.0, deadline - time.monotonic()))):
                await self._publisher.leave()
        await self._destination.close()
        self.stats.commits = self._committer.commits
        log.info(
            "closed destination=%s delivered=%d dead_lettered=%d parked=%d attempts=%d "
            "commits=%d",
            self.name, self.stats.delivered, self.stats.dead_lettered, self.stats.parked,
            self.stats.attempts, self.stats.commits,
        )  # fmt: skip

    async def _bounded(
        self, call: Callable[[], object], what: str, deadline: float, *, floor: float = 0.1
    ) -> None:
        """``call()`` off the loop until ``deadline``, or ``floor`` seconds if that is later."""
        budget = max(floor, deadline - time.monotonic())
        try:
            async with asyncio.timeout(budget):
                await run_in_daemon_thread(call, name=f"{what}:{self.name}")
        except TimeoutError:
            log.warning(
                "kafka did not answer in time destination=%s step=%r timeout=%.1fs; "
                "uncommitted events are redelivered after restart",
                self.name, what, budget,
            )  # fmt: skip

    async def _periodically(self, consumer: Consumer, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        period = min(TICK, self._commit_interval)
        last_commit = loop.time()
        while not stop.is_set():
            now = loop.time()
            beat = next_beat(now, period)
            await asyncio.sleep(beat - now)
            self._replayer.tick(time.time())
            if not self._gate.closed and not self._buffer.in_flight:
                self._replayer.offer_probe()
            if due(beat, last_commit, self._commit_interval):
                last_commit = beat
                self._committer.commit(consumer, asynchronous=True)
                await self._progress.report(consumer)

    def _duties_ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and (error := task.exception()) is not None:
            # Without commits and replays the destination would only look alive: stop it.
            log.error("periodic duties failed destination=%s", self.name, exc_info=error)
            self._chores.stop(f"{type(error).__name__}: {error}")

    # -- callbacks -----------------------------------------------------------------------

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
        self._chores.spawn(self._publisher.publish(transition))
        self._wake.set()

    def _on_commit(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        self._committer.on_commit(error, partitions)
