"""The shared client settings against the real broker: keys land where Java clients put them."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import confluent_kafka
import pytest
from confluent_kafka import Consumer, Producer

from eventlog.clients import admin_config, consumer_config, producer_config
from eventlog.record import Event, decode, encode

# Kafka's own murmur2 test vectors (signed 32-bit results of Utils.murmur2).
KAFKA_VECTORS = {"21": -973932308, "foobar": -790332482, "abc": 479470107}


def java_partition(key: bytes, partitions: int) -> int:
    """Java's DefaultPartitioner: toPositive(murmur2(key)) % partitions."""
    return (_murmur2_signed(key) & 0x7FFFFFFF) % partitions


def _murmur2_signed(data: bytes) -> int:
    # Kafka's Utils.murmur2, written from its definition (seed 0x9747b28c, m=0x5bd1e995, r=24).
    m, seed, mask = 0x5BD1E995, 0x9747B28C, 0xFFFFFFFF
    length = len(data)
    h = (seed ^ length) & mask
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * m) & mask
        k ^= k >> 24
        k = (k * m) & mask
        h = ((h * m) & mask) ^ k
    tail = length % 4
    base = length - tail
    if tail == 3:
        h ^= data[base + 2] << 16
    if tail >= 2:
        h ^= data[base + 1] << 8
    if tail >= 1:
        h ^= data[base]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


@pytest.mark.parametrize(("key", "expected"), KAFKA_VECTORS.items())
def test_our_murmur2_reference_matches_kafkas_vectors(key: str, expected: int) -> None:
    assert _murmur2_signed(key.encode()) == expected


@pytest.mark.parametrize("key", [*KAFKA_VECTORS, "user-1", "ü", ""])
def test_librdkafka_murmur2_matches_java(key: str) -> None:
    assert confluent_kafka.murmur2(key.encode(), 12) == java_partition(key.encode(), 12)


@pytest.mark.kafka
def test_events_round_trip_through_the_broker_on_java_partitions(
    kafka_bootstrap: str, topic_factory: Callable[..., str], unique_name: Callable[[str], str]
) -> None:
    topic = topic_factory(partitions=6)
    producer = Producer(producer_config(kafka_bootstrap))
    sent = [Event(f"e{i}", f"user-{i % 5}", f"payload {i}", 1000 + i) for i in range(30)]
    for event in sent:
        key, value, headers = encode(event)
        producer.produce(topic, value=value, key=key, headers=headers)
    assert producer.flush(30) == 0

    consumer = Consumer(consumer_config(kafka_bootstrap, unique_name("group")))
    consumer.subscribe([topic])
    received: list[tuple[int | None, Event]] = []
    deadline = time.monotonic() + 30
    try:
        while len(received) < len(sent) and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            received.append(
                (message.partition(), decode(message.key(), message.value(), message.headers()))
            )
    finally:
        consumer.close()

    assert sorted(e.id for _, e in received) == sorted(e.id for e in sent)
    for partition, event in received:
        assert partition == java_partition(event.user_id.encode(), 6)
    for user in {e.user_id for e in sent}:
        order = [e.id for _, e in received if e.user_id == user]
        assert order == [e.id for e in sent if e.user_id == user]


def test_a_logger_is_passed_to_every_client_kind() -> None:
    logger = logging.getLogger("librdkafka.test")
    assert producer_config("h:1", logger=logger)["logger"] is logger
    assert consumer_config("h:1", "g", logger=logger)["logger"] is logger
    assert admin_config("h:1", logger=logger)["logger"] is logger
    assert "logger" not in consumer_config("h:1", "g")
