"""The events the dispatch benchmark delivers: made up, pre-loaded into Kafka as ingest would
write them, and counted where they end up."""

from __future__ import annotations

import json
import time

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from benchmarks.exceptions import BenchError
from eventlog.clients import consumer_config, producer_config
from eventlog.kafka_security import environment_security
from eventlog.record import Event, encode

__all__ = ["bench_event", "count_records", "preload", "sample_body"]

PRELOAD_TIMEOUT = 60.0


def bench_event(number: int, *, users: int, received_at_ms: int) -> Event:
    """Event ``number``: users take turns, the payload is a small JSON document."""
    payload = json.dumps(
        {"seq": number, "type": "page_view", "path": f"/products/{number % 977}", "pad": "x" * 48}
    )
    return Event(
        id=f"bench-{number:07d}",
        user_id=f"user-{number % users:05d}",
        payload=payload,
        received_at_ms=received_at_ms,
    )


def sample_body() -> bytes:
    """A request body shaped like the dispatcher's (``HttpPayload``)."""
    event = bench_event(0, users=1, received_at_ms=int(time.time() * 1000))
    fields = {
        "id": event.id,
        "user_id": event.user_id,
        "payload": event.payload,
        "received_at_ms": event.received_at_ms,
    }
    return json.dumps(fields).encode()


def preload(bootstrap: str, topic: str, *, events: int, users: int) -> None:
    """Produce ``events`` events of ``users`` users to ``topic``, as ingest would."""
    producer = Producer(producer_config(bootstrap, security=environment_security()))
    failures: list[KafkaError] = []

    def on_delivery(error: KafkaError | None, _: Message) -> None:
        if error is not None:
            failures.append(error)

    deadline = time.monotonic() + PRELOAD_TIMEOUT
    now_ms = int(time.time() * 1000)
    for number in range(events):
        key, value, headers = encode(bench_event(number, users=users, received_at_ms=now_ms))
        while True:
            try:
                producer.produce(topic, value, key, headers=headers, on_delivery=on_delivery)
                break
            except BufferError:  # the local queue is full: let it drain
                if time.monotonic() > deadline:
                    raise BenchError(
                        f"pre-loading {topic} took over {PRELOAD_TIMEOUT:g}s"
                    ) from None
                producer.poll(0.05)
        producer.poll(0)
    unsent = producer.flush(max(1.0, deadline - time.monotonic()))
    if unsent or failures:
        raise BenchError(
            f"pre-loading {topic}: {unsent} unsent, {len(failures)} failed"
            + (f" (first: {failures[0].str()})" if failures else "")
        )


def count_records(bootstrap: str, topic: str) -> int:
    """Records in ``topic`` (its partitions' high watermarks added up; 0 if it is missing)."""
    consumer = Consumer(
        consumer_config(bootstrap, "bench-dispatch.watermarks", security=environment_security())
    )
    try:
        found = consumer.list_topics(topic, timeout=10).topics.get(topic)
        partitions = found.partitions if found is not None and found.error is None else {}
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in partitions
        )
    finally:
        consumer.close()
