"""Issue 3: how fast ingest takes events, next to what HTTP and Kafka allow on this machine.

Three measurements in one run, never two at once, so they do not compete for the CPU:

* **HTTP ceiling**: the same Litestar app (same routes, validation, request bound and error
  mapping) with a producer stand-in that acknowledges at once: no Kafka at all;
* **ingest**: the real ``ingest`` command, acknowledged by the local broker (``acks=all``);
* **Kafka ceiling**: a bare confluent-kafka producer loop with ingest's producer settings,
  no HTTP, records pre-encoded.

Both servers run as their own uvicorn process (one worker, uvloop and httptools); this process
is the client (aiohttp, loopback only). Each server is warmed up, then loaded in turns (the
window split into ``--rounds``, alternating between the servers) so that a change in the shared
machine's background load hits both alike: ``--concurrency`` requests in flight, each turn
bounded by time and by a request cap. Then one client sends one request at a time, for
single-request latency. CPU is read from ``/proc`` for the client, each server and (when it is
the local native broker) Kafka. Results go to ``benchmarks/results/ingest.md``. It is a
benchmark, not a test: nothing here judges the numbers.

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
from localkafka import NativeBroker

__all__ = ["ceiling_app", "main"]

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "ingest.md"
PARTITIONS = 12
USERS = 1000
PAYLOAD_BYTES = 100
GOAL_RATIO = 0.6
GOAL_SINGLE_P50_MS = 10.0
_CEILING_ENV = "BENCH_INGEST_CEILING_SETTINGS"
HTTP_CEILING = "http ceiling"
INGEST = "ingest"
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
    """What the measured windows of one target saw, summed."""

    accepted: int
    other: Counter[int]
    seconds: float
    latencies: list[float]
    client_cpu: float
    """CPU-seconds of the client process."""
    server_cpu: float
    broker_cpu: float | None

    @property
    def rate(self) -> float:
        return self.accepted / self.seconds

    def percentile(self, p: int) -> float:
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[p - 1] * 1000

    def per_second(self, cpu: float | None) -> str:
        return "n/a" if cpu is None else f"{cpu / self.seconds:.2f}"

    def __add__(self, other: Load) -> Load:
        broker = (
            None
            if self.broker_cpu is None or other.broker_cpu is None
            else self.broker_cpu + other.broker_cpu
        )
        return Load(
            self.accepted + other.accepted,
            self.other + other.other,
            self.seconds + other.seconds,
            self.latencies + other.latencies,
            self.client_cpu + other.client_cpu,
            self.server_cpu + other.server_cpu,
            broker,
        )


@dataclass(frozen=True)
class Target:
    """A running server under test."""

    name: str
    url: str
    pid: int


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _bodies() -> list[bytes]:
    payload = "x" * PAYLOAD_BYTES
    return [json.dumps({"user_id": f"user-{u}", "payload": payload}).encode() for u in range(USERS)]


def _cpu_seconds(pid: int | None) -> float | None:
    """CPU time of process ``pid`` (all its threads) so far, from /proc (Linux)."""
    if pid is None:
        return None
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _window(
    session: aiohttp.ClientSession,
    target: Target,
    *,
    concurrency: int,
    seconds: float,
    cap: int,
    broker_pid: int | None,
) -> Load:
    """``concurrency`` clients start requests for ``seconds`` (at most ``cap`` in all); the
    window ends when the last of them is answered."""
    bodies = _bodies()
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    sent = 0
    clock = time.perf_counter

    async def client(n: int) -> None:
        nonlocal sent
        i = n
        while sent < cap and clock() < stop_starting:
            sent += 1
            i += concurrency
            began = clock()
            async with session.put(target.url, data=bodies[i % USERS], headers=_JSON) as response:
                await response.read()
            latencies.append(clock() - began)
            statuses[response.status] += 1

    cpu0 = (time.process_time(), _cpu_seconds(target.pid), _cpu_seconds(broker_pid))
    start = clock()
    stop_starting = start + seconds
    await asyncio.gather(*(client(n) for n in range(concurrency)))
    elapsed = clock() - start
    server_cpu, broker_cpu = _cpu_seconds(target.pid), _cpu_seconds(broker_pid)
    assert server_cpu is not None and cpu0[1] is not None
    return Load(
        accepted=statuses.pop(202, 0),
        other=statuses,
        seconds=elapsed,
        latencies=latencies,
        client_cpu=time.process_time() - cpu0[0],
        server_cpu=server_cpu - cpu0[1],
        broker_cpu=None if broker_cpu is None or cpu0[2] is None else broker_cpu - cpu0[2],
    )


async def _measure(
    targets: list[Target],
    *,
    concurrency: int,
    warmup: float,
    window: float,
    rounds: int,
    broker_pid: int | None,
) -> dict[str, Load]:
    """Warm every target up, then load them in turn, ``rounds`` times each, so a change in the
    machine's background load hits all of them alike."""
    timeout = aiohttp.ClientTimeout(total=30)
    cap = 1_000_000
    async with contextlib.AsyncExitStack() as stack:
        sessions = {
            t.name: await stack.enter_async_context(
                aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=concurrency), timeout=timeout
                )
            )
            for t in targets
        }

        async def run(target: Target, seconds: float) -> Load:
            return await _window(
                sessions[target.name],
                target,
                concurrency=concurrency,
                seconds=seconds,
                cap=cap,
                broker_pid=broker_pid,
            )

        for target in targets:
            await run(target, warmup)
        totals: dict[str, Load] = {}
        for _ in range(rounds):
            for target in targets:
                load = await run(target, window / rounds)
                totals[target.name] = totals[target.name] + load if target.name in totals else load
    return totals


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
@click.option("--window", default=12.0, show_default=True, help="Seconds measured per target.")
@click.option("--rounds", default=4, show_default=True, help="Turns the window is split into.")
@click.option("--warmup", default=1.5, show_default=True, help="Seconds before measuring.")
@click.option("--single", default=400, show_default=True, help="One-at-a-time requests.")
@click.option("--quick", is_flag=True, help="Smoke run: short windows, few requests.")
def main(
    *,
    bootstrap_servers: str,
    concurrency: int,
    window: float,
    rounds: int,
    warmup: float,
    single: int,
    quick: bool,
) -> None:
    """Measure PUT /events throughput and latency beside the HTTP and Kafka ceilings."""
    if quick:
        window, rounds, warmup, single = 2.0, 2, 0.5, 50
    topic = f"bench-ingest-{uuid.uuid4().hex[:8]}"
    admin = AdminClient(admin_config(bootstrap_servers))
    ensure_topic(admin, TopicSpec(name=topic, partitions=PARTITIONS))
    settings = IngestSettings(bootstrap_servers=bootstrap_servers, topic=topic)
    broker = NativeBroker()
    broker_pid = broker.running_pid() if broker.bootstrap == bootstrap_servers else None
    try:
        with contextlib.ExitStack() as stack:
            targets = [
                Target(name, f"http://127.0.0.1:{port}/events", stack.enter_context(server))
                for name, port, server in _servers(sys.executable, settings)
            ]
            click.echo(f"loading {', '.join(t.name for t in targets)} in turn", err=True)
            loads = asyncio.run(
                _measure(
                    targets,
                    concurrency=concurrency,
                    warmup=warmup,
                    window=window,
                    rounds=rounds,
                    broker_pid=broker_pid,
                )
            )
            singles = {t.name: asyncio.run(_single_client(t.url, requests=single)) for t in targets}
        click.echo("kafka ceiling: producing", err=True)
        kafka_rate, kafka_failed = _kafka_ceiling(
            bootstrap_servers, topic, seconds=window / rounds, cap=1_000_000
        )
    finally:
        # Wait for it: an unsent request dies with the process and the topic stays behind.
        for deleted in admin.delete_topics([topic], operation_timeout=30).values():
            deleted.result(30)
    report = _report(
        loads, singles, kafka_rate, kafka_failed, concurrency=concurrency, window=window
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(report)
    click.echo(report)


def _servers(
    py: str, settings: IngestSettings
) -> Iterator[tuple[str, int, contextlib.AbstractContextManager[int]]]:
    port = _free_port()
    ceiling = [
        *(py, "-m", "uvicorn", "benchmarks.bench_ingest:ceiling_app", "--factory"),
        *("--port", str(port), "--no-access-log", "--log-level", "warning"),
    ]
    env = {_CEILING_ENV: json.dumps(settings.to_dict())}
    yield HTTP_CEILING, port, _server(HTTP_CEILING, ceiling, port, "/healthz", env)
    port = _free_port()
    ingest = [
        *(py, "-m", "ingest", "--port", str(port), "--log-level", "WARNING"),
        *("--bootstrap-servers", settings.bootstrap_servers, "--topic", settings.topic),
    ]
    yield INGEST, port, _server(INGEST, ingest, port, "/readyz", {})


def _report(
    loads: dict[str, Load],
    singles: dict[str, list[float]],
    kafka_rate: float,
    kafka_failed: int,
    *,
    concurrency: int,
    window: float,
) -> str:
    http, ingest = loads[HTTP_CEILING], loads[INGEST]
    lower = min(http.rate, kafka_rate)
    ratio = ingest.rate / lower

    def row(name: str, load: Load) -> str:
        errors = ", ".join(f"{s}: {n}" for s, n in sorted(load.other.items())) or "0"
        return (
            f"| {name} | {load.rate:,.0f} | {load.percentile(50):.1f} | "
            f"{load.percentile(99):.1f} | {errors} | {load.per_second(load.server_cpu)} | "
            f"{load.per_second(load.client_cpu)} | {load.per_second(load.broker_cpu)} | "
            f"{load.rate / lower:.0%} |"
        )

    def cpu_per_request(load: Load) -> str:
        parts = [("server", load.server_cpu), ("client", load.client_cpu)]
        if load.broker_cpu is not None:
            parts.append(("broker", load.broker_cpu))
        return " + ".join(f"{who} {cpu / load.accepted * 1e6:.0f}" for who, cpu in parts)

    def single_ms(name: str, p: int) -> float:
        return statistics.quantiles(singles[name], n=100, method="inclusive")[p - 1] * 1000

    verdict = "met" if ratio >= GOAL_RATIO else "not met"
    single_verdict = "met" if single_ms(INGEST, 50) < GOAL_SINGLE_P50_MS else "not met"
    return f"""# ingest benchmark

Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with `python -m benchmarks.bench_ingest` on
{os.cpu_count()} CPUs ({platform.machine()}, load average {os.getloadavg()[0]:.1f} at the end),
Python {platform.python_version()}, confluent-kafka {confluent_kafka.version()}, librdkafka
{confluent_kafka.libversion()[0]}.

`PUT /events` with a {PAYLOAD_BYTES}-byte payload over {USERS} users; {concurrency} requests in
flight from one aiohttp client process; {window:g} s measured per target, in turns alternating
between the targets (so background load hits both alike), after a warm-up. Each server is one
uvicorn worker (uvloop, httptools). Client, servers and broker share the machine. CPU columns
are CPU-seconds per second of the target's windows (all threads of the process).

| target | req/s | p50 ms | p99 ms | non-202 | server CPU | client CPU | broker CPU | vs lower ceiling |
| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |
{row("HTTP ceiling: same app, producer acknowledges at once", http)}
| Kafka ceiling: bare producer loop, same producer settings | {kafka_rate:,.0f} | | | {kafka_failed} | | | | {kafka_rate / lower:.0%} |
{row("**ingest** (acks=all from the local broker)", ingest)}

Ingest reaches **{ratio:.0%}** of the lower ceiling (goal {GOAL_RATIO:.0%}: {verdict}).

CPU per accepted request, in µs: HTTP ceiling {cpu_per_request(http)}; ingest
{cpu_per_request(ingest)}. With both cores shared by client, server, broker and whatever else
runs, these (not the network) bound the rates.

Single client, one request at a time ({len(singles[INGEST])} requests): ingest p50
**{single_ms(INGEST, 50):.1f} ms** (goal < {GOAL_SINGLE_P50_MS:g} ms: {single_verdict}), p99
{single_ms(INGEST, 99):.1f} ms; HTTP ceiling p50 {single_ms(HTTP_CEILING, 50):.1f} ms.
"""  # noqa: E501 - markdown table rows


if __name__ == "__main__":
    main()
