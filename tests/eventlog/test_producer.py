"""The asyncio producer against a real broker: acknowledged positions, delivery timeouts, and
the order of records that had to wait for room in librdkafka's queue."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import confluent_kafka
import pytest

import eventlog.producer
from eventlog.clients import producer_config
from eventlog.producer import AsyncProducer, ProduceError, ProducerQueueFull
from eventlog.record import Event, encode
from tests.kafka_fixtures import free_port
from tests.support.queue_full import QueueFullAtFirst


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


@pytest.mark.kafka
async def test_an_explicit_partition_wins_over_the_key(
    kafka_bootstrap: str, topic_factory: Callable[..., str]
) -> None:
    # The dispatcher's park records go to the partition their event came from, also those
    # with an empty key (markers), never where a partitioner would put them.
    topic = topic_factory(partitions=4)
    producer = AsyncProducer(producer_config(kafka_bootstrap))
    producer.start()
    try:
        home = confluent_kafka.murmur2(b"alice", 4)
        elsewhere = (home + 1) % 4
        placed = await producer.produce(topic, key=b"alice", value=b"v", partition=elsewhere)
        empty = [await producer.produce(topic, key=b"", value=b"", partition=2) for _ in range(4)]
    finally:
        assert producer.close() == 0
    assert placed.partition == elsewhere
    assert {d.partition for d in empty} == {2}


async def test_an_unreachable_cluster_fails_within_the_delivery_timeout() -> None:
    overrides: dict[str, Any] = {"delivery.timeout.ms": 1500}
    config = producer_config(f"127.0.0.1:{free_port()}", **overrides)
    producer = AsyncProducer(config)
    producer.start()
    try:
        with pytest.raises(ProduceError):
            await asyncio.wait_for(producer.produce("t", key=b"k", value=b"v"), timeout=10)
    finally:
        producer.close(timeout=0)


@pytest.mark.kafka
async def test_records_waiting_for_room_keep_the_order_of_the_calls(
    kafka_bootstrap: str, topic_factory: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A batch's records are produced by calls made one after another; the first finds the
    # queue full. None of the later ones may overtake it.
    monkeypatch.setattr(eventlog.producer, "Producer", QueueFullAtFirst)
    monkeypatch.setattr(QueueFullAtFirst, "refusals", 1)
    topic = topic_factory(partitions=1)
    producer = AsyncProducer(producer_config(kafka_bootstrap), queue_full_wait=5.0)
    producer.start()
    try:
        results = await asyncio.gather(
            *(producer.produce(topic, key=b"alice", value=f"e{n}".encode()) for n in range(4))
        )
    finally:
        assert producer.close() == 0
    assert [r.offset for r in results] == [0, 1, 2, 3]


async def test_a_queue_full_for_the_whole_wait_is_producer_queue_full(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(eventlog.producer, "Producer", QueueFullAtFirst)
    monkeypatch.setattr(QueueFullAtFirst, "refusals", 1_000_000)
    producer = AsyncProducer(producer_config(f"127.0.0.1:{free_port()}"), queue_full_wait=0.2)
    producer.start()
    try:
        outcomes = await asyncio.wait_for(
            asyncio.gather(
                *(producer.produce("t", key=b"k", value=b"v") for _ in range(3)),
                return_exceptions=True,
            ),
            timeout=10,
        )
    finally:
        producer.close(timeout=0)
    assert all(isinstance(o, ProducerQueueFull) for o in outcomes), outcomes
