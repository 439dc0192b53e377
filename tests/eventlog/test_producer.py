from __future__ import annotations

import asyncio
from collections.abc import Callable

import confluent_kafka
import pytest

from eventlog.clients import producer_config
from eventlog.producer import AsyncProducer, ProduceError
from eventlog.record import Event, encode
from tests.kafka_fixtures import free_port


@pytest.mark.kafka
async def test_produce_returns_the_acknowledged_position(
    kafka_bootstrap: str, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory(partitions=4)
    producer = AsyncProducer(producer_config(kafka_bootstrap))
    producer.start()
    try:
        key, value, headers = encode(Event("e1", "alice", "hello", 1))
        results = await asyncio.gather(
            *(producer.produce(topic, key=key, value=value, headers=headers) for _ in range(5))
        )
    finally:
        assert producer.close() == 0
    assert {r.partition for r in results} == {confluent_kafka.murmur2(b"alice", 4)}
    assert sorted(r.offset for r in results) == [0, 1, 2, 3, 4]


async def test_an_unreachable_cluster_fails_within_the_delivery_timeout() -> None:
    config = producer_config(f"127.0.0.1:{free_port()}", **{"delivery.timeout.ms": 1500})
    producer = AsyncProducer(config)
    producer.start()
    try:
        with pytest.raises(ProduceError):
            await asyncio.wait_for(producer.produce("t", key=b"k", value=b"v"), timeout=10)
    finally:
        producer.close(timeout=0)
