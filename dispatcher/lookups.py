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

A process can hold only about 1,000 Kafka clients (see ``park_reader``), most of them the
destinations' own consumers, so the workers of one process share a budget of lookup clients
(``LookupSlots``, ``lookup_clients``): one per worker while the process is small, at least
``LOOKUP_CLIENTS`` when it is full. A worker takes a slot to open its lookup consumer and gives
it back when that closes: after ``IDLE_CLOSE`` without a question, or ``BUSY_CLOSE`` while
every slot is taken (others may be waiting).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from eventlog.clients import consumer_config
from eventlog.threads import run_in_daemon_thread

__all__ = [
    "Committed",
    "ConsumerLookups",
    "LookupSlots",
    "Lookups",
    "NoSuchTopic",
    "ask_until_answered",
    "lookup_clients",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

REQUEST_TIMEOUT = 10.0
"""Seconds one lookup may take before it fails (and is asked again by its caller)."""
ASK_AGAIN_AFTER = 1.0
"""Seconds between asking again while Kafka cannot answer."""
IDLE_CLOSE = 30.0
"""Seconds without a question after which the lookup consumer is closed."""
BUSY_CLOSE = 0.25
"""Seconds without a question after which the lookup consumer is closed while every slot is
taken: long enough to answer a worker's start-up questions (placement, park recovery) in one
go, short enough to let the next worker in."""
LOOKUP_CLIENTS = 4
"""Lookup consumers a process may keep open at least (and ``LookupSlots``' default)."""
PROCESS_CLIENTS = 960
"""Destinations' consumers and lookup consumers one process may hold together, leaving room
for its few others (the producer, the park reader, an admin client now and then) and for what
other libraries take of the same thread-local keys."""


def lookup_clients(destinations: int) -> int:
    """How many lookup consumers a process of ``destinations`` may keep open at once."""
    return max(LOOKUP_CLIENTS, min(destinations, PROCESS_CLIENTS - destinations))


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


class LookupSlots:
    """How many lookup consumers the workers of one process may have open at once."""

    def __init__(self, slots: int = LOOKUP_CLIENTS) -> None:
        self._free = asyncio.Semaphore(slots)

    async def take(self) -> None:
        await self._free.acquire()

    def give_back(self) -> None:
        self._free.release()

    @property
    def exhausted(self) -> bool:
        """Every slot is taken (a worker waiting for one may be among those asking)."""
        return self._free.locked()


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
        slots: LookupSlots | None = None,
    ) -> None:
        self._config: dict[str, Any] = consumer_config(
            bootstrap_servers, group_id, security=security, logger=logger
        )
        self._timeout = timeout
        self._idle_close = idle_close
        self._slots = slots or LookupSlots()
        self._opening = asyncio.Lock()
        self._consumer: Consumer | None = None
        self._asking = 0
        self._quiet = asyncio.Event()
        """Set while no call is in a thread."""
        self._quiet.set()
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
        """Close the lookup consumer, if one is open (off the loop), once no call is in its
        thread any more (or ``timeout`` passed: Kafka answers every call by then)."""
        if self._closer is not None:
            self._closer.cancel()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._timeout):
                await self._quiet.wait()
        await self._close_open()

    async def _ask(self, topic: str, question: Callable[[Consumer], T]) -> T:
        self._asking += 1
        self._quiet.clear()
        try:
            consumer = await self._open()
        except BaseException:
            self._done_asking()
            raise
        # A caller giving up (a timeout, a revoked partition) does not stop the call in its
        # thread: the client stays open, and its slot taken, until Kafka answered it.
        call = asyncio.ensure_future(self._call(consumer, topic, question))
        call.add_done_callback(_retrieve)
        return await asyncio.shield(call)

    async def _call(self, consumer: Consumer, topic: str, question: Callable[[Consumer], T]) -> T:
        # The thread's closures and an error's traceback can outlive the call; the client must
        # not (its thread-local key is freed only with the object), so they reach it through
        # a box emptied here.
        box = [consumer]
        del consumer
        try:
            return await run_in_daemon_thread(
                lambda: _asked(box[0], topic, question, self._timeout), name="lookup"
            )
        finally:
            box.clear()
            self._done_asking()

    def _done_asking(self) -> None:
        self._asking -= 1
        if not self._asking:
            self._quiet.set()
        self._last_asked = time.monotonic()
        if self._closer is None or self._closer.done():
            self._closer = asyncio.create_task(self._close_when_idle())

    async def _open(self) -> Consumer:
        async with self._opening:
            if self._consumer is None:
                await self._slots.take()
                try:
                    consumer = _new_consumer(self._config)
                except RuntimeError as exc:  # no client can be made now: asked again later
                    self._slots.give_back()
                    raise KafkaException(KafkaError(KafkaError._FAIL, str(exc))) from exc
                except BaseException:
                    self._slots.give_back()
                    raise
                self._consumer = consumer
            return self._consumer

    async def _close_open(self) -> None:
        """Close the lookup consumer if one is open, and give its slot back."""
        consumer, self._consumer = self._consumer, None
        if consumer is None:
            return
        try:
            await run_in_daemon_thread(consumer.close, name="lookups-close")
        finally:
            del consumer  # its thread-local key is freed with the object
            self._slots.give_back()

    async def _close_when_idle(self) -> None:
        while True:
            idle = BUSY_CLOSE if self._slots.exhausted else self._idle_close
            wait = self._last_asked + idle - time.monotonic()
            if wait > 0 or self._asking:
                # Awake at least every second: the slots may run out meanwhile.
                await asyncio.sleep(min(max(wait, BUSY_CLOSE), 1.0))
                continue
            await self._close_open()
            return


_last_collected = 0.0


def _new_consumer(config: dict[str, Any]) -> Consumer:
    """A consumer; when the process is out of clients' thread-local keys, once more after
    collecting garbage: closed clients caught in reference cycles (an error's traceback) hold
    theirs until a collection, and the processes collect rarely (``eventlog.gc_tuning``). At
    most one collection a second, whoever asks."""
    global _last_collected  # noqa: PLW0603 - one process-wide rate limit
    try:
        return Consumer(config)
    except RuntimeError:
        if time.monotonic() - _last_collected < 1.0:
            raise
        _last_collected = time.monotonic()
        gc.collect()
        return Consumer(config)


def _retrieve(call: asyncio.Future[Any]) -> None:
    """Mark a shielded call's outcome seen: its caller may have stopped waiting for it."""
    if not call.cancelled():
        call.exception()


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
