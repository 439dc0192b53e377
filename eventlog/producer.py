"""An asyncio face on confluent-kafka's producer: ``await produce(...)`` returns once the broker
acknowledged the record (``acks=all``), without blocking the event loop.

librdkafka reports deliveries through callbacks served by ``poll()``; one background thread
polls and hands each result to the loop with ``call_soon_threadsafe``. (The ``aio`` producer
of confluent-kafka 2.16 cannot send headers, which carry the event id and trace context.)
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from eventlog.exceptions import EventDeliveryError
from eventlog.record import Headers

__all__ = ["AsyncProducer", "Delivered", "ProduceError", "ProducerQueueFull"]


class ProduceError(EventDeliveryError):
    """Kafka did not acknowledge a record; ``retriable`` says whether trying again may work, and
    ``code`` is librdkafka's name for the error (e.g. ``MSG_SIZE_TOO_LARGE``)."""

    def __init__(self, message: str, *, retriable: bool, code: str = "") -> None:
        super().__init__(message)
        self.retriable = retriable
        self.code = code


class ProducerQueueFull(ProduceError):
    """The local queue stayed full for the whole wait: back off and try later."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retriable=True, code="_QUEUE_FULL")


_ROOM_POLL_INTERVAL = 0.01
"""Seconds between attempts to enqueue while librdkafka's queue is full."""


@dataclass(frozen=True, slots=True)
class Delivered:
    """Where the broker stored an acknowledged record."""

    topic: str
    partition: int
    offset: int


class AsyncProducer:
    """One confluent-kafka ``Producer`` and its poll thread, for one event loop.

    Nothing touches the network until ``start()``, so building one is cheap and safe anywhere.
    """

    def __init__(self, config: dict[str, Any], *, queue_full_wait: float = 1.0) -> None:
        self._config = config
        self._queue_full_wait = queue_full_wait
        self._producer: Producer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        # Callers waiting for room in a full queue line up here, first come first served, and
        # a new caller joins the line instead of trying first: records are enqueued in the
        # order produce() was called, so a batch's records cannot overtake one another.
        self._room = asyncio.Lock()
        self._waiting_for_room = 0

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._producer = Producer(self._config)
        self._thread = threading.Thread(target=self._poll, name="kafka-producer-poll", daemon=True)
        self._thread.start()

    @property
    def client(self) -> Producer:
        if self._producer is None:
            raise RuntimeError("AsyncProducer.start() was not called")
        return self._producer

    async def produce(
        self,
        topic: str,
        *,
        key: bytes,
        value: bytes,
        headers: Headers | None = None,
        partition: int | None = None,
    ) -> Delivered:
        """Send one record and wait for the broker's acknowledgement.

        Records are enqueued in the order of the calls, also when some must wait for room.
        Raises ``ProducerQueueFull`` when librdkafka's queue stays full for ``queue_full_wait``
        seconds (backpressure, bounded), and ``ProduceError`` when the broker refuses or the
        delivery times out (``delivery.timeout.ms``).
        """
        loop = self._loop
        producer = self.client
        assert loop is not None
        future: asyncio.Future[Delivered] = loop.create_future()

        def on_delivery(error: KafkaError | None, message: Message) -> None:
            loop.call_soon_threadsafe(_settle, future, error, message)

        def enqueue() -> None:
            try:
                if partition is None:
                    producer.produce(
                        topic, value=value, key=key, headers=headers, on_delivery=on_delivery
                    )
                else:
                    producer.produce(
                        topic, value=value, key=key, headers=headers, partition=partition,
                        on_delivery=on_delivery,
                    )  # fmt: skip
            except KafkaException as exc:
                error: KafkaError = exc.args[0]
                raise ProduceError(
                    error.str(), retriable=error.retriable(), code=error.name()
                ) from exc

        if self._waiting_for_room:
            await self._enqueue_when_room(enqueue)
        else:
            try:
                enqueue()
            except BufferError:
                await self._enqueue_when_room(enqueue)
        return await future

    async def _enqueue_when_room(self, enqueue: Callable[[], None]) -> None:
        self._waiting_for_room += 1
        try:
            async with asyncio.timeout(self._queue_full_wait), self._room:
                while True:
                    try:
                        enqueue()
                    except BufferError:
                        await asyncio.sleep(_ROOM_POLL_INTERVAL)
                    else:
                        return
        except TimeoutError:
            raise ProducerQueueFull(
                f"producer queue full for {self._queue_full_wait:.1f}s"
            ) from None
        finally:
            self._waiting_for_room -= 1

    def flush(self, timeout: float) -> int:
        """Wait up to ``timeout`` s for queued records; returns how many are still unsent."""
        return int(self.client.flush(timeout)) if self._producer is not None else 0

    def close(self, timeout: float = 10.0) -> int:
        """Flush (bounded) and stop the poll thread; returns records left unacknowledged."""
        left = self.flush(timeout)
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        return left

    def _poll(self) -> None:
        producer = self._producer
        assert producer is not None
        while not self._stopping.is_set():
            producer.poll(0.05)


def _settle(future: asyncio.Future[Delivered], error: KafkaError | None, message: Message) -> None:
    if future.done():  # the awaiting request was cancelled
        return
    if error is not None:
        future.set_exception(
            ProduceError(error.str(), retriable=error.retriable(), code=error.name())
        )
        return
    topic, partition, offset = message.topic(), message.partition(), message.offset()
    assert topic is not None and partition is not None and offset is not None
    future.set_result(Delivered(topic, partition, offset))
