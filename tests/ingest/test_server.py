"""Ingest under a real uvicorn server (in this process), its producer held at a gate so a
request stays in flight exactly as long as the test needs: graceful shutdown, the request
bound, the acknowledgement timeout and bodies streamed without Content-Length."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import httpx
import pytest
import uvicorn

from eventlog.clients import producer_config
from eventlog.producer import AsyncProducer
from ingest import IngestSettings, create_app
from tests.ingest.conftest import MAX_EVENT_BYTES, GatedProducer, end_offsets, read_topic
from tests.ingest.waiting import until, until_async
from tests.kafka_fixtures import free_port

pytestmark = pytest.mark.kafka

EVENT = {"user_id": "carol", "payload": "in flight"}


@contextlib.asynccontextmanager
async def serving(
    settings: IngestSettings, gated: GatedProducer
) -> AsyncIterator[tuple[httpx.AsyncClient, uvicorn.Server, asyncio.Task[None]]]:
    port = free_port()
    config = uvicorn.Config(
        create_app(settings, producer=gated),
        host="127.0.0.1",
        port=port,
        lifespan="on",
        log_config=None,
        timeout_graceful_shutdown=settings.drain_seconds,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:

        async def ready() -> bool:
            with contextlib.suppress(httpx.TransportError):
                return (await client.get("/readyz")).status_code == 200
            return False

        try:
            await until_async(ready, within=30, interval=0.05, what="ingest ready")
            yield client, server, task
        finally:
            gated.gate.set()
            server.should_exit = True
            await asyncio.wait_for(task, timeout=30)


@pytest.fixture
def gated(ingest_settings: IngestSettings) -> GatedProducer:
    config = producer_config(
        ingest_settings.bootstrap_servers, **ingest_settings.producer_overrides()
    )
    return GatedProducer(AsyncProducer(config))


def _refuses_connections(port: int) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with httpx.Client() as client:
                client.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
        except httpx.ConnectError:
            return True
        return False

    return check


async def test_shutdown_stops_accepting_answers_in_flight_requests_and_flushes(
    ingest_settings: IngestSettings, gated: GatedProducer
) -> None:
    async with serving(ingest_settings, gated) as (client, server, serve_task):
        in_flight = asyncio.create_task(client.put("/events", json=EVENT))
        await until(lambda: gated.waiting == 1, within=10, what="the request reaches Kafka")

        server.should_exit = True  # what SIGTERM does
        port = server.config.port
        refused = _refuses_connections(port)
        await until_async(
            lambda: asyncio.to_thread(refused), within=10, interval=0.05, what="no new clients"
        )
        assert not in_flight.done()
        assert not serve_task.done()  # still waiting for the in-flight request

        gated.gate.set()
        response = await asyncio.wait_for(in_flight, timeout=10)
        assert response.status_code == 202, response.text
        await asyncio.wait_for(serve_task, timeout=30)

    [record] = read_topic(ingest_settings.bootstrap_servers, ingest_settings.topic, 1)
    assert record.offset() == response.json()["offset"]


async def test_no_free_slot_within_the_wait_is_503_with_retry_after(
    ingest_settings: IngestSettings, gated: GatedProducer
) -> None:
    settings = replace(ingest_settings, max_concurrent_requests=1, backpressure_wait=0.2)
    async with serving(settings, gated) as (client, _, _):
        holder = asyncio.create_task(client.put("/events", json=EVENT))
        await until(lambda: gated.waiting == 1, within=10, what="the only slot is taken")

        loop = asyncio.get_running_loop()
        started = loop.time()
        refused = await client.put("/events", json=EVENT)
        assert loop.time() - started < 0.2 + 2.0
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == str(settings.retry_after)
        assert refused.json()["reason"] == "busy"

        gated.gate.set()
        assert (await holder).status_code == 202
        # The slot came back: requests flow again.
        assert (await client.put("/events", json=EVENT)).status_code == 202
    assert sum(end_offsets(settings.bootstrap_servers, settings.topic)) == 2


async def test_no_acknowledgement_within_the_ack_timeout_is_503(
    ingest_settings: IngestSettings, gated: GatedProducer
) -> None:
    settings = replace(ingest_settings, ack_timeout=0.5, retry_after=4)
    async with serving(settings, gated) as (client, _, _):
        loop = asyncio.get_running_loop()
        started = loop.time()
        response = await client.put("/events", json=EVENT)
        assert 0.5 <= loop.time() - started < 0.5 + 2.0
        assert response.status_code == 503
        assert response.headers["retry-after"] == "4"
        problem = response.json()
        assert problem["type"] == "urn:event-delivery:problem:unavailable"
        assert problem["reason"] == "kafka-timeout"
        assert "Traceback" not in response.text
        batch = await client.post("/events/batch", json=[EVENT, EVENT])
        assert batch.status_code == 503
        assert batch.headers["retry-after"] == "4"


async def test_a_streamed_body_over_the_limit_is_413(
    ingest_settings: IngestSettings, gated: GatedProducer
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        # No Content-Length: the limit has to hold while the body streams in.
        yield b'{"user_id": "u", "payload": "'
        for _ in range(2 * MAX_EVENT_BYTES // 1024):
            yield b"x" * 1024
        yield b'"}'

    async with serving(ingest_settings, gated) as (client, _, _):
        response = await client.put(
            "/events", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 413
        assert response.json()["type"] == "urn:event-delivery:problem:body-too-large"
    assert gated.waiting == 0
    assert end_offsets(ingest_settings.bootstrap_servers, ingest_settings.topic) == [0, 0, 0]


async def test_a_client_hanging_up_mid_body_is_not_logged_as_an_error(
    ingest_settings: IngestSettings, gated: GatedProducer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ingest")
    gated.gate.set()
    async with serving(ingest_settings, gated) as (client, server, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.config.port)
        writer.write(
            b"PUT /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1000\r\n\r\n{"user_id": "u", '
        )
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        del reader
        await until(
            lambda: "client disconnected" in caplog.text, within=10, what="the hang-up is seen"
        )
        assert (await client.put("/events", json=EVENT)).status_code == 202
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    assert gated.waiting == 0
