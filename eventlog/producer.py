"""An asyncio face on confluent-kafka's producer: ``await produce(...)`` returns once the broker
acknowledged the record (``acks=all``), without blocking the event loop.

librdkafka reports deliveries through callbacks served by ``poll()``; one background thread
polls and hands each result to the loop with ``call_soon_threadsafe``. (The ``aio`` producer
of confluent-kafka 2.16 cannot send headers, which carry the event id and trace context.)
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from eventlog.exceptions import EventDeliveryError
from eventlog.record import Headers

__all__ = ["AsyncProducer", "Delivered", "ProduceError", "ProducerQueueFull"]


class ProduceError(EventDeliveryError):
    """Kafka did not acknowledge a record; ``retriable`` says whether trying again may work."""

    def __init__(self, message: str, *, retriable: bool) -> None:
        super().__init__(message)
        self.retriable = retriable


class ProducerQueueFull(ProduceError):
    """The local queue stayed full for the whole wait: back off and try later."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retriable=True)


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

        ``partition`` places the record explicitly (the dispatcher's park topics mirror the
        events topic's partitions); by default the partitioner places it by key.

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

        deadline = loop.time() + self._queue_full_wait
        while True:
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
                break
            except BufferError:
                if loop.time() >= deadline:
                    raise ProducerQueueFull(
                        f"producer queue full for {self._queue_full_wait:.1f}s"
                    ) from None
                await asyncio.sleep(0.01)
            except KafkaException as exc:
                error: KafkaError = exc.args[0]
                raise ProduceError(error.str(), retriable=error.retriable()) from exc
        return await future

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
        future.set_exception(ProduceError(error.str(), retriable=error.retriable()))
        return
    topic, partition, offset = message.topic(), message.partition(), message.offset()
    assert topic is not None and partition is not None and offset is not None
    future.set_result(Delivered(topic, partition, offset))
