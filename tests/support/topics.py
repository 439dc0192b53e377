"""Reading what is on a topic, for assertions."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, Message

from eventlog.clients import consumer_config

__all__ = ["read_records"]


def read_records(bootstrap: str, topic: str, count: int, *, within: float = 30.0) -> list[Message]:
    """Up to ``count`` records of ``topic`` from its start (all partitions), read by a fresh
    consumer group; fewer if fewer arrive within ``within`` seconds."""
    consumer = Consumer(consumer_config(bootstrap, f"test-reader-{uuid.uuid4().hex}"))
    consumer.subscribe([topic])
    records: list[Message] = []
    deadline = time.monotonic() + within
    try:
        while len(records) < count and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                records.append(message)
    finally:
        consumer.close()
    return records
