"""What ingest counts, read where an operator reads it: ``/metrics`` of a real ``ingest``
process. Busy and unacknowledged 503s (issue 11.4), bodies nested too deeply (11.6, now 400),
connections a limit cut off (11.7), and 429s, each shows up in its counter."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ingest.api_keys import key_line
from tests.ingest.waiting import until
from tests.kafka_fixtures import free_port

KEY = "metrics-key-" + "m" * 31
EVENT = {"user_id": "u-1", "payload": "{}"}
HEADER_TIMEOUT = 0.5


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus' text format (0 if absent)."""
    for line in text.splitlines():
        series, _, value = line.rpartition(" ")
        found_name, _, found_labels = series.partition("{")
        if found_name != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', found_labels))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(value)
    return 0.0


@pytest.fixture
def ingest_url(tmp_path: Path) -> Iterator[str]:
    """A real ``ingest`` whose Kafka is not there: every write waits out its ack timeout while
    holding the only request slot, so a second request finds none free."""
    keys = tmp_path / "keys.txt"
    keys.write_text(key_line("metrics", KEY) + "\n")
    port = free_port()
    log_path = tmp_path / "ingest.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "ingest", "--port", str(port),
                "--bootstrap-servers", f"127.0.0.1:{free_port()}",
                "--api-keys-file", str(keys), "--key-rate", "0.001", "--key-burst", "3",
                "--max-concurrent-requests", "1", "--backpressure-wait", "0.1",
                "--ack-timeout", "2", "--header-timeout", str(HEADER_TIMEOUT),
                "--max-header-bytes", "2048", "--max-connections", "2",
            ],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log_path.read_text()
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.05)
        yield url
    finally:
        process.kill()
        process.wait(10)


def fresh(url: str) -> httpx.AsyncClient:
    # A connection per request: a kept-alive one would count towards --max-connections.
    return httpx.AsyncClient(
        base_url=url, timeout=30, limits=httpx.Limits(max_keepalive_connections=0)
    )


async def test_refusals_and_limits_are_counted_in_metrics(ingest_url: str) -> None:
    port = int(ingest_url.rsplit(":", 1)[1])
    auth = {"Authorization": f"Bearer {KEY}"}
    async with fresh(ingest_url) as client:
        # Two at once: one holds the slot until its write times out, the other finds none.
        first, second = await asyncio.gather(
            client.put("/events", json=EVENT, headers=auth),
            client.put("/events", json=EVENT, headers=auth),
        )
        reasons = sorted(r.json()["reason"] for r in (first, second))
        assert [r.status_code for r in (first, second)] == [503, 503]
        assert reasons[0] == "busy", reasons
        nested = await client.put(
            "/events",
            content=b"[" * 5000,
            headers={**auth, "Content-Type": "application/json"},
        )
        assert nested.status_code == 400, nested.text
        limited = await client.put("/events", json=EVENT, headers=auth)
        assert limited.status_code == 429

        too_large = await client.get("/healthz", headers={"X-Big": "a" * 4096})
        assert too_large.status_code == 431
        # Three silent connections for a cap of two: one is closed to make room, and the two
        # left are closed once they have said nothing for the header timeout.
        with silent_connections(port, 3) as silent:
            await until(
                lambda: all(closed(s) for s in silent), within=HEADER_TIMEOUT + 5,
                what="the silent connections are closed",
            )  # fmt: skip
        text = (await client.get("/metrics")).text

    assert metric(text, "ingest_requests_unavailable_total", reason="busy") == 1
    assert metric(text, "ingest_requests_unavailable_total", reason=reasons[1]) == 1
    assert metric(text, "ingest_events_unacknowledged_total") == 1
    assert metric(text, "ingest_requests_rejected_total", reason="malformed-json") == 1
    assert metric(text, "ingest_requests_rejected_total", reason="rate-limited") == 1
    assert metric(text, "ingest_key_requests_total", key="metrics", outcome="rate-limited") == 1
    assert metric(text, "ingest_key_requests_total", key="metrics", outcome="admitted") == 3
    assert metric(text, "ingest_connections_limited_total", reason="header-too-large") == 1
    assert metric(text, "ingest_connections_limited_total", reason="connection-cap") >= 1
    assert metric(text, "ingest_connections_limited_total", reason="idle") >= 1
    assert KEY not in text


@contextlib.contextmanager
def silent_connections(port: int, count: int) -> Iterator[list[socket.socket]]:
    """``count`` sockets connected to ``port`` that send nothing."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.setblocking(False)
            sockets.append(sock)
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


def closed(sock: socket.socket) -> bool:
    """Whether the server closed ``sock`` (a read finds the end of the stream)."""
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True
