"""Fixtures shared by the whole suite: one broker per session, a topic and group per test."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from eventlog.clients import admin_config
from eventlog.topics import TopicSpec, ensure_topic
from localkafka import NativeBroker
from tests.kafka_fixtures import kafka_for_tests, throwaway_broker


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap address of a real broker for this test session."""
    with kafka_for_tests() as bootstrap:
        yield bootstrap


@pytest.fixture(name="throwaway_broker")
def throwaway_broker_fixture(tmp_path: Path) -> Iterator[NativeBroker]:
    """A broker of this test's own, to stop or kill (the session's broker must keep running)."""
    with throwaway_broker(tmp_path / "kafka") as broker:
        yield broker


@pytest.fixture(scope="session")
def kafka_admin(kafka_bootstrap: str) -> AdminClient:
    return AdminClient(admin_config(kafka_bootstrap))


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """Names no other test (or earlier run against the same cluster) uses."""
    test = request.node.name.split("[")[0].replace("_", "-")[:40]

    def make(prefix: str) -> str:
        return f"{prefix}.{test}.{uuid.uuid4().hex[:8]}"

    return make


@pytest.fixture
def topic_factory(
    kafka_admin: AdminClient, unique_name: Callable[[str], str]
) -> Callable[..., str]:
    """Create a fresh topic for this test; returns its name."""

    def make(*, partitions: int = 3, prefix: str = "events") -> str:
        name = unique_name(prefix)
        ensure_topic(kafka_admin, TopicSpec(name=name, partitions=partitions))
        return name

    return make


@pytest.fixture(scope="session")
def _tracing_provider() -> InMemorySpanExporter:
    """One SDK tracer provider for the session (OpenTelemetry allows setting it once)."""
    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@pytest.fixture
def span_exporter(_tracing_provider: InMemorySpanExporter) -> Iterator[InMemorySpanExporter]:
    """Spans finished during this test, recorded in memory."""
    _tracing_provider.clear()
    yield _tracing_provider
    _tracing_provider.clear()
