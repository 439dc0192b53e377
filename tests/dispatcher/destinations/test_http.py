"""The HTTP destination against a real HTTP server on loopback."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from dispatcher.destinations.http import HttpDestination, HttpOptions, parse_retry_after
from dispatcher.exceptions import PermanentDeliveryError, RetryableDeliveryError
from eventlog.record import Event
from tests.kafka_fixtures import free_port

EVENT = Event(id="e-1", user_id="alice", payload='{"n": 1}', received_at_ms=1234)


@dataclass
class Sink:
    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    peers: list[object] = field(default_factory=list)
    answer: Callable[[], web.Response] = lambda: web.Response(status=204)


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    port = free_port()
    state = Sink(url=f"http://127.0.0.1:{port}/hook")

    async def hook(request: web.Request) -> web.Response:
        state.requests.append({"headers": dict(request.headers), "body": await request.read()})
        state.peers.append(
            request.transport.get_extra_info("peername") if request.transport else None
        )
        return state.answer()

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield state
    await runner.cleanup()


async def test_posts_the_event_as_json_with_the_manifest_headers(sink: Sink) -> None:
    destination = HttpDestination("hook", HttpOptions(url=sink.url, headers={"X-Token": "t0k"}))
    try:
        await destination.send(EVENT)
        await destination.send(EVENT)
    finally:
        await destination.close()
    request = sink.requests[0]
    assert json.loads(request["body"]) == {
        "id": "e-1",
        "user_id": "alice",
        "payload": '{"n": 1}',
        "received_at_ms": 1234,
    }
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["headers"]["X-Token"] == "t0k"
    assert sink.peers[0] == sink.peers[1], "the second request reuses the connection"


@pytest.mark.parametrize("status", [500, 502, 503, 408, 429])
async def test_server_errors_and_throttling_are_retryable(sink: Sink, status: int) -> None:
    sink.answer = lambda: web.Response(status=status, headers={"Retry-After": "7"})
    destination = HttpDestination("hook", HttpOptions(url=sink.url))
    try:
        with pytest.raises(RetryableDeliveryError, match=f"HTTP {status}") as caught:
            await destination.send(EVENT)
    finally:
        await destination.close()
    assert caught.value.retry_after == 7


@pytest.mark.parametrize("status", [400, 401, 404, 410, 301])
async def test_other_statuses_are_permanent(sink: Sink, status: int) -> None:
    sink.answer = lambda: web.Response(status=status, headers={"Location": "/elsewhere"})
    destination = HttpDestination("hook", HttpOptions(url=sink.url))
    try:
        with pytest.raises(PermanentDeliveryError, match=f"HTTP {status}"):
            await destination.send(EVENT)
    finally:
        await destination.close()


async def test_a_refused_connection_is_retryable() -> None:
    destination = HttpDestination("hook", HttpOptions(url=f"http://127.0.0.1:{free_port()}/x"))
    try:
        with pytest.raises(RetryableDeliveryError):
            await destination.send(EVENT)
    finally:
        await destination.close()


def test_retry_after_forms() -> None:
    assert parse_retry_after("120") == 120
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_url_must_be_http() -> None:
    with pytest.raises(ValueError, match="http:// or https://"):
        HttpOptions(url="ftp://example.invalid/x")
