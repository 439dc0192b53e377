"""Hostile clients on real sockets: connections that send nothing, headers or bodies sent a byte
at a time, oversized headers, more connections than ingest may hold (and than the process has
file descriptors for). Each is cut off within its limit, logged, and never stops ingest from
answering its health checks; a slow body never holds a request slot."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
import uvicorn

from eventlog.clients import producer_config
from eventlog.producer import AsyncProducer
from ingest import IngestSettings
from ingest.connections import GuardedHttpProtocol
from tests.ingest.conftest import GatedProducer, serving
from tests.ingest.waiting import until
from tests.kafka_fixtures import free_port

pytestmark = pytest.mark.kafka

TIMEOUT = 0.5
"""The header, body and keep-alive timeouts of these tests."""
WITHIN = TIMEOUT + 3.0
"""How long a test waits for a limit to bite before it fails."""
HEALTH = b"GET /healthz HTTP/1.1\r\nHost: ingest\r\n\r\n"
PUT_HEAD = (
    b"PUT /events HTTP/1.1\r\nHost: ingest\r\nContent-Type: application/json\r\n"
    b"Content-Length: 100\r\n\r\n"
)


@pytest.fixture
def limited(ingest_settings: IngestSettings) -> IngestSettings:
    return replace(
        ingest_settings,
        header_timeout=TIMEOUT,
        body_timeout=TIMEOUT,
        keep_alive_timeout=TIMEOUT,
        max_header_bytes=8192,
    )


@contextlib.asynccontextmanager
async def connection(port: int) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def until_closed(reader: asyncio.StreamReader, *, within: float = WITHIN) -> bytes:
    """Everything the server sends until it closes the connection; fails the test if it does
    not close it within ``within`` seconds."""
    received = b""
    try:
        async with asyncio.timeout(within):
            while chunk := await reader.read(65536):
                received += chunk
    except TimeoutError:
        raise AssertionError(f"the server kept the connection open for {within}s") from None
    except ConnectionResetError:
        pass
    return received


def open_connections(server: uvicorn.Server) -> int:
    return len(server.server_state.connections)


def requests_under_way(server: uvicorn.Server) -> int:
    """Connections whose request's headers are in (its handler runs, reading the body)."""
    return sum(
        isinstance(c, GuardedHttpProtocol) and c.idle_since is None
        for c in server.server_state.connections
    )


async def drip(writer: asyncio.StreamWriter, *, interval: float = 0.05, count: int = 200) -> None:
    """Send a byte at a time, as a slow client does, until told to stop or refused."""
    with contextlib.suppress(OSError):
        for _ in range(count):
            writer.write(b"a")
            await writer.drain()
            await asyncio.sleep(interval)


async def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(
    limited: IngestSettings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ingest")
    async with serving(limited) as server, connection(server.config.port) as (reader, _):
        started = time.monotonic()
        assert await until_closed(reader) == b""
        assert time.monotonic() - started >= TIMEOUT * 0.8
    assert "connection sent nothing; closed" in caplog.text


async def test_headers_sent_a_byte_at_a_time_are_cut_off_with_408(
    limited: IngestSettings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ingest")
    async with serving(limited) as server, connection(server.config.port) as (reader, writer):
        writer.write(b"PUT /events HTTP/1.1\r\nHost: ingest\r\nX-Slow: ")
        dripping = asyncio.create_task(drip(writer))
        answer = await until_closed(reader)
        dripping.cancel()
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert b"urn:event-delivery:problem:request-timeout" in answer
    assert "headers too slow; answered 408" in caplog.text


async def test_a_body_sent_a_byte_at_a_time_is_cut_off_with_408(
    limited: IngestSettings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ingest")
    async with serving(limited) as server, connection(server.config.port) as (reader, writer):
        writer.write(PUT_HEAD + b'{"user_id": ')
        dripping = asyncio.create_task(drip(writer))
        answer = await until_closed(reader)
        dripping.cancel()
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert "body too slow; answered 408" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


async def test_oversized_headers_are_431_before_they_are_read_whole(
    limited: IngestSettings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ingest")
    async with serving(limited) as server:
        port = server.config.port
        async with connection(port) as (reader, writer):
            # Just under the limit is fine.
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: i\r\nX-Big: " + b"a" * 7000 + b"\r\n\r\n")
            assert (await reader.readline()).startswith(b"HTTP/1.1 200 ")
        async with connection(port) as (reader, writer):
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: ingest\r\nX-Big: ")
            answering = asyncio.create_task(until_closed(reader, within=30))
            sent = 0
            with contextlib.suppress(OSError):
                while sent < 64 * 1024 * 1024 and not answering.done():
                    writer.write(b"a" * 65536)
                    await writer.drain()
                    sent += 65536
                    await asyncio.sleep(0)
            answer = await answering
        assert answer.startswith(b"HTTP/1.1 431 "), answer
        assert b"urn:event-delivery:problem:headers-too-large" in answer
        assert sent < 64 * 1024 * 1024  # refused long before the end
        # And in one piece with the headers complete: refused as well.
        async with connection(port) as (reader, writer):
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: i\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n")
            assert (await until_closed(reader)).startswith(b"HTTP/1.1 431 ")
    assert "request headers too large; answered 431" in caplog.text


async def test_an_idle_kept_alive_connection_is_closed_after_the_keep_alive_timeout(
    limited: IngestSettings,
) -> None:
    async with serving(limited) as server, connection(server.config.port) as (reader, writer):
        writer.write(HEALTH)
        answer = await until_closed(reader)
    assert answer.startswith(b"HTTP/1.1 200 ")


async def test_past_the_connection_cap_the_longest_idle_connection_makes_room(
    limited: IngestSettings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ingest")
    settings = replace(limited, max_connections=3, header_timeout=60, keep_alive_timeout=60)
    async with serving(settings) as server, contextlib.AsyncExitStack() as stack:
        port = server.config.port
        # The readiness probes' connections are gone: only these three are open.
        idle = [await stack.enter_async_context(connection(port)) for _ in range(3)]
        await until(lambda: open_connections(server) == 3, within=5, what="3 connections open")
        async with connection(port) as (reader, writer):
            writer.write(HEALTH)
            assert (await reader.readline()).startswith(b"HTTP/1.1 200 ")
        assert await until_closed(idle[0][0]) == b""
        assert not idle[1][0].at_eof()
    assert "too many connections; closed the longest-idle one" in caplog.text


async def test_a_burst_of_concurrent_connections_stays_within_the_cap(
    limited: IngestSettings,
) -> None:
    # All at once: the event loop accepts many of them in one turn, before the connections
    # they evict are gone, so each must pick a victim no other one has picked already.
    settings = replace(limited, max_connections=20, header_timeout=60, keep_alive_timeout=60)
    async with serving(settings) as server:
        port = server.config.port
        opened = await asyncio.gather(
            *(asyncio.open_connection("127.0.0.1", port) for _ in range(300))
        )
        try:
            await until(
                lambda: open_connections(server) <= 20, within=WITHIN, what="at most 20 open"
            )
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                assert (await client.get("/healthz")).status_code == 200
            await until(
                lambda: sum(not reader.at_eof() for reader, _ in opened) <= 20,
                within=WITHIN,
                what="the clients see the others closed",
            )
        finally:
            for _, writer in opened:
                writer.close()


async def test_when_every_connection_is_busy_a_new_one_is_served_for_health_only(
    limited: IngestSettings,
) -> None:
    settings = replace(limited, max_connections=2, body_timeout=60, header_timeout=60)
    async with serving(settings) as server, contextlib.AsyncExitStack() as stack:
        port = server.config.port
        for _ in range(2):
            _, writer = await stack.enter_async_context(connection(port))
            writer.write(PUT_HEAD + b'{"user_id": ')  # in the middle of a request
            await writer.drain()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:

            async def health_answers() -> bool:
                return (await client.get("/healthz")).status_code == 200

            await until(lambda: requests_under_way(server) == 2, within=5, what="2 requests")
            assert await health_answers()
            assert (await client.get("/readyz")).status_code == 200
            refused = await client.put("/events", json={"user_id": "u", "payload": "p"})
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["reason"] == "busy"


async def test_a_request_holds_no_slot_while_its_body_is_still_arriving(
    limited: IngestSettings,
) -> None:
    settings = replace(limited, max_concurrent_requests=1, backpressure_wait=0.2, body_timeout=60)
    gated = GatedProducer(
        AsyncProducer(producer_config(settings.bootstrap_servers, **settings.producer_overrides()))
    )
    gated.gate.set()
    async with serving(settings, gated) as server, connection(server.config.port) as (_, slow):
        slow.write(PUT_HEAD + b'{"user_id": ')
        await slow.drain()
        await until(lambda: requests_under_way(server) == 1, within=5, what="its handler runs")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.config.port}") as c:
            response = await c.put("/events", json={"user_id": "u", "payload": "p"})
        assert response.status_code == 202, response.text


NOFILE = 256
"""The file descriptors of the ingest process of the tests below."""

_WITHOUT_UVLOOP = "import sys; sys.modules['uvloop'] = None; from ingest.cli import main; main()"
"""``ingest`` as on a machine without uvloop (uvicorn then runs asyncio's own event loop, which
accepts a burst of connections differently from libuv)."""


@pytest.fixture(params=["uvloop", "asyncio"])
def file_limited_ingest(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[int, Path]]:
    port = free_port()
    log_path = tmp_path / "ingest.log"
    ingest = ["-m", "ingest"] if request.param == "uvloop" else ["-c", _WITHOUT_UVLOOP]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                "prlimit",
                f"--nofile={NOFILE}:{NOFILE}",
                sys.executable,
                *ingest,
                "--port",
                str(port),
                "--bootstrap-servers",
                f"127.0.0.1:{free_port()}",
                "--header-timeout",
                "60",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        yield port, log_path
    finally:
        process.kill()
        process.wait(10)


@pytest.mark.slow
async def test_more_idle_connections_than_file_descriptors_leave_health_checks_answered(
    file_limited_ingest: tuple[int, Path],
) -> None:
    port, log_path = file_limited_ingest

    def alive() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    deadline = time.monotonic() + 60
    while not await asyncio.to_thread(alive):
        assert time.monotonic() < deadline, log_path.read_text()
        await asyncio.sleep(0.1)
    # All at once, far more than the process's file descriptors: the event loop accepts as
    # many as it finds waiting in one go, before the connections they evict are closed.
    opened = await asyncio.gather(
        *(asyncio.open_connection("127.0.0.1", port) for _ in range(3 * NOFILE))
    )
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(3):  # and again, once the burst has been taken in
                response = await asyncio.wait_for(
                    client.get(f"http://127.0.0.1:{port}/healthz"), timeout=10
                )
                assert response.status_code == 200
    finally:
        for _, writer in opened:
            writer.close()
    log = log_path.read_text()
    assert "max_connections lowered to fit the file descriptor limit" in log
    assert "too many connections; closed the longest-idle one" in log
    assert "Too many open files" not in log, log
    assert "Traceback" not in log, log
