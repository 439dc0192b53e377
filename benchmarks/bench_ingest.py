"""Issue 3: how fast ingest takes events, next to what HTTP and Kafka allow on this machine.

Three measurements in one run, one after another so they do not compete for the CPU:

* **HTTP ceiling**: the same Litestar app (same routes, validation, request bound and error
  mapping) with a producer stand-in that acknowledges at once: no Kafka at all;
* **ingest**: the real ``ingest`` command, acknowledged by the local broker (``acks=all``);
* **Kafka ceiling**: a bare confluent-kafka producer loop with ingest's producer settings,
  no HTTP, records pre-encoded.

Both servers run as their own uvicorn process (one worker, uvloop and httptools); this process
is the client (aiohttp, loopback only): ``--concurrency`` requests in flight for a warm-up and a
fixed window (each request bounded by a time budget and a request cap), then one client sending
one request at a time for single-request latency. Results go to ``benchmarks/results/ingest.md``.
It is a benchmark, not a test: nothing here judges the numbers.

    python -m benchmarks.bench_ingest            # about a minute
    python -m benchmarks.bench_ingest --quick    # smoke: a few seconds per part
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import click
import confluent_kafka
from confluent_kafka import KafkaError, Message, Producer
from confluent_kafka.admin import AdminClient
from litestar import Litestar

from eventlog.clients import admin_config, producer_config
from eventlog.producer import Delivered
from eventlog.record import Event, Headers, encode
from eventlog.topics import TopicSpec, ensure_topic
from ingest import IngestSettings, create_app

__all__ = ["ceiling_app", "main"]

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "ingest.md"
PARTITIONS = 12
USERS = 1000
PAYLOAD_BYTES = 100
GOAL_RATIO = 0.6
GOAL_SINGLE_P50_MS = 10.0
_CEILING_ENV = "BENCH_INGEST_CEILING_SETTINGS"
_JSON = {"Content-Type": "application/json"}


class InstantProducer:
    """Stands in for Kafka in the HTTP ceiling: acknowledges every record at once."""

    def __init__(self, partitions: int) -> None:
        self._partitions = partitions
        self._offsets: Counter[int] = Counter()

    @property
    def client(self) -> Producer:
        raise RuntimeError("the HTTP ceiling has no Kafka client")

    def start(self) -> None:
        pass

    async def produce(
        self, topic: str, *, key: bytes, value: bytes, headers: Headers | None = None
    ) -> Delivered:
        partition = confluent_kafka.murmur2(key, self._partitions)
        self._offsets[partition] += 1
        return Delivered(topic, partition, self._offsets[partition] - 1)

    def close(self, timeout: float = 10.0) -> int:
        return 0


def ceiling_app() -> Litestar:
    """uvicorn factory of the HTTP ceiling: ingest's app without Kafka."""
    settings = IngestSettings(**json.loads(os.environ[_CEILING_ENV]))
    return create_app(settings, producer=InstantProducer(settings.partitions))


@dataclass(frozen=True)
class Load:
    """What a load run measured in its window."""

    accepted: int
    other: Counter[int]
    seconds: float
    latencies: list[float]
    client_cpu: float
    server_cpu: float

    @property
    def rate(self) -> float:
        return self.accepted / self.seconds

    def percentile(self, p: int) -> float:
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[p - 1] * 1000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _bodies() -> list[bytes]:
    payload = "x" * PAYLOAD_BYTES
    return [json.dumps({"user_id": f"user-{u}", "payload": payload}).encode() for u in range(USERS)]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _load(
    url: str, server_pid: int, *, concurrency: int, warmup: float, window: float, cap: int
) -> Load:
    bodies = _bodies()
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    sent = 0
    clock = time.perf_counter
    start = clock()
    measure_from, end = start + warmup, start + warmup + window
    cpu_marks: dict[str, tuple[float, float]] = {}

    async def client(n: int, session: aiohttp.ClientSession) -> None:
        nonlocal sent
        i = n
        while sent < cap:
            began = clock()
            if began >= end:
                return
            if began >= measure_from and "start" not in cpu_marks:
                cpu_marks["start"] = (time.process_time(), _cpu_seconds(server_pid))
            sent += 1
            i += concurrency
            async with session.put(url, data=bodies[i % len(bodies)], headers=_JSON) as response:
                await response.read()
            if began >= measure_from:
                latencies.append(clock() - began)
                statuses[response.status] += 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(client(n, session) for n in range(concurrency)))
    finished = clock()
    client_cpu0, server_cpu0 = cpu_marks.get("start", (0.0, 0.0))
    seconds = min(finished, end) - measure_from if finished > measure_from else 0.0
    accepted = statuses.pop(202, 0)
    return Load(
        accepted=accepted,
        other=statuses,
        seconds=max(seconds, 1e-9),
        latencies=latencies,
        client_cpu=(time.process_time() - client_cpu0) / max(seconds, 1e-9),
        server_cpu=(_cpu_seconds(server_pid) - server_cpu0) / max(seconds, 1e-9),
    )


@contextlib.contextmanager
def _server(
    name: str, argv: list[str], port: int, ready_path: str, env: dict[str, str]
) -> Iterator[int]:
    process = subprocess.Popen(
        argv,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not _answers(f"http://127.0.0.1:{port}{ready_path}"):
            if process.poll() is not None or time.monotonic() > deadline:
                stderr = process.stderr.read().decode() if process.stderr else ""
                raise click.ClickException(f"{name} did not get ready:\n{stderr[-2000:]}")
            time.sleep(0.1)
        yield process.pid
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _answers(url: str) -> bool:
    import urllib.request  # noqa: PLC0415 - only for the readiness probe

    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
            return bool(response.status == 200)
    except OSError:
        return False


async def _single_client(url: str, *, requests: int) -> list[float]:
    bodies = _bodies()
    latencies = []
    async with aiohttp.ClientSession() as session:
        for n in range(requests + requests // 10):
            began = time.perf_counter()
            async with session.put(url, data=bodies[n % len(bodies)], headers=_JSON) as response:
                await response.read()
                if response.status != 202:
                    raise click.ClickException(f"single client got {response.status}")
            if n >= requests // 10:  # the first tenth warms up
                latencies.append(time.perf_counter() - began)
    return latencies


def _kafka_ceiling(bootstrap: str, topic: str, *, seconds: float, cap: int) -> tuple[float, int]:
    """Records per second a bare producer loop gets acknowledged with ingest's settings."""
    producer = Producer(producer_config(bootstrap))
    payload = "x" * PAYLOAD_BYTES
    now_ms = time.time_ns() // 1_000_000
    records = [encode(Event(str(uuid.uuid4()), f"user-{u}", payload, now_ms)) for u in range(USERS)]
    outcome: Counter[str] = Counter()

    def on_delivery(error: KafkaError | None, _: Message) -> None:
        outcome["failed" if error else "delivered"] += 1

    start = time.perf_counter()
    produced = 0
    while produced < cap and time.perf_counter() - start < seconds:
        key, value, headers = records[produced % USERS]
        try:
            producer.produce(topic, key=key, value=value, headers=headers, on_delivery=on_delivery)
        except BufferError:
            producer.poll(0.005)
            continue
        produced += 1
        if produced % 500 == 0:
            producer.poll(0)
    producer.flush(60)
    elapsed = time.perf_counter() - start
    return outcome["delivered"] / elapsed, outcome["failed"]


@click.command()
@click.option("--bootstrap-servers", envvar="KAFKA_BOOTSTRAP_SERVERS", default="127.0.0.1:9092")
@click.option("--concurrency", default=64, show_default=True, help="Requests in flight.")
@click.option("--window", default=10.0, show_default=True, help="Seconds measured per target.")
@click.option("--warmup", default=2.0, show_default=True, help="Seconds before measuring.")
@click.option("--single", default=400, show_default=True, help="One-at-a-time requests.")
@click.option("--quick", is_flag=True, help="Smoke run: short windows, few requests.")
def main(
    *,
    bootstrap_servers: str,
    concurrency: int,
    window: float,
    warmup: float,
    single: int,
    quick: bool,
) -> None:
    """Measure PUT /events throughput and latency beside the HTTP and Kafka ceilings."""
    if quick:
        window, warmup, single = 2.0, 0.5, 50
    cap = 500_000
    topic = f"bench-ingest-{uuid.uuid4().hex[:8]}"
    admin = AdminClient(admin_config(bootstrap_servers))
    ensure_topic(admin, TopicSpec(name=topic, partitions=PARTITIONS))
    settings = IngestSettings(bootstrap_servers=bootstrap_servers, topic=topic)
    py = sys.executable
    results: dict[str, Load] = {}
    singles: dict[str, list[float]] = {}
    try:
        for name, argv, port, ready, env in _targets(py, settings):
            click.echo(f"{name}: starting", err=True)
            with _server(name, argv, port, ready, env) as pid:
                url = f"http://127.0.0.1:{port}/events"
                results[name] = asyncio.run(
                    _load(url, pid, concurrency=concurrency, warmup=warmup, window=window, cap=cap)
                )
                singles[name] = asyncio.run(_single_client(url, requests=single))
            click.echo(f"{name}: {results[name].rate:,.0f} req/s", err=True)
        click.echo("kafka ceiling: producing", err=True)
        kafka_rate, kafka_failed = _kafka_ceiling(
            bootstrap_servers, topic, seconds=window / 2, cap=cap
        )
    finally:
        admin.delete_topics([topic], operation_timeout=30)
    report = _report(
        results, singles, kafka_rate, kafka_failed, concurrency=concurrency, window=window
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(report)
    click.echo(report)


def _targets(
    py: str, settings: IngestSettings
) -> Iterator[tuple[str, list[str], int, str, dict[str, str]]]:
    port = _free_port()
    yield (
        "http ceiling",
        [
            *(py, "-m", "uvicorn", "benchmarks.bench_ingest:ceiling_app", "--factory"),
            *("--port", str(port), "--no-access-log", "--log-level", "warning"),
        ],
        port,
        "/healthz",
        {_CEILING_ENV: json.dumps(settings.to_dict())},
    )
    port = _free_port()
    yield (
        "ingest",
        [
            *(py, "-m", "ingest", "--port", str(port), "--log-level", "WARNING"),
            *("--bootstrap-servers", settings.bootstrap_servers, "--topic", settings.topic),
        ],
        port,
        "/readyz",
        {},
    )


def _report(
    results: dict[str, Load],
    singles: dict[str, list[float]],
    kafka_rate: float,
    kafka_failed: int,
    *,
    concurrency: int,
    window: float,
) -> str:
    http, ingest = results["http ceiling"], results["ingest"]
    lower = min(http.rate, kafka_rate)
    ratio = ingest.rate / lower

    def row(name: str, load: Load) -> str:
        errors = ", ".join(f"{s}: {n}" for s, n in sorted(load.other.items())) or "0"
        return (
            f"| {name} | {load.rate:,.0f} | {load.percentile(50):.1f} | "
            f"{load.percentile(99):.1f} | {errors} | {load.server_cpu:.2f} | "
            f"{load.client_cpu:.2f} | {load.rate / lower:.0%} |"
        )

    def p50(name: str) -> float:
        return statistics.median(singles[name]) * 1000

    verdict = "met" if ratio >= GOAL_RATIO else "not met"
    single_verdict = "met" if p50("ingest") < GOAL_SINGLE_P50_MS else "not met"
    return f"""# ingest benchmark

Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with `python -m benchmarks.bench_ingest` on
{os.cpu_count()} CPUs ({platform.machine()}, load average {os.getloadavg()[0]:.1f} at the end),
Python {platform.python_version()}, confluent-kafka {confluent_kafka.version()}, librdkafka
{confluent_kafka.libversion()[0]}.

`PUT /events` with a {PAYLOAD_BYTES}-byte payload over {USERS} users; {concurrency} requests in
flight from one aiohttp client process; {window:g} s measured after a warm-up; each server is
one uvicorn worker (uvloop, httptools). Client, server and broker share the machine. CPU columns
are CPU-seconds per second of the window.

| target | req/s | p50 ms | p99 ms | non-202 | server CPU (cores) | client CPU (cores) | vs lower ceiling |
| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |
{row("HTTP ceiling: same app, producer acknowledges at once", http)}
| Kafka ceiling: bare producer loop, same producer settings | {kafka_rate:,.0f} | | | {kafka_failed} | | | {kafka_rate / lower:.0%} |
{row("**ingest** (acks=all from the local broker)", ingest)}

Ingest reaches **{ratio:.0%}** of the lower ceiling (goal {GOAL_RATIO:.0%}: {verdict}).

Single client, one request at a time: p50 **{p50("ingest"):.1f} ms** for ingest (goal < \
{GOAL_SINGLE_P50_MS:g} ms: {single_verdict}), {p50("http ceiling"):.1f} ms for the HTTP ceiling;
p99 {statistics.quantiles(singles["ingest"], n=100)[98] * 1000:.1f} ms for ingest.
"""  # noqa: E501 - a markdown table row


if __name__ == "__main__":
    main()
