"""Where ``dispatcher status`` finds each destination's breaker: a small compacted topic.

``<topic>.dispatcher-state``, keyed ``<destination>|<member>`` (one member per dispatcher
process), holds the latest transition of each process's breaker as JSON; a process leaving
cleanly writes a tombstone. Publishing is best effort: the breaker works without it.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

import msgspec
from confluent_kafka import Consumer, KafkaError, TopicPartition

from dispatcher.breaker import Transition
from eventlog.clients import consumer_config
from eventlog.producer import AsyncProducer, ProduceError

__all__ = ["BreakerRecord", "StatePublisher", "read_breakers", "state_topic"]

log = logging.getLogger(__name__)


def state_topic(topic: str) -> str:
    return f"{topic}.dispatcher-state"


class BreakerRecord(msgspec.Struct, frozen=True):
    destination: str
    member: str
    state: str
    reason: str
    since_ms: int
    next_probe_ms: int | None


MEMBER = f"{socket.gethostname()}:{os.getpid()}"


class StatePublisher:
    """Writes one destination's breaker transitions (best effort)."""

    def __init__(self, producer: AsyncProducer | None, topic: str, destination: str) -> None:
        self._producer = producer
        self._topic = topic
        self._destination = destination
        self._key = f"{destination}|{MEMBER}".encode()

    async def publish(self, transition: Transition) -> None:
        record = BreakerRecord(
            self._destination, MEMBER, transition.state.value, transition.reason,
            int(transition.at * 1000),
            None if transition.next_probe_at is None else int(transition.next_probe_at * 1000),
        )  # fmt: skip
        await self._send(msgspec.json.encode(record))

    async def leave(self) -> None:
        await self._send(None)

    async def _send(self, value: bytes | None) -> None:
        if self._producer is None:
            return
        try:
            await self._producer.produce(self._topic, key=self._key, value=value)  # type: ignore[arg-type]
        except ProduceError as exc:
            log.debug("breaker state not published destination=%s error=%s", self._destination, exc)


def read_breakers(
    bootstrap: str,
    topic: str,
    *,
    timeout: float = 5.0,
    security: Mapping[str, str] | None = None,
) -> dict[str, list[BreakerRecord]]:
    """The latest breaker record of every live member, by destination (blocking)."""
    consumer = Consumer(
        {
            **consumer_config(bootstrap, "status-state", security=security, log_level=0),
            "enable.partition.eof": True,
        }
    )
    latest: dict[bytes, BreakerRecord | None] = {}
    try:
        metadata = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
        if metadata is None or metadata.error is not None:
            return {}
        parts = list(metadata.partitions)
        consumer.assign([TopicPartition(topic, p, 0) for p in parts])
        waiting = set(parts)
        deadline = time.monotonic() + timeout
        while waiting and time.monotonic() < deadline:
            for message in consumer.consume(500, 0.2):
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        waiting.discard(message.partition() or 0)
                    continue
                key = message.key() or b""
                value = message.value()
                try:
                    latest[key] = msgspec.json.decode(value, type=BreakerRecord) if value else None
                except msgspec.DecodeError:
                    continue
    finally:
        consumer.close()
    found: dict[str, list[BreakerRecord]] = {}
    for record in latest.values():
        if record is not None:
            found.setdefault(record.destination, []).append(record)
    return found
