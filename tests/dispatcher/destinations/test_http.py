"""The HTTP destination against a real HTTP server on loopback: what each answer means, on
each HTTP client (``make_destination``, see conftest)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pytest
from aiohttp import web
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from dispatcher.destinations.http import HttpOptions, parse_retry_after
from dispatcher.exceptions import (
    DeliveryError,
    DestinationError,
    DestinationMisconfigured,
    PermanentDeliveryError,
    RetryableDeliveryError,
    ThrottledError,
)
from eventlog.record import Event
from tests.dispatcher.destinations.conftest import MakeDestination
from tests.support.loopback_server import LoopbackServer

EVENT = Event(id="e-1", user_id="alice", payload='{"n": 1}', received_at_ms=1234)


@dataclass
class Sink:
    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    peers: list[object] = field(default_factory=list)
    answer: Callable[[], web.Response] = lambda: web.Response(status=204)
    delay: float = 0.0
    """Seconds each answer takes."""
    in_flight: int = 0
    most_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def sink() -> Iterator[Sink]:
    state = Sink(url="")

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        peer = request.transport.get_extra_info("peername") if request.transport else None
        with state.lock:
            state.requests.append({"headers": dict(request.headers), "body": body})
            state.peers.append(peer)
            state.in_flight += 1
            state.most_in_flight = max(state.most_in_flight, state.in_flight)
        try:
            await asyncio.sleep(state.delay)
        finally:
            with state.lock:
                state.in_flight -= 1
        return state.answer()

    app = web.Application()
    app.router.add_post("/hook", hook)
    with LoopbackServer(app) as server:  # port 0: the OS picks a free one, no race
        state.url = f"http://127.0.0.1:{server.port}/hook"
        yield state


async def send(make: MakeDestination, options: HttpOptions) -> None:
    destination = make("hook", options)
    try:
        await destination.send(EVENT)
    finally:
        await destination.close()


async def outcome(
    make: MakeDestination, sink: Sink, status: int, headers: dict[str, str] | None = None
) -> Exception:
    sink.answer = lambda: web.Response(status=status, headers=headers or {})
    with pytest.raises(DeliveryError) as caught:
        await send(make, HttpOptions(url=sink.url))
    return caught.value


async def test_posts_the_event_as_json_with_the_manifest_headers(
    sink: Sink, make_destination: MakeDestination
) -> None:
    destination = make_destination("hook", HttpOptions(url=sink.url, headers={"X-Token": "t0k"}))
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


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
async def test_only_2xx_is_success(
    sink: Sink, make_destination: MakeDestination, status: int
) -> None:
    sink.answer = lambda: web.Response(status=status)
    await send(make_destination, HttpOptions(url=sink.url))


@pytest.mark.parametrize("status", [500, 502, 504, 599, 408])
async def test_server_errors_and_timeouts_are_retryable_with_retry_after(
    sink: Sink, make_destination: MakeDestination, status: int
) -> None:
    error = await outcome(make_destination, sink, status, {"Retry-After": "7"})
    assert type(error) is RetryableDeliveryError
    assert str(error) == f"HTTP {status}"
    assert error.retry_after == 7


@pytest.mark.parametrize("status", [429, 503])
async def test_429_and_503_with_retry_after_throttle_the_destination(
    sink: Sink, make_destination: MakeDestination, status: int
) -> None:
    error = await outcome(make_destination, sink, status, {"Retry-After": "7"})
    assert isinstance(error, ThrottledError)
    assert error.retry_after == 7


@pytest.mark.parametrize("status", [429, 503])
async def test_429_and_503_without_retry_after_are_plain_retries(
    sink: Sink, make_destination: MakeDestination, status: int
) -> None:
    error = await outcome(make_destination, sink, status)
    assert type(error) is RetryableDeliveryError
    assert error.retry_after is None


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_redirects_are_retried_not_followed(
    sink: Sink, make_destination: MakeDestination, status: int
) -> None:
    error = await outcome(make_destination, sink, status, {"Location": "/elsewhere"})
    assert type(error) is RetryableDeliveryError
    assert len(sink.requests) == 1, "the redirect was not followed"


@pytest.mark.parametrize("status", [401, 403, 404, 410])
async def test_credential_and_address_failures_are_the_destinations(
    sink: Sink, make_destination: MakeDestination, status: int
) -> None:
    error = await outcome(make_destination, sink, status)
    assert type(error) is DestinationError
    assert str(error) == f"HTTP {status}"


@pytest.mark.parametrize("status", [400, 405, 409, 413, 422, 451])
async def test_other_4xx_refuse_the_event_for_good(
    sink: Sink, make_destination: MakeDestination, status: int
) -> None:
    error = await outcome(make_destination, sink, status, {"Retry-After": "7"})
    assert isinstance(error, PermanentDeliveryError)


async def test_the_status_lists_are_the_destinations_to_set(
    sink: Sink, make_destination: MakeDestination
) -> None:
    options = HttpOptions(
        url=sink.url,
        retryable_status=[409, "500-599"],  # type: ignore[arg-type]  # as YAML gives them
        permanent_status=[400, 422, 503],  # type: ignore[arg-type]
        destination_status=[401],  # type: ignore[arg-type]
    )
    for status, expected in [
        (409, RetryableDeliveryError),  # now retried
        (403, RetryableDeliveryError),  # in no list now: retried
        (401, DestinationError),
        (422, PermanentDeliveryError),
        (503, RetryableDeliveryError),  # retryable is looked up before permanent
        (302, RetryableDeliveryError),  # in no list: retried
    ]:
        sink.answer = lambda status=status: web.Response(status=status)  # type: ignore[misc]
        with pytest.raises(DeliveryError) as caught:
            await send(make_destination, options)
        assert type(caught.value) is expected, status


async def test_a_request_the_client_refuses_to_build_is_a_misconfiguration(
    sink: Sink, make_destination: MakeDestination
) -> None:
    options = HttpOptions(url=sink.url)
    # The manifest refuses this header; this stands for any such check we might miss.
    msgspec.structs.force_setattr(options, "headers", {"X-Token": "s3cret\r\nX-Evil: 1"})
    with pytest.raises(DestinationMisconfigured) as caught:
        await send(make_destination, options)
    assert "s3cret" not in str(caught.value)
    assert not isinstance(caught.value, RetryableDeliveryError)
    assert sink.requests == []


async def test_a_refused_connection_is_retryable(make_destination: MakeDestination) -> None:
    with LoopbackServer(web.Application()) as server:
        port = server.port
    # The server has stopped, so its port refuses connections (nobody else took it since).
    with pytest.raises(RetryableDeliveryError, match=r"(?i)connect"):
        await send(make_destination, HttpOptions(url=f"http://127.0.0.1:{port}/x"))


@pytest.mark.parametrize("max_connections", [None, 2])
async def test_the_pool_bounds_requests_in_flight(
    sink: Sink, make_destination: MakeDestination, max_connections: int | None
) -> None:
    sink.delay = 0.1
    destination = make_destination(
        "hook", HttpOptions(url=sink.url, max_connections=max_connections), concurrency=3
    )
    try:
        await asyncio.gather(*(destination.send(EVENT) for _ in range(8)))
    finally:
        await destination.close()
    limit = max_connections or 3  # the destination's concurrency by default
    assert sink.most_in_flight == limit
    assert len(set(sink.peers)) == limit, "connections are reused, never more than the pool"


async def test_a_timed_out_attempt_gives_its_place_in_the_pool_back(
    sink: Sink, make_destination: MakeDestination
) -> None:
    # The caller bounds each attempt by cancelling send(); the next attempt must not wait
    # for the abandoned one's answer.
    sink.delay = 3.0
    destination = make_destination(
        "hook", HttpOptions(url=sink.url, max_connections=1), attempt_timeout=0.3
    )
    try:
        with pytest.raises(TimeoutError):
            # The caller gives up first: at 0.3 s pyreqwest would end the request itself.
            async with asyncio.timeout(0.1):
                await destination.send(EVENT)
        sink.delay = 0.0
        started = time.monotonic()
        async with asyncio.timeout(2.0):
            await destination.send(EVENT)
        assert time.monotonic() - started < 1.0
    finally:
        await destination.close()


async def test_the_request_carries_the_trace_it_was_sent_in(
    sink: Sink, make_destination: MakeDestination, span_exporter: InMemorySpanExporter
) -> None:
    destination = make_destination("hook", HttpOptions(url=sink.url))
    try:
        with trace.get_tracer(__name__).start_as_current_span("deliver") as span:
            await destination.send(EVENT)
    finally:
        await destination.close()
    traceparent = sink.requests[0]["headers"]["traceparent"]
    assert traceparent.split("-")[1] == f"{span.get_span_context().trace_id:032x}"
    (finished,) = [s for s in span_exporter.get_finished_spans() if s.name == "deliver"]
    assert finished.attributes is not None
    assert finished.attributes["http.response.status_code"] == 204


def test_retry_after_forms() -> None:
    assert parse_retry_after("120") == 120
    assert parse_retry_after(" 3 ") == 3
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


@pytest.mark.parametrize("value", ["²", "\u0663", "\uff13", "1.5", "-1", "", "1e3"])
def test_retry_after_is_ascii_digits_or_a_date(value: str) -> None:
    assert parse_retry_after(value) is None


# --- options checked when the manifest is loaded ----------------------------------------------


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ftp://example.invalid/x", "http:// or https://"),
        ("http:example", "http:// or https://"),
        ("http://x:99999/", "port must be 1 to 65535, got '99999'"),
        ("http://x:0/", "port must be 1 to 65535"),
        ("http://x:abc/", "port must be 1 to 65535"),
        ("http://x:\u0663/", "port must be 1 to 65535"),
        ("http://exa mple.com/", "contains a space at character 11"),
        ("http://x/\ta", "U+0009"),
        ("http://", "no host"),
        ("http:///path", "no host"),
        ("http://[::1/", "not a URL"),
    ],
)
def test_unusable_urls_are_refused(url: str, says: str) -> None:
    with pytest.raises(ValueError, match=r"^url ") as caught:
        HttpOptions(url=url)
    assert says in str(caught.value)


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:9000/hook", "https://h.example/a?b=c#d", "http://[::1]:80/", "HTTPS://h/"],
)
def test_usable_urls_are_accepted(url: str) -> None:
    assert HttpOptions(url=url).url == url


@pytest.mark.parametrize("name", ["", "X Token", "X-Token:", "Ünicode", "a\r\nb", "(x)"])
def test_header_names_must_be_tokens(name: str) -> None:
    with pytest.raises(ValueError, match="is not a header name"):
        HttpOptions(url="http://x/", headers={name: "v"})


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("a\rb", "carriage return (CR) at character 8"),
        ("a\nb", "line feed (LF)"),
        ("a\x00", "NUL"),
        ("\x1b[31m", "contains the control character U+001B"),
        ("a\x7f", "U+007F"),
    ],
)
def test_header_values_must_not_hold_control_characters(value: str, says: str) -> None:
    with pytest.raises(ValueError, match=r"^headers\.X-Token value contains") as caught:
        HttpOptions(url="http://x/", headers={"X-Token": "secret" + value})
    assert says in str(caught.value)
    assert "secret" not in str(caught.value)


def test_tabs_spaces_and_non_ascii_are_fine_in_header_values() -> None:
    assert HttpOptions(url="http://x/", headers={"X-A": "a\tb c é"}).headers["X-A"] == "a\tb c é"


@pytest.mark.parametrize(
    ("lists", "says"),
    [
        ({"retryable_status": [200]}, "retryable_status lists 200; 2xx always means delivered"),
        ({"permanent_status": ["100-299"]}, "2xx always means delivered"),
        ({"destination_status": [600]}, "status codes run from 100 to 599"),
        ({"retryable_status": ["599-500"]}, "runs backwards"),
        ({"retryable_status": ["5xx"]}, "write a status code or a range '500-599'"),
        ({"retryable_status": [True]}, "Expected `int | str`, got `bool`"),
    ],
)
def test_bad_status_lists_are_refused(lists: dict[str, list[object]], says: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=says):
        msgspec.convert({"url": "http://x/", **lists}, HttpOptions)
