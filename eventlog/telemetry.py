"""OpenTelemetry set-up for both services, configured the standard way (``OTEL_*`` variables).

- ``OTEL_TRACES_EXPORTER``: ``otlp``, ``console`` or ``none`` (the default: the API's no-op
  tracer stays in place, so tracing costs next to nothing).
- ``OTEL_SERVICE_NAME``, ``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_PROTOCOL``
  (``http/protobuf`` by default, or ``grpc``), ``OTEL_TRACES_SAMPLER`` / ``_ARG``: as the
  OpenTelemetry SDK documents them.

Trace context crosses Kafka as W3C ``traceparent``/``tracestate`` record headers.
Metrics are always collected and exposed in Prometheus' text format.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from opentelemetry import metrics, propagate, trace
from opentelemetry.context import Context
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

from eventlog.exceptions import EventDeliveryError
from eventlog.record import Headers

__all__ = [
    "configure_metrics",
    "configure_tracing",
    "extract_context",
    "inject_context",
    "shutdown_tracing",
    "tracing_enabled",
]

TRACE_HEADERS = ("traceparent", "tracestate")


def configure_tracing(default_service_name: str) -> bool:
    """Install an SDK tracer provider if ``OTEL_TRACES_EXPORTER`` asks for one.

    Returns whether tracing is on. Raises ``EventDeliveryError`` for an exporter it cannot
    build, naming the variable.
    """
    names = [n.strip() for n in os.environ.get("OTEL_TRACES_EXPORTER", "none").split(",")]
    names = [n for n in names if n and n != "none"]
    if not names:
        return False
    exporters = [_exporter(name) for name in names]  # refuses unknown names first
    if tracing_enabled():
        return True  # already configured in this process
    service = os.environ.get("OTEL_SERVICE_NAME") or default_service_name
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return True


def tracing_enabled() -> bool:
    """Whether spans are collected in this process (an SDK tracer provider is installed)."""
    return isinstance(trace.get_tracer_provider(), TracerProvider)


def shutdown_tracing() -> None:
    """Export what is buffered (bounded by the SDK's own timeouts) before the process exits."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.shutdown()


def configure_metrics() -> None:
    """Collect OpenTelemetry metrics into prometheus_client's registry (served by the caller)."""
    if isinstance(metrics.get_meter_provider(), MeterProvider):
        return
    metrics.set_meter_provider(MeterProvider(metric_readers=[PrometheusMetricReader()]))


def inject_context(headers: Headers) -> None:
    """Append the current trace context to Kafka record headers (nothing when not tracing)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    headers.extend((key, value.encode()) for key, value in carrier.items())


def extract_context(
    headers: Sequence[tuple[str, str | bytes | None]] | Mapping[str, str | bytes | None],
) -> Context:
    """The trace context carried by a record's headers (empty if none, or unreadable).

    Headers come from whoever wrote the record: one that is not ASCII is not trace context,
    and is ignored rather than allowed to fail the event's delivery.
    """
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    carrier: dict[str, str] = {}
    for key, value in pairs:
        if key not in TRACE_HEADERS or value is None:
            continue
        try:
            text = value.decode("ascii") if isinstance(value, bytes) else value
        except UnicodeDecodeError:
            return Context()
        if not text.isascii():
            return Context()
        carrier[key] = text
    return propagate.extract(carrier) if carrier else Context()


def _exporter(name: str) -> SpanExporter:
    if name == "console":
        return ConsoleSpanExporter()
    if name == "otlp":
        protocol = os.environ.get(
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        )
        if protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # noqa: PLC0415
                OTLPSpanExporter as GrpcExporter,
            )

            return GrpcExporter()
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
            OTLPSpanExporter as HttpExporter,
        )

        return HttpExporter()
    raise EventDeliveryError(
        f"OTEL_TRACES_EXPORTER: unknown exporter {name!r}; use otlp, console or none"
    )
