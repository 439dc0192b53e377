"""Questions a worker asks Kafka about offsets, answered without touching its own handles.

A blocking lookup (``committed``, ``get_watermark_offsets``) on a handle the event loop also
calls holds up that call while the broker takes its time, even ``consume(timeout=0)`` (seen
with confluent-kafka 2.16: a 0.5 s watermark query froze the loop, and with it every
destination of the process). Attempts then time out although their receivers answered.

So each worker asks through a consumer of its own for lookups only: same group id (to read
the group's commits), never subscribed, used from threads alone. It is created when the
first question comes (a partition assigned) and closed once none came for a while, so an
idle destination keeps no extra client, and a broker restart between two rebalances leaves
no stale client behind. (An admin client shared for this kept failing after one broker
restart for minutes, and librdkafka 2.16 once aborted inside one.)
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from eventlog.clients import consumer_config
from eventlog.threads import run_in_daemon_thread

__all__ = ["Committed", "ConsumerLookups", "Lookups", "NoSuchTopic", "ask_until_answered"]

log = logging.getLogger(__name__)

T = TypeVar("T")

REQUEST_TIMEOUT = 10.0
"""Seconds one lookup may take before it fails (and is asked again by its caller)."""
ASK_AGAIN_AFTER = 1.0
"""Seconds between asking again while Kafka cannot answer."""
IDLE_CLOSE = 30.0
"""Seconds without a question after which the lookup consumer is closed."""

_UNKNOWN = (
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError._UNKNOWN_PARTITION,
    KafkaError._UNKNOWN_TOPIC,
)


class NoSuchTopic(Exception):
    """The topic asked about does not exist (its metadata, asked afresh, says so)."""


@dataclass(frozen=True, slots=True)
class Committed:
    """A group's committed position on one partition."""

    offset: int | None
    """The next offset to read, ``None`` when the group never committed there."""
    metadata: str | None


class Lookups(Protocol):
    """What a worker asks (``ConsumerLookups``; a fake in the tests)."""

    async def committed(self, topic: str, partition: int) -> Committed: ...

    async def watermarks(self, topic: str, partition: int) -> tuple[int, int]: ...

    async def close(self) -> None: ...


class ConsumerLookups:
    """One worker's lookups (see the module docstring)."""

    def __init__(
        self,
        bootstrap_servers: str,
        group_id: str,
        *,
        security: Mapping[str, str] | None = None,
        logger: logging.Logger | None = None,
        timeout: float = REQUEST_TIMEOUT,
        idle_close: float = IDLE_CLOSE,
    ) -> None:
        self._config: dict[str, Any] = consumer_config(
            bootstrap_servers, group_id, security=security, logger=logger
        )
        self._timeout = timeout
        self._idle_close = idle_close
        self._lock = threading.Lock()
        self._consumer: Consumer | None = None
        self._asking = 0
        self._last_asked = 0.0
        self._closer: asyncio.Task[None] | None = None

    async def committed(self, topic: str, partition: int) -> Committed:
        """The group's committed offset (and its metadata) on ``topic``/``partition``."""

        def ask(consumer: Consumer) -> Committed:
            found = consumer.committed([TopicPartition(topic, partition)], timeout=self._timeout)
            tp = found[0]
            if tp.error is not None:
                raise KafkaException(tp.error)
            return Committed(tp.offset if tp.offset >= 0 else None, tp.metadata or None)

        return await self._ask(topic, ask)

    async def watermarks(self, topic: str, partition: int) -> tuple[int, int]:
        """The earliest retained offset of ``topic``/``partition`` and its end."""

        def ask(consumer: Consumer) -> tuple[int, int]:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=self._timeout
            )
            return int(low), int(high)

        return await self._ask(topic, ask)

    async def close(self) -> None:
        """Close the lookup consumer, if one is open (off the loop)."""
        if self._closer is not None:
            self._closer.cancel()
        consumer = self._take()
        if consumer is not None:
            await run_in_daemon_thread(consumer.close, name="lookups-close")

    async def _ask(self, topic: str, question: Callable[[Consumer], T]) -> T:
        consumer = self._open()
        self._asking += 1
        try:
            return await run_in_daemon_thread(
                lambda: _asked(consumer, topic, question, self._timeout), name="lookup"
            )
        finally:
            self._asking -= 1
            self._last_asked = time.monotonic()
            if self._closer is None or self._closer.done():
                self._closer = asyncio.create_task(self._close_when_idle())

    def _open(self) -> Consumer:
        with self._lock:
            if self._consumer is None:
                self._consumer = Consumer(self._config)
            return self._consumer

    def _take(self) -> Consumer | None:
        with self._lock:
            consumer, self._consumer = self._consumer, None
            return consumer

    async def _close_when_idle(self) -> None:
        while True:
            wait = self._last_asked + self._idle_close - time.monotonic()
            if wait > 0 or self._asking:
                await asyncio.sleep(max(wait, 1.0))
                continue
            consumer = self._take()
            if consumer is not None:
                await run_in_daemon_thread(consumer.close, name="lookups-close")
            return


def _asked(consumer: Consumer, topic: str, question: Callable[[Consumer], T], timeout: float) -> T:
    """``question(consumer)``; an unknown topic raises ``NoSuchTopic`` only once a fresh
    metadata request confirms it (during a broker restart a topic can look unknown)."""
    try:
        return question(consumer)
    except KafkaException as exc:
        error = exc.args[0] if exc.args else None
        if not (isinstance(error, KafkaError) and error.code() in _UNKNOWN):
            raise
        metadata = consumer.list_topics(topic, timeout=timeout)
        found = metadata.topics.get(topic)
        if found is not None and found.error is not None and found.error.code() in _UNKNOWN:
            raise NoSuchTopic(f"{topic}: {found.error.str()}") from exc
        raise


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
    this assignment's, the worker not closing); ``None`` once it is not. A missing topic is no
    passing trouble: its ``NoSuchTopic`` is raised."""
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
