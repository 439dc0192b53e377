from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from eventlog.exceptions import EventDeliveryError
from eventlog.record import Headers
from eventlog.telemetry import configure_tracing, extract_context, inject_context


def test_an_unknown_exporter_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin")
    with pytest.raises(EventDeliveryError, match="OTEL_TRACES_EXPORTER: unknown exporter 'zipkin'"):
        configure_tracing("test")


def test_no_exporter_means_no_tracing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    assert configure_tracing("test") is False
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert configure_tracing("test") is False


def test_the_context_survives_a_trip_through_record_headers(
    span_exporter: InMemorySpanExporter,
) -> None:
    tracer = trace.get_tracer("test")
    headers: Headers = [("event-id", b"e1")]
    with tracer.start_as_current_span("send") as span:
        inject_context(headers)
    names = [name for name, _ in headers]
    assert "traceparent" in names
    with tracer.start_as_current_span("process", context=extract_context(headers)) as child:
        pass
    assert child.get_span_context().trace_id == span.get_span_context().trace_id
    assert span_exporter.get_finished_spans()[-1].parent.span_id == span.get_span_context().span_id  # type: ignore[union-attr]


def test_headers_without_context_give_an_empty_one() -> None:
    assert (
        trace.get_current_span(extract_context([("event-id", b"x")])).get_span_context().trace_id
        == 0
    )
