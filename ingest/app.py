"""The ingest app factory: wires settings, Kafka producer, publisher, routes and error mapping
into a Litestar app, and runs start-up and shutdown in order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from litestar import Litestar
from litestar.openapi import OpenAPIConfig
from litestar.plugins.opentelemetry import OpenTelemetryConfig, OpenTelemetryPlugin
from opentelemetry.metrics import NoOpMeterProvider

from eventlog.clients import admin_config, producer_config
from eventlog.exceptions import EventDeliveryError
from eventlog.producer import AsyncProducer
from eventlog.telemetry import tracing_enabled
from eventlog.threads import run_in_daemon_thread
from eventlog.topics import ensure_topic
from ingest.authentication import Authentication
from ingest.backpressure import RequestSlots
from ingest.key_ring import KeyRing
from ingest.problems import exception_handlers
from ingest.publisher import EventProducer, EventPublisher
from ingest.rate_limit import RateLimits
from ingest.readiness import KafkaWatch, Readiness
from ingest.routes import RouteContext, routes
from ingest.settings import IngestSettings
from ingest.stats import IngestStats
from ingest.write_health import WriteHealth

__all__ = ["create_app"]

log = logging.getLogger("ingest")

_TOPIC_ATTEMPT_TIMEOUT = 5.0
_TOPIC_RETRY_MAX_DELAY = 5.0


def create_app(settings: IngestSettings, *, producer: EventProducer | None = None) -> Litestar:
    """A Litestar app serving ingest's API with ``settings``.

    Nothing touches the network until the app starts (its lifespan), so building one is cheap
    and works without Kafka. ``producer`` replaces the ``AsyncProducer`` built from the
    settings (e.g. to wrap it); ingest calls its ``start()`` and ``close()``.
    """
    stats = IngestStats()
    ring = KeyRing(Path(settings.api_keys_file)) if settings.api_keys_file else None
    authentication = Authentication(ring, RateLimits(settings.key_rate, settings.key_burst), stats)
    watch = KafkaWatch(settings.bootstrap_servers)
    writes = WriteHealth(hold=settings.readiness_hold, overdue=settings.readiness_overdue)
    if producer is None:
        config = producer_config(
            settings.bootstrap_servers,
            security=settings.kafka_security,
            **settings.producer_overrides(),
            error_cb=watch.on_error,
        )
        producer = AsyncProducer(config, queue_full_wait=settings.backpressure_wait)
    publisher = EventPublisher(
        producer,
        topic=settings.topic,
        ack_timeout=settings.ack_timeout,
        retry_after=settings.retry_after,
        stats=stats,
        writes=writes,
        on_success=watch.on_success,
    )
    readiness = Readiness(
        producer,
        watch,
        topic=settings.topic,
        timeout=settings.readiness_timeout,
        writes=writes,
    )
    slots = RequestSlots(
        max_concurrent=settings.max_concurrent_requests,
        wait=settings.backpressure_wait,
        retry_after=settings.retry_after,
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        producer.start()
        topic_task = asyncio.create_task(_ensure_topic_until_done(settings, readiness))
        reloading = _reload_on_sighup(ring)
        if ring is None:
            log.warning(
                "ingest is open: no API keys configured (--api-keys-file), so anyone who can"
                " reach it can write events for any user"
            )
        log.info(
            "ingest started topic=%s bootstrap=%s max_concurrent_requests=%d ack_timeout=%gs",
            settings.topic,
            settings.bootstrap_servers,
            settings.max_concurrent_requests,
            settings.ack_timeout,
        )
        try:
            yield
        finally:
            # The server has stopped accepting and answered in-flight requests by now.
            readiness.stopping = True
            if reloading:
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            publisher.stop_accepting()
            topic_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await topic_task
            unflushed = await asyncio.to_thread(producer.close, settings.shutdown_timeout)
            log.info(
                "ingest stopped events_accepted=%d events_unacknowledged=%d "
                "requests_rejected=%d requests_unavailable=%d unflushed=%d",
                stats.events_accepted,
                stats.events_unacknowledged,
                stats.requests_rejected,
                stats.requests_unavailable,
                unflushed,
            )

    app = Litestar(
        route_handlers=routes(
            RouteContext(settings, publisher, slots, readiness, watch, authentication)
        ),
        plugins=_tracing_plugins(),
        exception_handlers=exception_handlers(stats),
        lifespan=[lifespan],
        openapi_config=OpenAPIConfig(
            title="ingest",
            version="1",
            description="Takes users' events over HTTP and stores them in Kafka.",
            path="/schema",
        ),
        logging_config=None,
        debug=False,
    )
    app.state.stats = stats
    return app


def _reload_on_sighup(ring: KeyRing | None) -> bool:
    """Whether SIGHUP now re-reads the key file (only the main thread may handle signals)."""
    if ring is None:
        return False
    try:
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, ring.reload)
    except (NotImplementedError, RuntimeError, ValueError):
        return False  # still re-read when the file changes
    return True


def _tracing_plugins() -> list[OpenTelemetryPlugin]:
    # A server span per request, only when an SDK tracer provider is installed: with tracing
    # off, requests should not pay for the ASGI instrumentation at all.
    if not tracing_enabled():
        return []
    config = OpenTelemetryConfig(
        exclude=["/healthz", "/readyz", "/metrics", "/schema"],
        exclude_spans=["receive", "send"],
        # Spans only: the ASGI instrumentation's per-request HTTP metrics cost about a tenth of
        # a traced request's CPU, and ingest counts what matters itself.
        meter_provider=NoOpMeterProvider(),
    )
    return [OpenTelemetryPlugin(config)]


async def _ensure_topic_until_done(settings: IngestSettings, readiness: Readiness) -> None:
    # Kafka may still be starting (``up`` starts it beside ingest): retry with a clear line
    # rather than fail, and meanwhile answer /readyz with 503.
    # Its failures come back as exceptions, logged below once per attempt.
    admin = AdminClient(
        admin_config(settings.bootstrap_servers, security=settings.kafka_security, log_level=0)
    )
    delay = 0.5
    attempt = 1
    while True:
        try:
            state = await run_in_daemon_thread(
                lambda: ensure_topic(admin, settings.topic_spec, timeout=_TOPIC_ATTEMPT_TIMEOUT)
            )
        except (EventDeliveryError, KafkaException, TimeoutError) as exc:
            log.warning(
                "kafka not reachable yet; retrying topic=%s bootstrap=%s attempt=%d "
                "retry_in=%.1fs error=%s",
                settings.topic,
                settings.bootstrap_servers,
                attempt,
                delay,
                exc,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, _TOPIC_RETRY_MAX_DELAY)
            attempt += 1
            continue
        readiness.topic_ensured = True
        log.info(
            "topic ready topic=%s created=%s partitions=%d retention_ms=%d",
            settings.topic,
            state.created,
            state.partitions,
            state.retention_ms,
        )
        return
