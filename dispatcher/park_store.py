"""The park topic as the worker and the operator commands reach it (Kafka I/O only).

``ParkWriter`` stores parked events and markers on the partition their events came from,
making the topic first if need be.
The worker reads its park partitions through ``park_reader``; ``read_park`` reads partitions
to their end in one go, for the commands.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from dispatcher import park_records
from dispatcher.commits import parse_checkpoint
from dispatcher.durable import write_durably
from dispatcher.jobs import Job
from dispatcher.park_records import ParkRead
from dispatcher.parking import ParkBook, ParkingPolicy, recover
from dispatcher.topic_reader import MissingTopic, partitions_of, read_to_end
from eventlog.clients import consumer_config
from eventlog.exceptions import EventDeliveryError
from eventlog.producer import AsyncProducer

__all__ = ["ParkWriter", "ReadRecord", "decode_message", "load_book", "read_park"]


class ParkWriter:
    """Writes one destination's park records, each acknowledged with ``acks=all``."""

    def __init__(
        self,
        producer: AsyncProducer,
        topic: str,
        *,
        retry_interval: float = 1.0,
        prepare: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._producer = producer
        self.topic = topic
        self._retry_interval = retry_interval
        self._prepare = prepare
        """Makes the topic exist; awaited once, before the first write."""
        self._prepared = asyncio.Lock()

    @property
    def made(self) -> bool:
        """Whether the topic is known to exist (made by this writer, or never its to make)."""
        return self._prepare is None

    async def event(self, job: Job, reason: str) -> int:
        """Park ``job``'s record; returns its park offset."""
        headers = park_records.event_headers(
            job.headers, source_offset=job.offset, reason=reason, now_ms=_now_ms()
        )
        return await self._write(
            job.partition, job.key or b"", job.value or b"", headers,
            f"parked event {job.partition}:{job.offset}",
        )  # fmt: skip

    async def release(self, partition: int, user: str, up_to: int) -> int:
        return await self._write(
            partition, user.encode(), b"", park_records.release_headers(up_to),
            f"release of {user!r}",
        )  # fmt: skip

    async def retry(
        self, partition: int, user: str, retries: int, next_at: float, error: str
    ) -> int:
        headers = park_records.retry_headers(retries, int(next_at * 1000), error)
        return await self._write(partition, user.encode(), b"", headers, f"retry of {user!r}")

    async def replay_result(
        self, partition: int, request: str, user: str, *, replayed: int, released: bool, error: str
    ) -> int:
        headers = park_records.replay_result_headers(
            request, replayed=replayed, released=released, error=error
        )
        return await self._write(partition, user.encode(), b"", headers, "replay result")

    async def replay_done(self, partition: int, request: str, users: int) -> int:
        headers = park_records.replay_done_headers(request, users)
        return await self._write(partition, b"", b"", headers, "replay done")

    async def _write(
        self, partition: int, key: bytes, value: bytes, headers: Any, what: str
    ) -> int:
        if self._prepare is not None:
            async with self._prepared:  # the first writer makes it; the others wait for that
                if self._prepare is not None:
                    await self._prepare()
                    self._prepare = None
        delivered = await write_durably(
            self._producer, self.topic, key=key, value=value, headers=headers,
            partition=partition, what=what, retry_interval=self._retry_interval,
        )  # fmt: skip
        return delivered.offset


@dataclass(frozen=True, slots=True)
class ReadRecord:
    partition: int
    offset: int
    timestamp_ms: int
    read: ParkRead


def decode_message(message: Message) -> ReadRecord | None:
    """A park record as read, or ``None`` for an end-of-partition or error event."""
    if message.error() is not None:
        return None
    partition, offset = message.partition(), message.offset()
    assert partition is not None and offset is not None
    raw = message.headers() or []
    headers = list(raw.items() if isinstance(raw, dict) else raw)
    stamp = max(0, message.timestamp()[1])
    read = park_records.parse(message.key(), message.value(), headers, stamp)
    return ReadRecord(partition, offset, stamp, read)


def read_park(
    bootstrap_servers: str,
    topic: str,
    starts: dict[int, int | None],
    *,
    timeout: float = 30.0,
    security: Mapping[str, str] | None = None,
) -> Iterator[ReadRecord]:
    """Every record of the given park partitions from ``starts`` (``None``: the beginning) to
    their end as of now. Blocking: for the commands, not the worker's loop."""
    messages = read_to_end(bootstrap_servers, topic, starts, timeout=timeout, security=security)
    for message in messages:
        record = decode_message(message)
        if record is not None:
            yield record


def _now_ms() -> int:
    return int(time.time() * 1000)


def load_book(
    bootstrap_servers: str,
    *,
    events_topic: str,
    park: str,
    group: str,
    policy: ParkingPolicy,
    timeout: float = 30.0,
    security: Mapping[str, str] | None = None,
) -> ParkBook:
    """A destination's parked users as its owners see them: every park partition read from
    the checkpoint the group last committed (blocking; for the commands)."""
    probe = Consumer(consumer_config(bootstrap_servers, group, security=security, log_level=0))
    try:
        numbers = partitions_of(probe, park, timeout)
        asked = [TopicPartition(events_topic, p) for p in numbers]
        committed = probe.committed(asked, timeout=timeout)
    except MissingTopic:
        return ParkBook(policy)  # made when the destination first parks someone: nobody yet
    except KafkaException as exc:
        raise EventDeliveryError(f"cannot reach Kafka: {exc.args[0].str()}") from exc
    finally:
        probe.close()
    starts: dict[int, int | None] = {
        tp.partition: parse_checkpoint(tp.metadata) for tp in committed
    }
    book = ParkBook(policy)
    now = time.time()
    for record in read_park(bootstrap_servers, park, starts, timeout=timeout, security=security):
        recover(book, record.partition, record.offset, record.read, now=now)
    return book
