"""The dispatcher's half of an event's trace, in process with an in-memory exporter."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Producer
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from dispatcher.deadletter import DeadLetterWriter
from dispatcher.destinations import TYPES
from dispatcher.manifest import load_manifest
from dispatcher.worker import DestinationWorker
from eventlog.clients import producer_config
from eventlog.producer import AsyncProducer
from eventlog.record import Event, encode
from eventlog.telemetry import inject_context
from tests.support.processes import write_manifest

pytestmark = pytest.mark.kafka


async def wait_for_span(
    exporter: InMemorySpanExporter, name: str, within: float = 30.0
) -> ReadableSpan:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for span in exporter.get_finished_spans():
            if span.name == name:
                return span
        await asyncio.sleep(0.05)
    raise AssertionError(f"no span {name!r}; got {[s.name for s in exporter.get_finished_spans()]}")


def attempt_number(span: ReadableSpan) -> int:
    number = (span.attributes or {}).get("delivery.attempt")
    assert isinstance(number, int)
    return number


async def test_a_fail_first_delivery_is_one_trace_from_producer_to_commit(
    kafka_bootstrap: str,
    topic_factory: Callable[..., str],
    unique_name: Callable[[str], str],
    tmp_path: Path,
    span_exporter: InMemorySpanExporter,
) -> None:
    topic = topic_factory(partitions=1)
    manifest = load_manifest(
        write_manifest(
            tmp_path / "m.yaml", bootstrap=kafka_bootstrap, topic=topic,
            group_prefix=unique_name("trace"),
            destinations=[{"name": "flaky", "type": "mock", "behavior": "fail_first"}],
            defaults={"retry": {"max_retries": 2, "initial_backoff": "10ms", "jitter": False}},
        ),
        environ={},
    )  # fmt: skip
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span(f"send {topic}", kind=trace.SpanKind.PRODUCER) as sent:
        key, value, headers = encode(Event("e-1", "alice", "hello", int(time.time() * 1000)))
        inject_context(headers)
        producer = Producer(producer_config(kafka_bootstrap))
        producer.produce(topic, key=key, value=value, headers=headers)
        assert producer.flush(30) == 0

    spec = manifest.destinations[0]
    dead_letter_producer = AsyncProducer(producer_config(kafka_bootstrap))
    dead_letter_producer.start()
    worker = DestinationWorker(
        manifest=manifest, spec=spec,
        destination=TYPES[spec.type].create(spec.name, spec.options),
        dead_letters=DeadLetterWriter(dead_letter_producer, manifest.dead_letter_topic),
        bootstrap_servers=kafka_bootstrap, commit_interval=0.1,
    )  # fmt: skip
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    try:
        commit = await wait_for_span(span_exporter, f"commit {topic}")
    finally:
        stop.set()
        await running
        dead_letter_producer.close()

    trace_id = sent.get_span_context().trace_id
    spans = [s for s in span_exporter.get_finished_spans() if s.context.trace_id == trace_id]
    process = next(s for s in spans if s.name == f"process {topic}")
    attempts = sorted((s for s in spans if s.name == "deliver flaky"), key=attempt_number)
    assert process.kind is trace.SpanKind.CONSUMER
    assert process.parent is not None
    assert process.parent.span_id == sent.get_span_context().span_id
    assert process.attributes is not None
    assert process.attributes["messaging.system"] == "kafka"
    assert process.attributes["messaging.kafka.message.key"] == "alice"
    assert process.attributes["messaging.consumer.group.name"] == manifest.group_id(spec)
    assert process.attributes["delivery.outcome"] == "delivered"

    assert [attempt_number(a) for a in attempts] == [1, 2]
    first, second = attempts
    assert first.attributes is not None and second.attributes is not None
    assert first.attributes["delivery.outcome"] == "retryable_error"
    assert first.attributes["delivery.next_backoff_s"] == pytest.approx(0.01)
    assert "failed the first attempt" in str(first.attributes["delivery.error"])
    assert second.attributes["delivery.outcome"] == "delivered"
    for attempt in attempts:
        assert attempt.parent is not None and attempt.parent.span_id == process.context.span_id

    assert commit.context.trace_id == trace_id
    assert commit.parent is not None and commit.parent.span_id == process.context.span_id
    assert commit.attributes is not None
    assert commit.attributes["messaging.kafka.committed_offset"] == 1
