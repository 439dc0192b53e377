"""Writing accepted events to the events topic: a request is answered only after Kafka
acknowledged its events (``acks=all``), and never waits for that longer than ``ack_timeout``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

from confluent_kafka import Producer
from opentelemetry import trace

from eventlog import semconv
from eventlog.producer import Delivered, ProduceError, ProducerQueueFull
from eventlog.record import Event, Headers, encode
from eventlog.telemetry import inject_context, tracing_enabled
from ingest.exceptions import Refused, Unavailable
from ingest.refusals import Disposition, disposition
from ingest.stats import IngestStats
from ingest.write_health import WriteHealth

__all__ = ["HEADER_INGEST_KEY", "EventProducer", "EventPublisher", "Failure"]

HEADER_INGEST_KEY = "ingest-key"
"""Record header naming the API key (its name, never the key) that wrote the event."""

Failure = Unavailable | Refused
"""Why one event was not stored: try again later, or Kafka will not take it."""

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
        writes: WriteHealth | None = None,
        on_success: Callable[[], None] = lambda: None,
    ) -> None:
        self._producer = producer
        self._topic = topic
        self._ack_timeout = ack_timeout
        self._retry_after = retry_after
        self._stats = stats
        self._writes = writes or WriteHealth(hold=0.0)
        self._on_success = on_success
        self._stopping = False
        self._failures_in_spell = 0
        self._traced = tracing_enabled()

    def stop_accepting(self) -> None:
        """From now on every publish is refused (shutdown has begun)."""
        self._stopping = True

    async def publish(self, event: Event, *, key_name: str | None = None) -> Delivered:
        """Write one event; return where Kafka stored it, or raise ``Unavailable`` (try again
        later) or ``Refused`` (Kafka will not store it). ``key_name``: the API key's name, for
        the record's ``ingest-key`` header."""
        self._refuse_if_stopping()
        with self._in_flight():
            try:
                async with asyncio.timeout(self._ack_timeout):
                    delivered = await self._produce(event, key_name)
            except (TimeoutError, ProduceError) as exc:
                failure = self._failure(exc)
                self._record_failures([failure], event)
                raise failure from exc
        self._record_successes(1)
        return delivered

    async def publish_batch(
        self, events: Sequence[Event], *, key_name: str | None = None
    ) -> list[Delivered | Failure]:
        """Write events in order; each result is where Kafka stored it or why it did not.

        When Kafka acknowledged none of them, raises instead: ``Refused`` if Kafka refused
        each one for good, else ``Unavailable``.
        """
        self._refuse_if_stopping()
        # Tasks take their first step in creation order, and the producer enqueues records in
        # the order of its produce() calls even when some must wait for room in a full queue;
        # so the records are enqueued (and, the producer being idempotent, stored) in the
        # batch's order.
        with self._in_flight():
            tasks = [asyncio.ensure_future(self._produce(event, key_name)) for event in events]
            _, pending = await asyncio.wait(tasks, timeout=self._ack_timeout)
            for task in pending:
                task.cancel()
        results: list[Delivered | Failure] = []
        failures: list[Failure] = []
        first_failed: Event | None = None
        for event, task in zip(events, tasks, strict=True):
            error = TimeoutError() if task in pending else task.exception()
            if error is None:
                results.append(task.result())
                continue
            failure = self._failure(error)
            results.append(failure)
            failures.append(failure)
            first_failed = first_failed or event
        if first_failed is None:
            self._record_successes(len(results))
            return results
        self._record_failures(failures, first_failed)
        if len(failures) < len(results):
            self._record_successes(len(results) - len(failures))
            return results
        retry_later = [f for f in failures if isinstance(f, Unavailable)]
        refused = [f for f in failures if isinstance(f, Refused)]
        if not retry_later:
            first = refused[0]
            raise Refused(first.kind, f"none of the {len(failures)} events was stored: {first}")
        raise Unavailable(
            f"none of the {len(failures)} events was acknowledged: {retry_later[0].detail}",
            reason=retry_later[0].reason,
            retry_after=self._retry_after,
        )

    async def _produce(self, event: Event, key_name: str | None) -> Delivered:
        key, value, headers = encode(event)
        if key_name is not None:
            headers.append((HEADER_INGEST_KEY, key_name.encode()))
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

    @contextlib.contextmanager
    def _in_flight(self) -> Iterator[None]:
        # Readiness counts a request's writes as failing once they wait too long, before they
        # time out (``ingest.write_health``).
        token = self._writes.started(time.monotonic())
        try:
            yield
        finally:
            self._writes.ended(token)

    def _refuse_if_stopping(self) -> None:
        if self._stopping:
            raise Unavailable(
                "ingest is shutting down; send to another instance",
                reason="stopping",
                retry_after=self._retry_after,
            )

    def _failure(self, exc: BaseException) -> Failure:
        if isinstance(exc, ProducerQueueFull):
            reason, detail = "busy", "the Kafka producer queue is full; retry shortly"
        elif isinstance(exc, ProduceError):
            verdict = disposition(exc.code)
            if verdict is Disposition.TOO_LARGE:
                return Refused(
                    "event-too-large",
                    f"Kafka refused the event as larger than the topic takes (its "
                    f"max.message.bytes): {exc}",
                )
            if verdict is Disposition.REFUSED:
                return Refused("kafka-refused", f"Kafka refused the event ({exc.code}): {exc}")
            reason, detail = "kafka-error", f"Kafka did not store the event: {exc}"
        else:
            reason = "kafka-timeout"
            detail = f"Kafka did not acknowledge the event within {self._ack_timeout:g}s"
        return Unavailable(detail, reason=reason, retry_after=self._retry_after)

    def _record_failures(self, failures: Sequence[Failure], event: Event) -> None:
        unavailable = [f for f in failures if isinstance(f, Unavailable)]
        if unavailable:
            self._writes.failed(time.monotonic(), unavailable[0].reason)
        for refused in failures:
            if isinstance(refused, Refused) and refused.kind == "kafka-refused":
                # No write of this kind can succeed.
                self._writes.failed(time.monotonic(), refused.kind)
                # Not the client's doing and not transient: an operator has to act.
                log.error(
                    "kafka refused an event; it was answered 500 id=%s user=%r detail=%s",
                    event.id,
                    event.user_id,
                    refused.detail,
                )
                break
        if not unavailable:
            return
        # One warning per spell of failures, not one per event: while Kafka is away every
        # request fails the same way. user_id is the client's text: quoted, so it cannot
        # forge a log line.
        example = unavailable[0]
        level = logging.DEBUG if self._failures_in_spell else logging.WARNING
        log.log(
            level,
            "events not acknowledged; answering 503 until Kafka acknowledges again "
            "count=%d reason=%s id=%s user=%r detail=%s",
            len(unavailable),
            example.reason,
            event.id,
            event.user_id,
            example.detail,
        )
        self._failures_in_spell += len(unavailable)
        self._stats.unacknowledged(len(unavailable))

    def _record_successes(self, count: int) -> None:
        self._stats.accepted(count)
        if self._failures_in_spell:
            log.info(
                "kafka acknowledges events again unacknowledged_meanwhile=%d",
                self._failures_in_spell,
            )
            self._failures_in_spell = 0
        self._writes.succeeded(time.monotonic())
        self._on_success()
