"""Fixtures of the ingest tests: an in-process app on a fresh topic, and reading that topic."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import httpx
import pytest
import uvicorn
from confluent_kafka import Consumer, Message, Producer, TopicPartition
from litestar import Litestar
from litestar.testing import AsyncTestClient

from eventlog.clients import consumer_config
from eventlog.producer import AsyncProducer, Delivered
from eventlog.record import Headers
from ingest import IngestSettings, create_app
from ingest.cli import server_options
from ingest.publisher import EventProducer
from tests.ingest.waiting import until_async
from tests.kafka_fixtures import free_port
from tests.support.topics import read_records

TOPIC_PARTITIONS = 3
MAX_EVENT_BYTES = 64 * 1024
MAX_BATCH_BYTES = 1024 * 1024


@dataclass
class IngestUnderTest:
    """An in-process ingest app, its HTTP client and its topic."""

    client: AsyncTestClient[Litestar]
    settings: IngestSettings

    @property
    def topic(self) -> str:
        return self.settings.topic


@pytest.fixture
def ingest_settings(kafka_bootstrap: str, topic_factory: Callable[..., str]) -> IngestSettings:
    return IngestSettings(
        bootstrap_servers=kafka_bootstrap,
        topic=topic_factory(partitions=TOPIC_PARTITIONS),
        partitions=TOPIC_PARTITIONS,
        ack_timeout=5.0,
        max_event_bytes=MAX_EVENT_BYTES,
        max_batch_bytes=MAX_BATCH_BYTES,
    )


@pytest.fixture
async def ingest(ingest_settings: IngestSettings) -> AsyncIterator[IngestUnderTest]:
    async with running(create_app(ingest_settings)) as client:
        yield IngestUnderTest(client, ingest_settings)


def running(app: Litestar) -> AsyncTestClient[Litestar]:
    """A client for ``app``; entering it runs the app's start-up (and leaving, its shutdown)."""
    return AsyncTestClient(app, timeout=30)


async def wait_ready(client: AsyncTestClient[Litestar], *, within: float = 30.0) -> None:
    async def ready() -> bool:
        return (await client.get("/readyz")).status_code == 200

    await until_async(ready, within=within, interval=0.05, what="ingest reports ready")


def read_topic(bootstrap: str, topic: str, count: int, *, within: float = 30.0) -> list[Message]:
    """The first ``count`` records of ``topic`` (all partitions); fails the test if fewer came."""
    records = read_records(bootstrap, topic, count, within=within)
    assert len(records) == count, f"read {len(records)} of {count} records from {topic}"
    return records


def end_offsets(bootstrap: str, topic: str) -> list[int]:
    """The high watermark of each partition: how many records were ever written to it."""
    consumer = Consumer(consumer_config(bootstrap, f"ingest-test-{time.monotonic_ns()}"))
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return [
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in sorted(partitions)
        ]
    finally:
        consumer.close()


class GatedProducer:
    """The real producer, except that ``produce`` first waits until the test opens the gate:
    it holds a request in flight for as long as a test needs."""

    def __init__(self, inner: AsyncProducer) -> None:
        self.inner = inner
        self.gate = asyncio.Event()
        self.waiting = 0

    @property
    def client(self) -> Producer:
        return self.inner.client

    def start(self) -> None:
        self.inner.start()

    async def produce(
        self, topic: str, *, key: bytes, value: bytes, headers: Headers | None = None
    ) -> Delivered:
        self.waiting += 1
        try:
            await self.gate.wait()
        finally:
            self.waiting -= 1
        return await self.inner.produce(topic, key=key, value=value, headers=headers)

    def close(self, timeout: float = 10.0) -> int:
        return self.inner.close(timeout)


@contextlib.asynccontextmanager
async def serving(
    settings: IngestSettings, producer: EventProducer | None = None, *, ready: bool = True
) -> AsyncIterator[uvicorn.Server]:
    """Ingest under a real uvicorn server in this process, with the server options the
    ``ingest`` command uses; waits until it is ready (or, with ``ready=False``, alive)."""
    config = uvicorn.Config(
        create_app(settings, producer=producer),
        host="127.0.0.1",
        port=free_port(),
        lifespan="on",
        log_config=None,
        **server_options(settings),
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    probe = "/readyz" if ready else "/healthz"

    async def answers() -> bool:
        with contextlib.suppress(httpx.TransportError):
            async with httpx.AsyncClient() as client:
                url = f"http://127.0.0.1:{config.port}{probe}"
                return (await client.get(url, timeout=5)).status_code == 200
        return False

    try:
        await until_async(answers, within=30, interval=0.05, what=f"ingest answers {probe}")
        yield server
    finally:
        if isinstance(producer, GatedProducer):
            producer.gate.set()
        server.should_exit = True
        await asyncio.wait_for(task, timeout=30)
