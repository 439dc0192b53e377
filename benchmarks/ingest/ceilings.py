"""What ingest is compared with: the same app with a producer that acknowledges at once (the
HTTP ceiling, served by uvicorn from ``ceiling_app``), and a bare producer loop with ingest's
producer settings and no HTTP (the Kafka ceiling)."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections import Counter

import confluent_kafka
from confluent_kafka import KafkaError, Message, Producer
from litestar import Litestar

from eventlog.clients import producer_config
from eventlog.kafka_security import environment_security
from eventlog.producer import Delivered
from eventlog.record import Event, Headers, encode
from ingest import IngestSettings, create_app

__all__ = ["CEILING_SETTINGS_ENV", "PAYLOAD_BYTES", "USERS", "ceiling_app", "kafka_ceiling"]

CEILING_SETTINGS_ENV = "BENCH_INGEST_CEILING_SETTINGS"
"""The HTTP ceiling's ``IngestSettings``, as JSON."""
USERS = 1000
PAYLOAD_BYTES = 100


class InstantProducer:
    """Stands in for Kafka in the HTTP ceiling: acknowledges every record at once."""

    def __init__(self, partitions: int) -> None:
        self._partitions = partitions
        self._offsets: Counter[int] = Counter()

    @property
    def client(self) -> Producer:
        raise RuntimeError("the HTTP ceiling has no Kafka client")

    def start(self) -> None:
        pass

    async def produce(
        self, topic: str, *, key: bytes, value: bytes, headers: Headers | None = None
    ) -> Delivered:
        partition = confluent_kafka.murmur2(key, self._partitions)
        self._offsets[partition] += 1
        return Delivered(topic, partition, self._offsets[partition] - 1)

    def close(self, timeout: float = 10.0) -> int:
        return 0


def ceiling_app() -> Litestar:
    """uvicorn factory of the HTTP ceiling: ingest's app without Kafka."""
    settings = IngestSettings(**json.loads(os.environ[CEILING_SETTINGS_ENV]))
    return create_app(settings, producer=InstantProducer(settings.partitions))


def kafka_ceiling(bootstrap: str, topic: str, *, seconds: float, cap: int) -> tuple[float, int]:
    """Records per second a bare producer loop gets acknowledged with ingest's settings, and
    how many failed."""
    producer = Producer(producer_config(bootstrap, security=environment_security()))
    payload = "x" * PAYLOAD_BYTES
    now_ms = time.time_ns() // 1_000_000
    records = [encode(Event(str(uuid.uuid4()), f"user-{u}", payload, now_ms)) for u in range(USERS)]
    outcome: Counter[str] = Counter()

    def on_delivery(error: KafkaError | None, _: Message) -> None:
        outcome["failed" if error else "delivered"] += 1

    start = time.perf_counter()
    produced = 0
    while produced < cap and time.perf_counter() - start < seconds:
        key, value, headers = records[produced % USERS]
        try:
            producer.produce(topic, key=key, value=value, headers=headers, on_delivery=on_delivery)
        except BufferError:
            producer.poll(0.005)
            continue
        produced += 1
        if produced % 500 == 0:
            producer.poll(0)
    producer.flush(60)
    elapsed = time.perf_counter() - start
    return outcome["delivered"] / elapsed, outcome["failed"]
