"""Questions a worker asks Kafka about offsets, answered without touching its consumer.

A blocking lookup on a consumer's own handle (``committed``, ``get_watermark_offsets``) holds
up ``consume`` on that handle while the broker takes its time, even ``consume(timeout=0)``
called from the event loop (seen with confluent-kafka 2.16: a 0.5 s watermark query froze the
loop, and with it every destination of the process, for 0.5 s). Attempts then time out
although their receivers answered, and a rebalance stalls deliveries that have nothing to do
with it. So these questions go through an admin client of their own, whose answers arrive as
futures: nothing waits but the coroutine that asked.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, TypeVar

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from eventlog.clients import admin_config

__all__ = ["Committed", "Lookups", "NoSuchTopic", "OffsetLookups", "ask_until_answered"]

log = logging.getLogger(__name__)

T = TypeVar("T")

REQUEST_TIMEOUT = 10.0
"""Seconds one lookup may take before it fails (and is asked again by its caller)."""
ASK_AGAIN_AFTER = 1.0
"""Seconds between asking again while Kafka cannot answer."""

_NO_SUCH_TOPIC = (
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError._UNKNOWN_PARTITION,
    KafkaError._NOENT,
)


class NoSuchTopic(Exception):
    """The topic asked about does not exist: no passing trouble, nothing to wait for."""


@dataclass(frozen=True, slots=True)
class Committed:
    """A group's committed position on one partition."""

    offset: int | None
    """The next offset to read, ``None`` when the group never committed there."""
    metadata: str | None


class Lookups(Protocol):
    """What a worker asks (``OffsetLookups``; a fake in the tests)."""

    async def committed(self, group: str, topic: str, partition: int) -> Committed: ...

    async def watermarks(self, topic: str, partition: int) -> tuple[int, int]: ...


class OffsetLookups:
    """Offset lookups through one admin client, shared by every worker of one cluster."""

    def __init__(self, admin: AdminClient, *, timeout: float = REQUEST_TIMEOUT) -> None:
        self._admin = admin
        self._timeout = timeout
        self._closed = threading.Event()
        # An admin client serves its log lines only from poll(): one thread per cluster does.
        self._poller = threading.Thread(target=self._poll, name="lookups-poll", daemon=True)
        self._poller.start()

    @classmethod
    def connect(
        cls,
        bootstrap_servers: str,
        *,
        security: Mapping[str, str] | None = None,
        logger: logging.Logger | None = None,
    ) -> OffsetLookups:
        return cls(AdminClient(admin_config(bootstrap_servers, security=security, logger=logger)))

    async def committed(self, group: str, topic: str, partition: int) -> Committed:
        """``group``'s committed offset (and its metadata) on ``topic``/``partition``."""
        request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, partition)])
        futures = self._admin.list_consumer_group_offsets([request], request_timeout=self._timeout)
        answer = await _answer(futures[group])
        found = answer.topic_partitions[0]
        if found.error is not None:
            raise KafkaException(found.error)
        offset = found.offset if found.offset >= 0 else None
        return Committed(offset, found.metadata or None)

    async def watermarks(self, topic: str, partition: int) -> tuple[int, int]:
        """The earliest retained offset of ``topic``/``partition`` and its end."""
        tp = TopicPartition(topic, partition)
        earliest, latest = OffsetSpec.earliest(), OffsetSpec.latest()  # type: ignore[no-untyped-call]
        low = self._admin.list_offsets({tp: earliest}, request_timeout=self._timeout)
        high = self._admin.list_offsets({tp: latest}, request_timeout=self._timeout)
        first = await _answer(low[tp])
        end = await _answer(high[tp])
        return int(first.offset), int(end.offset)

    def close(self) -> None:
        self._closed.set()

    def _poll(self) -> None:
        while not self._closed.is_set():
            self._admin.poll(0.5)


async def ask_until_answered(
    question: Callable[[], Awaitable[T]],
    *,
    still_wanted: Callable[[], bool],
    what: str,
    name: str,
    partition: int,
) -> T | None:
    """``question()``, asked again every second while Kafka cannot answer (a broker
    restarting, a leader moving) and the answer is ``still_wanted()`` (the partition is still
    this assignment's); ``None`` once it is not. A missing topic is no passing trouble: its
    ``NoSuchTopic`` is raised."""
    while still_wanted():
        try:
            return await question()
        except (KafkaException, TimeoutError) as exc:
            log.warning(
                "%s not known yet destination=%s partition=%d error=%s",
                what, name, partition, exc,
            )  # fmt: skip
            await asyncio.sleep(ASK_AGAIN_AFTER)
    return None


async def _answer(future: concurrent.futures.Future[T]) -> T:
    """An admin future's result on the loop; a missing topic raises ``NoSuchTopic``."""
    try:
        return await asyncio.wrap_future(future)
    except KafkaException as exc:
        error = exc.args[0] if exc.args else None
        if isinstance(error, KafkaError) and error.code() in _NO_SUCH_TOPIC:
            raise NoSuchTopic(str(error)) from exc
        raise
