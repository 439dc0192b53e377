"""Writing accepted events to the events topic: a request is answered only after Kafka
acknowledged its events (``acks=all``), and never waits for that longer than ``ack_timeout``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from confluent_kafka import Producer
from opentelemetry import trace

from eventlog import semconv
from eventlog.producer import Delivered, ProduceError, ProducerQueueFull
from eventlog.record import Event, Headers, encode
from eventlog.telemetry import inject_context, tracing_enabled
from ingest.exceptions import Unavailable
from ingest.stats import IngestStats

__all__ = ["EventProducer", "EventPublisher"]

log = logging.getLogger(__name__)
tracer = trace.get_tracer("ingest")


class EventProducer(Protocol):
    """What ingest needs of a producer; ``eventlog.producer.AsyncProducer`` is the real one
    (a wrapper, e.g. one that adds tracing, can stand in for it)."""

    @property
    def client(self) -> Producer: ...

    def start(self) -> None: ...

    async def produce(
        self, topic: str, *, key: bytes, value: bytes, headers: Headers | None = None
    ) -> Delivered: ...

    def close(self, timeout: float = 10.0) -> int: ...


class EventPublisher:
    """Sends events to ``topic`` and turns every way of not getting an acknowledgement in time
    into ``Unavailable`` (HTTP 503), so nothing unacknowledged is ever answered 2xx."""

    def __init__(
        self,
        producer: EventProducer,
        *,
        topic: str,
        ack_timeout: float,
        retry_after: int,
        stats: IngestStats,
        on_success: Callable[[], None] = lambda: None,
    ) -> None:
        self._producer = producer
        self._topic = topic
        self._ack_timeout = ack_timeout
        self._retry_after = retry_after
        self._stats = stats
        self._on_success = on_success
        self._stopping = False
        self._failures_in_spell = 0
        self._traced = tracing_enabled()

    def stop_accepting(self) -> None:
        """From now on every publish is refused (shutdown has begun)."""
        self._stopping = True

    async def publish(self, event: Event) -> Delivered:
        """Write one event; return where Kafka stored it, or raise ``Unavailable``."""
        self._refuse_if_stopping()
        try:
            async with asyncio.timeout(self._ack_timeout):
                delivered = await self._produce(event)
        except (TimeoutError, ProduceError) as exc:
            unavailable = self._unavailable(exc)
            self._record_failures(1, unavailable, event)
            raise unavailable from exc
        self._record_successes(1)
        return delivered

    async def publish_batch(self, events: Sequence[Event]) -> list[Delivered | Unavailable]:
        """Write events in order; each result is where Kafka stored it or why it did not.

        Raises ``Unavailable`` instead when Kafka acknowledged none of them.
        """
        self._refuse_if_stopping()
        # Tasks take their first step in creation order, and the producer enqueues records in
        # the order of its produce() calls even when some must wait for room in a full queue;
        # so the records are enqueued (and, the producer being idempotent, stored) in the
        # batch's order.
        tasks = [asyncio.ensure_future(self._produce(event)) for event in events]
        _, pending = await asyncio.wait(tasks, timeout=self._ack_timeout)
        for task in pending:
            task.cancel()
        results: list[Delivered | Unavailable] = []
        first_failure: tuple[Unavailable, Event] | None = None
        for event, task in zip(events, tasks, strict=True):
            error = TimeoutError() if task in pending else task.exception()
            if error is None:
                results.append(task.result())
                continue
            unavailable = self._unavailable(error)
            results.append(unavailable)
            first_failure = first_failure or (unavailable, event)
        if first_failure is None:
            self._record_successes(len(results))
            return results
        failed = sum(isinstance(r, Unavailable) for r in results)
        self._record_failures(failed, *first_failure)
        if failed < len(results):
            self._record_successes(len(results) - failed)
            return results
        raise Unavailable(
            f"none of the {failed} events was acknowledged: {first_failure[0].detail}",
            reason=first_failure[0].reason,
            retry_after=self._retry_after,
        )

    async def _produce(self, event: Event) -> Delivered:
        key, value, headers = encode(event)
        if not self._traced:
            return await self._producer.produce(self._topic, key=key, value=value, headers=headers)
        with tracer.start_as_current_span(
            f"send {self._topic}",
            kind=trace.SpanKind.PRODUCER,
            attributes={
                semconv.MESSAGING_SYSTEM: semconv.KAFKA,
                semconv.MESSAGING_DESTINATION: self._topic,
                semconv.MESSAGING_OPERATION_TYPE: "send",
                semconv.MESSAGING_KAFKA_KEY: event.user_id,
                semconv.MESSAGING_MESSAGE_ID: event.id,
            },
        ) as span:
            # The record carries this span's context: consumers continue the same trace.
            inject_context(headers)
            delivered = await self._producer.produce(
                self._topic, key=key, value=value, headers=headers
            )
            if span.is_recording():
                span.set_attribute(semconv.MESSAGING_PARTITION, str(delivered.partition))
                span.set_attribute(semconv.MESSAGING_KAFKA_OFFSET, delivered.offset)
        return delivered

    def _refuse_if_stopping(self) -> None:
        if self._stopping:
            raise Unavailable(
                "ingest is shutting down; send to another instance",
                reason="stopping",
                retry_after=self._retry_after,
            )

    def _unavailable(self, exc: BaseException) -> Unavailable:
        if isinstance(exc, ProducerQueueFull):
            reason, detail = "busy", "the Kafka producer queue is full; retry shortly"
        elif isinstance(exc, ProduceError):
            reason, detail = "kafka-error", f"Kafka did not store the event: {exc}"
        else:
            reason = "kafka-timeout"
            detail = f"Kafka did not acknowledge the event within {self._ack_timeout:g}s"
        return Unavailable(detail, reason=reason, retry_after=self._retry_after)

    def _record_failures(self, count: int, example: Unavailable, event: Event) -> None:
        # One warning per spell of failures, not one per event: while Kafka is away every
        # request fails the same way. user_id is the client's text: quoted, so it cannot
        # forge a log line.
        level = logging.DEBUG if self._failures_in_spell else logging.WARNING
        log.log(
            level,
            "events not acknowledged; answering 503 until Kafka acknowledges again "
            "count=%d reason=%s id=%s user=%r detail=%s",
            count,
            example.reason,
            event.id,
            event.user_id,
            example.detail,
        )
        self._failures_in_spell += count
        self._stats.unacknowledged(count)

    def _record_successes(self, count: int) -> None:
        self._stats.accepted(count)
        if self._failures_in_spell:
            log.info(
                "kafka acknowledges events again unacknowledged_meanwhile=%d",
                self._failures_in_spell,
            )
            self._failures_in_spell = 0
        self._on_success()
