"""A loopback OTLP/HTTP trace receiver that counts spans and drops them: where a traced
service exports during a benchmark, in a process of its own (``python -m
benchmarks.span_counter``), so that receiving costs neither the service nor the load client.

It answers ``POST /v1/traces`` (protobuf, as ``http/protobuf`` exporters send) with 200 and
``GET /stats`` with what arrived so far.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from benchmarks.loopback import HelperClient, helper, helper_command

__all__ = ["SpanCounter", "SpanCounts", "span_counter"]


@dataclass(frozen=True, slots=True)
class SpanCounts:
    """What the receiver took in so far."""

    spans: int
    exports: int
    """Export requests (batches)."""

    def __sub__(self, earlier: SpanCounts) -> SpanCounts:
        return SpanCounts(self.spans - earlier.spans, self.exports - earlier.exports)

    def __add__(self, other: SpanCounts) -> SpanCounts:
        return SpanCounts(self.spans + other.spans, self.exports + other.exports)


def application() -> web.Application:
    counts = {"spans": 0, "exports": 0}

    async def traces(request: web.Request) -> web.Response:
        export = ExportTraceServiceRequest()
        export.ParseFromString(await request.read())
        counts["exports"] += 1
        counts["spans"] += sum(
            len(scope.spans) for resource in export.resource_spans for scope in resource.scope_spans
        )
        return web.Response(status=200, content_type="application/x-protobuf", body=b"")

    async def stats(_: web.Request) -> web.Response:
        return web.json_response(counts)

    app = web.Application(client_max_size=64 << 20)
    app.router.add_post("/v1/traces", traces)
    app.router.add_get("/stats", stats)
    return app


class SpanCounter(HelperClient):
    """The benchmark's view of the receiver process; its ``base_url`` is what
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` names (the exporter appends ``/v1/traces``)."""

    def counts(self) -> SpanCounts:
        body = self.http.get("/stats").raise_for_status().json()
        return SpanCounts(spans=body["spans"], exports=body["exports"])


def span_counter(workdir: Path) -> AbstractContextManager[SpanCounter]:
    """A running receiver, stopped on leaving the block."""
    return helper("span-counter", __name__, workdir, SpanCounter)


main = helper_command(application, "Count the spans OTLP/HTTP exporters send, then drop them.")

if __name__ == "__main__":
    main()
