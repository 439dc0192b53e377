"""A ``DestinationWorker`` running against the in-memory Kafka of ``fake_kafka``, and a
destination whose answers a test controls per user."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

from dispatcher.breaker import BreakerPolicy
from dispatcher.deadletter import DeadLetterWriter
from dispatcher.destinations.mock import MockOptions
from dispatcher.durations import Duration
from dispatcher.exceptions import PermanentDeliveryError, RetryableDeliveryError
from dispatcher.manifest import DestinationSpec, Manifest
from dispatcher.metrics import DeliveryMetrics
from dispatcher.park_reader import ParkReader
from dispatcher.park_records import park_topic
from dispatcher.park_store import ParkWriter
from dispatcher.parking import ParkingPolicy
from dispatcher.retry import RetryPolicy
from dispatcher.worker import DestinationWorker
from eventlog.producer import AsyncProducer
from eventlog.record import Event
from tests.dispatcher.fake_kafka import (
    FakeCluster,
    FakeConsumer,
    FakeLookups,
    FakeProducer,
    FakeReader,
)

__all__ = ["Harness", "Receiver", "spec", "wait_until"]

TOPIC = "events"
DEAD_LETTERS = "events.dead-letter"


async def wait_until(condition: Callable[[], bool], within: float = 10.0, what: str = "") -> None:
    """Yield to the loop until ``condition()`` holds; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        await asyncio.sleep(0.005)


class Receiver:
    """A destination that records what it took, and fails as the test says."""

    def __init__(self) -> None:
        self.received: list[Event] = []
        self.attempts: list[Event] = []
        self.down = False
        self.failing: set[str] = set()
        self.refusing: set[str] = set()
        self.hold: asyncio.Event | None = None
        self.in_flight = 0

    async def send(self, event: Event) -> None:
        self.attempts.append(event)
        self.in_flight += 1
        try:
            if self.hold is not None:
                await self.hold.wait()
            if self.down or event.user_id in self.failing:
                raise RetryableDeliveryError("down (test)")
            if event.user_id in self.refusing:
                raise PermanentDeliveryError("HTTP 422 (test)")
        finally:
            self.in_flight -= 1
        self.received.append(event)

    async def close(self) -> None:
        return None

    def payloads(self, user: str) -> list[str]:
        return [e.payload for e in self.received if e.user_id == user]


def spec(**overrides: Any) -> DestinationSpec:
    base = DestinationSpec(
        name="dest",
        type="mock",
        options=MockOptions(behavior="succeed"),
        timeout=1.0,
        retry=RetryPolicy(
            max_retries=1, initial_backoff=Duration(0.001), max_backoff=Duration(0.002)
        ),
        concurrency=8,
        max_buffered=50,
        breaker=BreakerPolicy(
            consecutive_failures=3, cooldown=Duration(0.05), max_cooldown=Duration(0.2)
        ),
        parking=ParkingPolicy(
            retry_schedule=(Duration(0.05),), poison_users=1000, poison_min_volume=1000
        ),
    )
    return replace(base, **overrides)


def parking_spec(*, retry_after: float) -> DestinationSpec:
    """A destination that parks a failing user and retries it after ``retry_after`` seconds,
    with the poison guard out of the way."""
    policy = ParkingPolicy(
        retry_schedule=(Duration(retry_after),), poison_users=1000, poison_min_volume=1000
    )
    return spec(parking=policy)


class Harness:
    """One worker, its fake cluster and its receiver; ``async with`` runs the worker."""

    def __init__(
        self,
        *,
        cluster: FakeCluster | None = None,
        destination_spec: DestinationSpec | None = None,
        receiver: Receiver | None = None,
        start_from: str = "earliest",
        retention_ms: int | None = None,
        metrics: DeliveryMetrics | None = None,
        commit_interval: float = 0.02,
        drain_timeout: float = 1.0,
        park_topic_missing: bool = False,
    ) -> None:
        self.cluster = cluster or FakeCluster(partitions=4)
        self.spec = destination_spec or spec()
        self.receiver = receiver or Receiver()
        self.producer = FakeProducer(self.cluster)
        self.lookups = FakeLookups(self.cluster, f"test.{self.spec.name}")
        self.park_topic = park_topic(TOPIC, self.spec.name)
        make_park: Callable[[], Awaitable[None]] | None = None
        if park_topic_missing:
            # Made lazily, as in production: on the destination's first park.
            self.cluster.missing.add(self.park_topic)

            async def make_park() -> None:
                self.cluster.make(self.park_topic)

        self.consumers: list[FakeConsumer] = []
        manifest = Manifest(
            path=Path("test.yaml"), topic=TOPIC, dead_letter_topic=DEAD_LETTERS,
            group_prefix="test", start_from=start_from, bootstrap_servers="fake:9092",  # type: ignore[arg-type]
            destinations=(self.spec,),
        )  # fmt: skip
        producer = cast(AsyncProducer, self.producer)
        self.worker = DestinationWorker(
            manifest=manifest,
            spec=self.spec,
            destination=self.receiver,
            dead_letters=DeadLetterWriter(producer, DEAD_LETTERS, retry_interval=0.01),
            park=ParkWriter(producer, self.park_topic, retry_interval=0.01, prepare=make_park),
            bootstrap_servers="fake:9092",
            retention_ms=retention_ms,
            commit_interval=commit_interval,
            drain_timeout=drain_timeout,
            metrics=metrics,
            lookups=self.lookups,
            consumer_factory=self._consumer,
            reader_factory=lambda: cast(ParkReader, FakeReader(self.cluster, self.park_topic)),
        )
        self.stop = asyncio.Event()
        self.task: asyncio.Task[object] | None = None

    def _consumer(self, config: dict[str, Any]) -> Any:
        consumer = FakeConsumer(self.cluster, config)
        self.consumers.append(consumer)
        return consumer

    @property
    def consumer(self) -> FakeConsumer:
        return self.consumers[-1]

    async def __aenter__(self) -> Harness:
        self.task = asyncio.create_task(self.worker.run(self.stop))
        await wait_until(lambda: bool(self.consumers), what="the consumer")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop.set()
        if self.receiver.hold is not None:
            self.receiver.hold.set()
        assert self.task is not None
        await asyncio.wait_for(self.task, timeout=10)

    async def settle(self, turns: int = 3) -> None:
        """Let the worker's fetch loop go round ``turns`` more times."""
        start = self.consumer.calls
        await wait_until(lambda: self.consumer.calls >= start + turns, what="fetch loop turns")

    def send(self, partition: int, user: str, payload: str) -> int:
        return self.cluster.send_event(TOPIC, partition, user, payload)

    def committed(self, partition: int) -> int | None:
        entry = self.cluster.committed.get(("test.dest", TOPIC, partition))
        return entry[0] if entry else None

    def records(self, topic: str) -> list[Any]:
        return [m for log in self.cluster.topic(topic) for m in log]

    def parked_payloads(self, user: str) -> list[bytes | None]:
        return [
            m.value()
            for m in self.records(self.park_topic)
            if m.key() == user.encode() and ("park-kind", b"event") in m.headers()
        ]
