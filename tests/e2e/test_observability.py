"""Issue 7: one trace per event across ingest, Kafka, every attempt and the commit; metrics that
match what destinations received."""

from __future__ import annotations

import asyncio
import re
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from confluent_kafka.admin import AdminClient
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from dispatcher.deadletter import DeadLetterWriter
from dispatcher.destinations import TYPES
from dispatcher.manifest import load_manifest
from dispatcher.park_records import park_topic
from dispatcher.park_store import ParkWriter
from dispatcher.worker import DestinationWorker
from eventlog.clients import admin_config, producer_config
from eventlog.producer import AsyncProducer
from eventlog.topics import TopicSpec, ensure_topic
from ingest import IngestSettings, create_app
from tests.e2e.conftest import Stack
from tests.ingest.conftest import running, wait_ready
from tests.kafka_fixtures import free_port
from tests.support.http_sink import HttpSink
from tests.support.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.support.processes import write_manifest

pytestmark = pytest.mark.kafka


def only(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    matching = [s for s in spans if s.name == name]
    assert len(matching) == 1, (name, [s.name for s in spans])
    return matching[0]


def parent_of(span: ReadableSpan) -> int:
    assert span.parent is not None, span.name
    return span.parent.span_id


def attempt_number(span: ReadableSpan) -> int:
    number = (span.attributes or {}).get("delivery.attempt")
    assert isinstance(number, int)
    return number


async def test_one_event_is_one_trace_from_http_request_to_commit(
    kafka_bootstrap: str,
    topic_factory: Callable[..., str],
    unique_name: Callable[[str], str],
    tmp_path: Path,
    span_exporter: InMemorySpanExporter,
) -> None:
    topic = topic_factory(partitions=2)
    settings = IngestSettings(bootstrap_servers=kafka_bootstrap, topic=topic, partitions=2)
    async with running(create_app(settings)) as client:
        await wait_ready(client)
        response = await client.put("/events", json={"user_id": "alice", "payload": "hi"})
        assert response.status_code == 202

    manifest = load_manifest(
        write_manifest(
            tmp_path / "m.yaml", bootstrap=kafka_bootstrap, topic=topic,
            group_prefix=unique_name("trace"),
            destinations=[{"name": "flaky", "type": "mock", "behavior": "fail_first"}],
            defaults={"retry": {"max_retries": 2, "initial_backoff": "10ms", "jitter": False}},
        ),
        environ={},
    )  # fmt: skip
    spec = manifest.destinations[0]
    admin = AdminClient(admin_config(kafka_bootstrap))
    ensure_topic(admin, TopicSpec(park_topic(topic, spec.name), partitions=2))  # as the app does
    dead_letters = AsyncProducer(producer_config(kafka_bootstrap))
    dead_letters.start()
    worker = DestinationWorker(
        manifest=manifest, spec=spec,
        destination=TYPES[spec.type].create(spec.name, spec.options, spec.concurrency),
        dead_letters=DeadLetterWriter(dead_letters, manifest.dead_letter_topic),
        park=ParkWriter(dead_letters, park_topic(topic, spec.name)),
        bootstrap_servers=kafka_bootstrap, commit_interval=0.1,
    )  # fmt: skip
    stop = asyncio.Event()
    running_worker = asyncio.create_task(worker.run(stop))
    try:
        deadline = time.monotonic() + 30
        while not any(s.name == f"commit {topic}" for s in span_exporter.get_finished_spans()):
            assert time.monotonic() < deadline, "no commit span"
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await running_worker
        dead_letters.close()

    request = next(s for s in span_exporter.get_finished_spans() if s.name == "PUT /events")
    spans = [
        s for s in span_exporter.get_finished_spans()
        if s.context.trace_id == request.context.trace_id
    ]  # fmt: skip
    produce = only(spans, f"send {topic}")
    process = only(spans, f"process {topic}")
    commit = only(spans, f"commit {topic}")
    attempts = sorted((s for s in spans if s.name == "deliver flaky"), key=attempt_number)

    assert request.kind is trace.SpanKind.SERVER
    assert produce.kind is trace.SpanKind.PRODUCER
    assert parent_of(produce) == request.context.span_id
    assert process.kind is trace.SpanKind.CONSUMER
    assert parent_of(process) == produce.context.span_id
    assert [attempt_number(a) for a in attempts] == [1, 2]
    assert [(a.attributes or {}).get("delivery.outcome") for a in attempts] == [
        "retryable_error",
        "delivered",
    ]
    assert all(parent_of(a) == process.context.span_id for a in attempts)
    assert parent_of(commit) == process.context.span_id
    assert (produce.attributes or {})["messaging.kafka.message.key"] == "alice"
    assert (produce.attributes or {})["messaging.destination.partition.id"] == (
        process.attributes or {}
    )["messaging.destination.partition.id"]


@pytest.mark.slow
def test_dispatcher_spans_carry_the_ingest_requests_trace_across_processes(
    stack: Stack, sink: HttpSink
) -> None:
    with OtlpReceiver() as receiver:
        env = {
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        }
        stack.start_ingest(env={**env, "OTEL_SERVICE_NAME": "ingest"})
        manifest = stack.manifest(
            "shard", [{"name": "hook", "type": "http", "url": sink.url("/ok")}]
        )
        stack.start_dispatcher(manifest, env={**env, "OTEL_SERVICE_NAME": "dispatcher"})
        stack.send("alice", "traced")
        assert sink.wait_for(lambda s: len(s.received("/ok")) == 1)

        def complete(spans: list[ReceivedSpan]) -> bool:
            names = {(s.service, s.name) for s in spans}
            return {("ingest", "PUT /events"), ("dispatcher", f"commit {stack.topic}")} <= names

        assert receiver.wait_for(complete), receiver.spans()
        spans = receiver.spans()

    request = next(s for s in spans if s.service == "ingest" and s.name == "PUT /events")
    in_trace = [s for s in spans if s.trace_id == request.trace_id]
    dispatcher_names = {s.name for s in in_trace if s.service == "dispatcher"}
    assert {f"process {stack.topic}", "deliver hook", f"commit {stack.topic}"} <= dispatcher_names
    # The destination was handed the trace too, in the request's traceparent header.
    traceparent = sink.received("/ok")[0].headers["traceparent"]
    assert traceparent.split("-")[1] == request.trace_id
    attempt = next(s for s in in_trace if s.name == "deliver hook")
    assert attempt.attributes["http.response.status_code"] == 204


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus' text format (0 if absent)."""
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}", 1)[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
        body: bytes = response.read()
        return body.decode()


@pytest.mark.slow
def test_metrics_count_what_the_destinations_received(stack: Stack, sink: HttpSink) -> None:
    port = free_port()
    ingest = stack.start_ingest()
    manifest = stack.manifest(
        "shard",
        [
            {"name": "good", "type": "http", "url": sink.url("/ok")},
            # Every first attempt fails: the breaker would call that down; not under test here.
            {"name": "flaky", "type": "http", "url": sink.url("/fail-first"),
             "breaker": {"consecutive_failures": 1000, "min_volume": 1000}},
            {
                "name": "stuck", "type": "http", "url": sink.url("/fail"),
                "retry": {"max_retries": 1000, "initial_backoff": "100ms", "max_backoff": "100ms"},
            },
        ],
    )  # fmt: skip
    stack.start_dispatcher(manifest, args=["--metrics-port", str(port)])
    for i in range(12):
        stack.send(f"user-{i % 3}", f"p{i}")
    assert sink.wait_for(
        lambda s: (
            len(s.received("/ok")) == 12
            and len(s.received("/fail-first")) == 24
            # every user's first event is being retried at "stuck"
            and {r.user_id for r in s.received("/fail")} == {"user-0", "user-1", "user-2"}
        )
    )

    url = f"http://127.0.0.1:{port}/metrics"
    deadline = time.monotonic() + 10
    # The sink records a request on arrival, the dispatcher counts it once answered: wait for
    # both destinations' counts.
    while not (
        metric(text := scrape(url), "delivery_events_total", destination="flaky") >= 12
        and metric(text, "delivery_latency_seconds_count", destination="good") >= 12
        and metric(text, "delivery_in_flight", destination="good") == 0
    ):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    text = scrape(url)
    assert metric(text, "delivery_events_total", destination="good", result="delivered") == 12
    assert metric(text, "delivery_events_total", destination="flaky", result="delivered") == 12
    assert (
        metric(text, "delivery_attempts_total", destination="flaky", outcome="retryable_error")
        == len([r for r in sink.received("/fail-first")]) - 12
    )
    assert metric(text, "delivery_retries_total", destination="flaky") == 12
    assert metric(text, "delivery_latency_seconds_count", destination="good") == 12
    assert metric(text, "delivery_in_flight", destination="good") == 0
    # Lag, reported every commit interval: nothing left for "good", everything for "stuck"
    # (each user's first event is still being retried, the rest wait behind it).
    assert metric(text, "delivery_in_flight", destination="stuck") == 3

    def lag(destination: str) -> float:
        text = scrape(url)
        return sum(
            metric(text, "consumer_lag", destination=destination, partition=str(p))
            for p in range(stack.partitions)
        )

    deadline = time.monotonic() + 10
    while (lag("good"), lag("stuck")) != (0, 12):
        assert time.monotonic() < deadline, (lag("good"), lag("stuck"))
        time.sleep(0.2)

    ingest_metrics = scrape(f"{ingest.url}/metrics")
    assert metric(ingest_metrics, "ingest_events_accepted_total") == 12
    bad = httpx.put(
        f"{ingest.url}/events", content=b"{", headers={"Content-Type": "application/json"}
    )
    assert bad.status_code == 400
    assert metric(scrape(f"{ingest.url}/metrics"), "ingest_requests_rejected_total",
                  reason="malformed-json") == 1  # fmt: skip
