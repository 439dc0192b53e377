"""Issue 6: how fast one dispatcher process delivers, measured against what the machine allows.

Everything runs on loopback against the shared broker, each part in its own process so that none
shares a GIL with another:

* a **sink** (the ``sink`` subcommand, aiohttp) answers ``POST /latency/<ms>[/<tag>]`` with 204
  after ``ms`` milliseconds and counts what arrived (``GET /stats``; ``DELETE /stats`` resets);
* the **dispatcher**, run as ``dispatcher --manifest <generated> --log-level WARNING``, delivers
  events pre-loaded into a fresh topic to one http destination at each concurrency, a fresh
  consumer group per run, from the earliest offset;
* the **ceiling**: a bare aiohttp client (the ``client`` subcommand) POSTs to the same sink at the
  same concurrency, with none of the dispatcher's work around each request;
* one dispatcher process hosting many destinations, each delivering a small pre-loaded batch;
* one more dispatcher run under pyinstrument, to say what bounds it when it is CPU-bound.

The machine is small and shared, so absolute numbers are noisy: rates are reported next to the
bare client's, measured in the same run. A rate is (deliveries - 1) over the time from the first
to the last arrival at the sink; a run ends at its event count or its time window, whichever
comes first. It is a benchmark, not a test: nothing here judges the numbers.

    python -m benchmarks.bench_dispatch            # full: about 3 minutes
    python -m benchmarks.bench_dispatch --quick    # smoke: tiny numbers, about 20 seconds
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import itertools
import json
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Coroutine, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import aiohttp
import click
import confluent_kafka
import httpx
import psutil
import yaml
from aiohttp import web
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from eventlog.clients import admin_config, consumer_config, producer_config
from eventlog.record import Event, encode
from eventlog.topics import TopicSpec, ensure_topic

__all__ = ["main"]

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RESULTS_DIR = REPO / "benchmarks" / "results"

LATENCIES_MS = (0, 20)
"""Sink latencies every run is measured at."""
RATIO_LATENCY_MS = 20
"""The latency at which the top-concurrency / concurrency-1 ratio is taken (goal: 100x)."""
RATIO_GOAL = 100.0
MEMORY_GOAL_BYTES = 1 << 30
CPU_BOUND_PERCENT = 85
"""A loop busy (running or waiting for a core) this share of the time counts as CPU-bound."""
PARTITIONS = 12

POLL_INTERVAL = 0.1
IN_FLIGHT_GAUGE = "delivery_in_flight"
IN_FLIGHT_EVERY = 5
"""Polls between reads of the dispatcher's in-flight gauge (a scrape costs it some CPU)."""
FIRST_DELIVERY_TIMEOUT = 60.0
"""Seconds a client may take to start (import, join its group, fetch) before the run fails."""
STALL_TIMEOUT = 10.0
"""Seconds without a new arrival after which a run ends early."""
STOP_TIMEOUT = 30.0
PRELOAD_TIMEOUT = 60.0
SINK_LIFETIME = 1800.0
"""The sink exits by itself after this long, should the benchmark die without stopping it."""
MANY_DEADLINE = 60.0
"""Seconds the many-destination dispatcher has to start and deliver every batch."""
IDLE_WINDOW = 3.0
"""Seconds the many-destination dispatcher is watched idling afterwards."""
QUIET_TIMEOUT = 15.0
"""Longest wait for the sink to go quiet before idle CPU is measured anyway."""
PROFILE_TOP_LINES = 150

BARE = "bare aiohttp"
DISPATCHER = "dispatcher"
JSON_HEADERS = {"Content-Type": "application/json"}


class BenchError(click.ClickException):
    """A part of the benchmark could not run (not a slow result: those are only reported)."""


# -- what to measure ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Plan:
    """What one benchmark run measures."""

    bootstrap: str
    """Kafka brokers, ``host:port``."""
    events: int
    """Events pre-loaded for the one-destination runs."""
    users: int
    """Distinct users those events belong to (round robin)."""
    concurrencies: tuple[int, ...]
    """Destination concurrencies measured; the largest is also the bare client's."""
    window: float
    """Longest one run measures, in seconds; slow runs report their rate over this window."""
    destinations: int
    """Destinations hosted by the many-destination dispatcher."""
    batch: int
    """Events each of those destinations delivers."""
    profile: bool
    """Run the dispatcher once more under pyinstrument."""
    results_dir: Path
    """Where ``dispatch.md`` and ``dispatch-profile.txt`` are written."""
    mode: str
    """``full`` or ``quick``, for the report."""

    @property
    def top_concurrency(self) -> int:
        return max(self.concurrencies)


@dataclass(frozen=True, slots=True)
class Sizes:
    """The sizes of a plan that ``--quick`` shrinks (each has its own option too)."""

    events: int
    users: int
    concurrencies: tuple[int, ...]
    window: float
    destinations: int
    batch: int


FULL = Sizes(20_000, 1000, (1, 16, 64, 256), window=12.0, destinations=200, batch=20)
QUICK = Sizes(400, 100, (1, 256), window=3.0, destinations=10, batch=10)


# -- what was measured -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Counters:
    """A process's cumulative CPU counters at one moment."""

    cpu: float = 0.0
    """CPU seconds of the whole process (all threads)."""
    loop_cpu: float = 0.0
    """CPU seconds of its main thread, where the event loop runs."""
    loop_wait: float = 0.0
    """Seconds the main thread was ready to run but waited for a core (Linux only): high when
    the machine's other users crowd it out, so a low CPU % is not mistaken for idling."""

    def __sub__(self, earlier: Counters) -> Counters:
        return Counters(
            self.cpu - earlier.cpu,
            self.loop_cpu - earlier.loop_cpu,
            self.loop_wait - earlier.loop_wait,
        )


@dataclass(frozen=True, slots=True)
class Run:
    """One client (bare or dispatcher) delivering to the sink at one latency and concurrency."""

    client: str
    latency_ms: int
    concurrency: int
    deliveries: int
    seconds: float
    """From the first to the last arrival at the sink."""
    wall: float
    """The window the CPU figures cover, by the benchmark's clock."""
    wall_deliveries: int
    """Deliveries within that window."""
    used: Counters
    """The client's CPU over the window."""
    sink_used: Counters
    peak_rss: int
    threads: int
    ended_by: str
    """``all events``, ``window``, ``stalled`` or ``exited``."""
    in_flight: float | None = None
    """Mean of the dispatcher's ``delivery_in_flight`` gauge over the window: how much of
    ``concurrency`` it actually used (``None`` for the bare client)."""

    @property
    def rate(self) -> float:
        return (self.deliveries - 1) / self.seconds if self.seconds > 0 else 0.0

    def percent(self, seconds: float) -> float:
        """``seconds`` of CPU (or waiting) as a percentage of one core over the window."""
        return 100 * seconds / self.wall if self.wall > 0 else 0.0

    def per_delivery_us(self, seconds: float) -> float:
        return 1e6 * seconds / self.wall_deliveries if self.wall_deliveries else 0.0


@dataclass(frozen=True, slots=True)
class ManyDestinations:
    """One dispatcher process hosting many destinations."""

    destinations: int
    batch: int
    complete: int
    """Destinations that delivered their whole batch before the deadline."""
    arrivals: int
    """Requests the sink answered; above ``destinations * batch`` when attempts that timed
    out were retried."""
    dead_lettered: int
    """Records in the dead-letter topic once the process stopped."""
    seconds: float
    """From starting the process until every batch was delivered (or the deadline)."""
    rss: int
    """RSS when every destination had delivered its batch (or at the deadline)."""
    peak_rss: int
    threads: int
    idle: Counters
    """CPU seconds per second once every batch was delivered: the cost of idle consumers."""


@dataclass(frozen=True, slots=True)
class Hotspot:
    """Where profiled time was spent, as a share of all samples."""

    name: str
    share: float


@dataclass(frozen=True, slots=True)
class ProfileSummary:
    """The dispatcher's profile at the top concurrency with the 0 ms sink."""

    run: Run
    """The profiled run (slower than the unprofiled one: sampling costs time)."""
    functions: list[Hotspot]
    """Functions by self time."""
    areas: list[Hotspot]
    """Self time by package or module."""


@dataclass(frozen=True, slots=True)
class Report:
    plan: Plan
    machine: dict[str, str]
    runs: list[Run]
    many: ManyDestinations
    profile: ProfileSummary | None


# -- the sink (its own process) ----------------------------------------------------------------


def latency_of(path: str) -> float:
    """Seconds ``/latency/<ms>[/<tag>]`` asks the sink to wait; 0 for any other path."""
    parts = path.split("/")
    if len(parts) >= 3 and parts[1] == "latency" and parts[2].isdigit():
        return int(parts[2]) / 1000
    return 0.0


def is_tagged(path: str) -> bool:
    """Whether ``path`` names a tag (``/latency/<ms>/<tag>``): one of many destinations."""
    return path.count("/") >= 3


class CountingSink:
    """Answers every POST with 204 after the latency its path names, counting each answer;
    for tagged paths also the distinct event ids, so retried attempts do not count twice."""

    def __init__(self) -> None:
        self.count = 0
        self.first = 0.0
        self.last = 0.0
        self.paths: Counter[str] = Counter()
        self.ids: defaultdict[str, set[str]] = defaultdict(set)

    def clear(self) -> None:
        self.count, self.first, self.last = 0, 0.0, 0.0
        self.paths.clear()
        self.ids.clear()

    def application(self) -> web.Application:
        app = web.Application(client_max_size=1 << 20)
        app.router.add_get("/stats", self.stats)
        app.router.add_delete("/stats", self.reset)
        app.router.add_post("/{path:.*}", self.receive)
        return app

    async def receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        if is_tagged(request.path):
            self.ids[request.path].add(str(json.loads(body).get("id")))
        if delay := latency_of(request.path):
            await asyncio.sleep(delay)
        now = time.monotonic()
        if self.count == 0:
            self.first = now
        self.count += 1
        self.last = now
        self.paths[request.path] += 1
        return web.Response(status=204)

    async def stats(self, _: web.Request) -> web.Response:
        distinct = {path: len(ids) for path, ids in self.ids.items()}
        return web.json_response(
            {
                "count": self.count,
                "first": self.first,
                "last": self.last,
                "paths": self.paths,
                "distinct": distinct,
            }
        )

    async def reset(self, _: web.Request) -> web.Response:
        self.clear()
        return web.Response(status=204)


async def serve_sink(port: int, port_file: Path, lifetime: float) -> None:
    """Serve a ``CountingSink`` for ``lifetime`` seconds; the bound port goes to ``port_file``."""
    runner = web.AppRunner(CountingSink().application(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=4096).start()
    bound = runner.addresses[0][1]
    port_file.with_suffix(".tmp").write_text(str(bound))
    port_file.with_suffix(".tmp").rename(port_file)  # the reader never sees half a number
    try:
        await asyncio.sleep(lifetime)
    finally:
        await runner.cleanup()


@dataclass(frozen=True, slots=True)
class SinkStats:
    count: int
    first: float
    last: float
    paths: dict[str, int]
    """Arrivals per path."""
    distinct: dict[str, int]
    """Distinct event ids per tagged path."""

    @property
    def seconds(self) -> float:
        return self.last - self.first


class SinkClient:
    """The benchmark's view of the sink process."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10.0)

    def url(self, latency_ms: int, tag: str = "") -> str:
        return f"http://127.0.0.1:{self.port}/latency/{latency_ms}" + (f"/{tag}" if tag else "")

    def stats(self) -> SinkStats:
        body = self._http.get("/stats").raise_for_status().json()
        return SinkStats(
            body["count"], body["first"], body["last"], body["paths"], body["distinct"]
        )

    def reset(self) -> None:
        self._http.delete("/stats").raise_for_status()

    def close(self) -> None:
        self._http.close()


# -- the bare client (its own process) ---------------------------------------------------------


def sample_body() -> bytes:
    """A request body shaped like the dispatcher's (``HttpPayload``)."""
    event = bench_event(0, users=1, received_at_ms=int(time.time() * 1000))
    fields = {
        "id": event.id,
        "user_id": event.user_id,
        "payload": event.payload,
        "received_at_ms": event.received_at_ms,
    }
    return json.dumps(fields).encode()


async def blast(url: str, *, concurrency: int, requests: int, seconds: float) -> int:
    """POST to ``url`` from ``concurrency`` loops until ``requests`` were sent or ``seconds``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    body = sample_body()
    left = requests
    answered = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=10)
    ) as session:

        async def post_in_turn() -> None:
            nonlocal left, answered
            while left > 0 and loop.time() < deadline:
                left -= 1
                async with session.post(url, data=body, headers=JSON_HEADERS) as response:
                    await response.read()
                answered += 1

        await asyncio.gather(*(post_in_turn() for _ in range(concurrency)))
    return answered


def run_loop(main: Coroutine[Any, Any, Any]) -> Any:
    """Run ``main`` on uvloop when installed, as the dispatcher does."""
    try:
        import uvloop  # noqa: PLC0415 - optional, as in dispatcher.cli
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


# -- Kafka -------------------------------------------------------------------------------------


def bench_event(number: int, *, users: int, received_at_ms: int) -> Event:
    """Event ``number``: users take turns, the payload is a small JSON document."""
    payload = json.dumps(
        {"seq": number, "type": "page_view", "path": f"/products/{number % 977}", "pad": "x" * 48}
    )
    return Event(
        id=f"bench-{number:07d}",
        user_id=f"user-{number % users:05d}",
        payload=payload,
        received_at_ms=received_at_ms,
    )


def preload(bootstrap: str, topic: str, *, events: int, users: int) -> None:
    """Produce ``events`` events of ``users`` users to ``topic``, as ingest would."""
    producer = Producer(producer_config(bootstrap))
    failures: list[KafkaError] = []

    def on_delivery(error: KafkaError | None, _: Message) -> None:
        if error is not None:
            failures.append(error)

    deadline = time.monotonic() + PRELOAD_TIMEOUT
    now_ms = int(time.time() * 1000)
    for number in range(events):
        key, value, headers = encode(bench_event(number, users=users, received_at_ms=now_ms))
        while True:
            try:
                producer.produce(topic, value, key, headers=headers, on_delivery=on_delivery)
                break
            except BufferError:  # the local queue is full: let it drain
                if time.monotonic() > deadline:
                    raise BenchError(
                        f"pre-loading {topic} took over {PRELOAD_TIMEOUT:g}s"
                    ) from None
                producer.poll(0.05)
        producer.poll(0)
    unsent = producer.flush(max(1.0, deadline - time.monotonic()))
    if unsent or failures:
        raise BenchError(
            f"pre-loading {topic}: {unsent} unsent, {len(failures)} failed"
            + (f" (first: {failures[0].str()})" if failures else "")
        )


def count_records(bootstrap: str, topic: str) -> int:
    """Records in ``topic`` (its partitions' high watermarks added up; 0 if it is missing)."""
    consumer = Consumer(consumer_config(bootstrap, "bench-dispatch.watermarks"))
    try:
        found = consumer.list_topics(topic, timeout=10).topics.get(topic)
        partitions = found.partitions if found is not None and found.error is None else {}
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in partitions
        )
    finally:
        consumer.close()


def delete_quietly(admin: AdminClient, topics: list[str], groups: list[str]) -> None:
    """Best-effort cleanup of what the benchmark created on the shared broker."""
    futures: list[Any] = []
    if groups:
        futures += admin.delete_consumer_groups(groups, request_timeout=10).values()
    if topics:
        futures += admin.delete_topics(topics, operation_timeout=10).values()
    for future in futures:
        with suppress(Exception):  # a group that never committed does not exist: fine
            future.result(timeout=15)


# -- processes ---------------------------------------------------------------------------------


class Child:
    """A subprocess of the benchmark, its log, and samples of its CPU, memory and threads."""

    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict[str, str]) -> None:
        self.name = name
        self.log_path = log_path
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                argv,
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **env},
            )
        self._view = psutil.Process(self.process.pid)
        self.metrics_url: str | None = None
        """The process's Prometheus endpoint, when it serves one."""
        self.counters = Counters()
        self.rss = 0
        self.peak_rss = 0
        self.threads = 0

    def sample(self, *, per_thread: bool = True) -> None:
        """Read the process's counters; after it exited, the last reading stands."""
        try:
            with self._view.oneshot():
                times = self._view.cpu_times()
                memory = self._view.memory_info()
                self.threads = self._view.num_threads()
                scheduled = _main_thread_schedstat(self.process.pid) if per_thread else (0.0, 0.0)
                if scheduled is None:  # not Linux: CPU from psutil, waiting unknown
                    scheduled = (_main_thread_cpu(self._view), 0.0)
        except psutil.Error:
            return
        self.counters = Counters(times.user + times.system, *scheduled)
        self.rss = memory.rss
        self.peak_rss = max(self.peak_rss, memory.rss)

    def running(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM (the dispatcher drains and commits), SIGKILL if it does not exit in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def _main_thread_cpu(view: psutil.Process) -> float:
    threads = view.threads()
    main = next((t for t in threads if t.id == view.pid), None)  # Linux: the tid is the pid
    if main is None:  # elsewhere: the busiest thread stands for the loop
        main = max(threads, key=lambda t: t.user_time + t.system_time)
    return main.user_time + main.system_time


def _main_thread_schedstat(pid: int) -> tuple[float, float] | None:
    """Seconds the main thread of ``pid`` ran, and waited on a run queue (Linux only)."""
    try:  # "<ns on cpu> <ns waiting on a runqueue> <timeslices>"
        ran, waited, _ = Path(f"/proc/{pid}/task/{pid}/schedstat").read_text().split()
        return int(ran) / 1e9, int(waited) / 1e9
    except (OSError, ValueError):
        return None


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise BenchError(f"{what} did not happen within {timeout:g}s")
        time.sleep(POLL_INTERVAL)


# -- measuring one run -------------------------------------------------------------------------


def measure(
    client: Child,
    sink: SinkClient,
    sink_process: Child,
    *,
    label: str,
    latency_ms: int,
    concurrency: int,
    deliveries: int,
    window: float,
) -> Run:
    """Watch the sink count ``client``'s deliveries from the first one until ``deliveries``
    arrived, ``window`` seconds passed, arrivals stalled, or the client exited."""
    started = time.monotonic()
    while (stats := sink.stats()).count == 0:
        if not client.running() or time.monotonic() - started > FIRST_DELIVERY_TIMEOUT:
            raise BenchError(f"{client.name} delivered nothing:\n{client.log_tail()}")
        time.sleep(POLL_INTERVAL)
    client.sample()
    sink_process.sample()
    t0, first_count = time.monotonic(), stats.count
    client0, sink0 = client.counters, sink_process.counters
    seen, progressed = stats.count, t0
    in_flight: list[float | None] = []
    for polls in itertools.count(1):
        time.sleep(POLL_INTERVAL)
        if client.metrics_url and polls % IN_FLIGHT_EVERY == 0:
            in_flight.append(read_gauge(client.metrics_url, IN_FLIGHT_GAUGE))
        exited = not client.running()
        client.sample()
        sink_process.sample()
        stats, now = sink.stats(), time.monotonic()
        if stats.count > seen:
            seen, progressed = stats.count, now
        ended_by = _ended_by(
            delivered=stats.count >= deliveries,
            window_over=now - t0 >= window,
            stalled=now - progressed >= STALL_TIMEOUT,
            exited=exited,
        )
        if ended_by:
            break
    return Run(
        client=label,
        latency_ms=latency_ms,
        concurrency=concurrency,
        deliveries=stats.count,
        seconds=stats.seconds,
        wall=now - t0,
        wall_deliveries=stats.count - first_count,
        used=client.counters - client0,
        sink_used=sink_process.counters - sink0,
        peak_rss=client.peak_rss,
        threads=client.threads,
        ended_by=ended_by,
        in_flight=_mean([value for value in in_flight if value is not None]),
    )


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def read_gauge(url: str, name: str) -> float | None:
    """The sum of gauge ``name`` over its label sets on a Prometheus page; ``None`` if absent."""
    try:
        text = httpx.get(url, timeout=2.0).raise_for_status().text
    except httpx.HTTPError:
        return None
    values = re.findall(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", text, re.MULTILINE)
    return sum(float(value) for value in values) if values else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _ended_by(*, delivered: bool, window_over: bool, stalled: bool, exited: bool) -> str:
    """Why a run ends now, or ``""`` while it goes on."""
    reasons = {"all events": delivered, "window": window_over, "stalled": stalled, "exited": exited}
    return next((reason for reason, applies in reasons.items() if applies), "")


# -- the benchmark -----------------------------------------------------------------------------


def http_destination(name: str, url: str, concurrency: int | None = None) -> dict[str, Any]:
    """A manifest entry; with ``concurrency``, the connection pool is made as large, since
    ``max_connections`` (default 100) would otherwise cap the concurrency measured."""
    entry: dict[str, Any] = {"name": name, "type": "http", "url": url}
    if concurrency is not None:
        entry |= {
            "concurrency": concurrency,
            "max_buffered": max(1000, 4 * concurrency),
            "max_connections": concurrency,
        }
    return entry


class Bench:
    """The benchmark's processes, temporary files and Kafka topics, cleaned up on exit."""

    def __init__(self, plan: Plan, workdir: Path) -> None:
        self.plan = plan
        self.workdir = workdir
        self.run_id = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
        self._admin = AdminClient(admin_config(plan.bootstrap))
        self._topics: list[str] = []
        self._groups: list[str] = []
        self._exit = ExitStack()
        self._sink: tuple[Child, SinkClient] | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self._exit.close()
        delete_quietly(self._admin, self._topics, self._groups)

    @contextmanager
    def _child(self, name: str, argv: list[str]) -> Iterator[Child]:
        log_path = self.workdir / f"{name}.log"
        child = Child(name, argv, log_path, {"KAFKA_BOOTSTRAP_SERVERS": self.plan.bootstrap})
        try:
            yield child
        finally:
            child.stop()

    @property
    def sink(self) -> tuple[Child, SinkClient]:
        assert self._sink is not None, "start_sink() first"
        return self._sink

    def start_sink(self) -> None:
        port_file = self.workdir / "sink.port"
        port_file.unlink(missing_ok=True)
        argv = [sys.executable, "-m", "benchmarks.bench_dispatch", "sink", "--port-file"]
        argv += [str(port_file), "--lifetime", str(SINK_LIFETIME)]
        process = self._exit.enter_context(self._child("sink", argv))
        wait_for(port_file.exists, 30.0, "the sink listening")
        client = SinkClient(int(port_file.read_text()))
        self._exit.callback(client.close)
        self._sink = (process, client)

    def fresh_topic(self, label: str, *, events: int, users: int) -> str:
        topic = f"bench-dispatch.{self.run_id}.{label}"
        self._topics += [topic, f"{topic}.dead-letter"]  # the dispatcher makes the second
        ensure_topic(self._admin, TopicSpec(name=topic, partitions=PARTITIONS))
        preload(self.plan.bootstrap, topic, events=events, users=users)
        return topic

    def bare(self, latency_ms: int, concurrency: int) -> Run:
        """The ceiling: a plain aiohttp client at ``concurrency`` against the same sink."""
        sink = self.sink[1]
        sink.reset()
        argv = [sys.executable, "-m", "benchmarks.bench_dispatch", "client"]
        argv += ["--url", sink.url(latency_ms), "--concurrency", str(concurrency)]
        argv += ["--requests", str(self.plan.events), "--seconds", str(self.plan.window + 5)]
        name = f"bare-c{concurrency}-l{latency_ms}"
        with self._child(name, argv) as client:
            return self._measure(client, BARE, latency_ms, concurrency)

    def dispatcher(self, topic: str, latency_ms: int, concurrency: int) -> Run:
        """The dispatcher delivering ``topic`` to one http destination."""
        name = f"c{concurrency}-l{latency_ms}"
        manifest = self._manifest(
            name, topic, [http_destination("sink", self.sink[1].url(latency_ms), concurrency)]
        )
        self.sink[1].reset()
        port = free_port()
        argv = [*self._dispatcher_argv(manifest), "--metrics-port", str(port)]
        with self._child(f"dispatcher-{name}", argv) as client:
            client.metrics_url = f"http://127.0.0.1:{port}/metrics"
            return self._measure(client, DISPATCHER, latency_ms, concurrency)

    def profiled(self, topic: str) -> ProfileSummary:
        """The top-concurrency 0 ms run again, under pyinstrument; saves the profile's top."""
        concurrency = self.plan.top_concurrency
        name = f"profile-c{concurrency}-l0"
        manifest = self._manifest(
            name, topic, [http_destination("sink", self.sink[1].url(0), concurrency)]
        )
        session_path = self.workdir / "dispatch.pyisession"
        argv = [sys.executable, "-m", "pyinstrument", "-r", "pyisession", "-o", str(session_path)]
        argv += self._dispatcher_argv(manifest)
        self.sink[1].reset()
        with self._child(name, argv) as client:
            run = self._measure(client, DISPATCHER, 0, concurrency)
        if not session_path.exists():
            raise BenchError(f"pyinstrument wrote no profile:\n{client.log_tail()}")
        return summarise_profile(session_path, run, self.plan.results_dir)

    def many_destinations(self) -> ManyDestinations:
        """One process, ``plan.destinations`` http destinations (manifest defaults), each
        delivering the same small pre-loaded batch."""
        plan, sink = self.plan, self.sink[1]
        topic = self.fresh_topic("batch", events=plan.batch, users=min(plan.users, plan.batch))
        tags = [f"d{number:03d}" for number in range(plan.destinations)]
        manifest = self._manifest(
            "many", topic, [http_destination(tag, sink.url(0, tag)) for tag in tags]
        )
        paths = [f"/latency/0/{tag}" for tag in tags]
        sink.reset()
        started, complete, stats = time.monotonic(), 0, sink.stats()
        with self._child("dispatcher-many", self._dispatcher_argv(manifest)) as client:
            while time.monotonic() - started < MANY_DEADLINE and client.running():
                time.sleep(0.25)
                client.sample(per_thread=False)
                stats = sink.stats()
                complete = sum(stats.distinct.get(path, 0) >= plan.batch for path in paths)
                if complete == len(paths):
                    break
            seconds = time.monotonic() - started
            client.sample()
            rss, idle = client.rss, self._idle_cpu(client)
        if complete < len(paths):
            click.echo(
                f"    only {complete} complete; dispatcher log:\n{client.log_tail(1500)}", err=True
            )
        return ManyDestinations(
            destinations=plan.destinations,
            batch=plan.batch,
            complete=complete,
            arrivals=stats.count,
            dead_lettered=count_records(plan.bootstrap, f"{topic}.dead-letter"),
            seconds=seconds,
            rss=rss,
            peak_rss=client.peak_rss,
            threads=client.threads,
            idle=idle,
        )

    def _idle_cpu(self, client: Child) -> Counters:
        """CPU per second of ``client`` once nothing arrives at the sink any more (retries of
        timed-out attempts may still be running when every batch is complete)."""
        quiet_since, seen = time.monotonic(), self.sink[1].stats().count
        deadline = quiet_since + QUIET_TIMEOUT
        while time.monotonic() - quiet_since < 1.0 and time.monotonic() < deadline:
            time.sleep(POLL_INTERVAL)
            if (count := self.sink[1].stats().count) != seen:
                quiet_since, seen = time.monotonic(), count
        client.sample()
        before, started = client.counters, time.monotonic()
        time.sleep(IDLE_WINDOW)
        client.sample()
        used, wall = client.counters - before, time.monotonic() - started
        return Counters(used.cpu / wall, used.loop_cpu / wall, used.loop_wait / wall)

    def _measure(self, client: Child, label: str, latency_ms: int, concurrency: int) -> Run:
        click.echo(f"  {label} latency={latency_ms}ms concurrency={concurrency} ...", err=True)
        run = measure(
            client,
            self.sink[1],
            self.sink[0],
            label=label,
            latency_ms=latency_ms,
            concurrency=concurrency,
            deliveries=self.plan.events,
            window=self.plan.window,
        )
        click.echo(
            f"    {run.deliveries} in {run.seconds:.2f}s = {run.rate:,.0f}/s,"
            f" cpu {run.percent(run.used.cpu):.0f}% (loop {run.percent(run.used.loop_cpu):.0f}%,"
            f" waiting {run.percent(run.used.loop_wait):.0f}%),"
            f" sink cpu {run.percent(run.sink_used.cpu):.0f}% [{run.ended_by}]",
            err=True,
        )
        return run

    def _manifest(self, name: str, topic: str, destinations: list[dict[str, Any]]) -> Path:
        group_prefix = f"bench-dispatch.{self.run_id}.{name}"
        self._groups += [f"{group_prefix}.{entry['name']}" for entry in destinations]
        document = {
            "topic": topic,
            "group_prefix": group_prefix,
            "start_from": "earliest",
            "kafka": {"bootstrap_servers": self.plan.bootstrap},
            "defaults": {
                "timeout": "5s",
                "retry": {"max_retries": 2, "initial_backoff": "50ms", "max_backoff": "200ms"},
            },
            "destinations": destinations,
        }
        path = self.workdir / f"{name}.yaml"
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        return path

    @staticmethod
    def _dispatcher_argv(manifest: Path) -> list[str]:
        return [
            str(BIN / "dispatcher"),
            "--manifest",
            str(manifest),
            "--log-level",
            "WARNING",
            "--drain-timeout",
            "2",
        ]


def run_benchmark(plan: Plan) -> Report:
    """Every measurement of the plan, in one go, with one sink and one pre-loaded topic."""
    machine = machine_facts()
    with tempfile.TemporaryDirectory(prefix="bench-dispatch-") as tmp, Bench(plan, Path(tmp)) as b:
        b.start_sink()
        click.echo(f"pre-loading {plan.events} events of {plan.users} users ...", err=True)
        topic = b.fresh_topic("events", events=plan.events, users=plan.users)
        runs: list[Run] = []
        for latency in LATENCIES_MS:
            # The ceiling is measured right before the runs compared with it.
            runs.append(b.bare(latency, plan.top_concurrency))
            if latency == RATIO_LATENCY_MS:
                runs.append(b.bare(latency, 1))
            runs += [b.dispatcher(topic, latency, c) for c in plan.concurrencies]
        profile = None
        if plan.profile:
            click.echo("profiling the dispatcher ...", err=True)
            profile = b.profiled(topic)
        click.echo(f"{plan.destinations} destinations in one process ...", err=True)
        many = b.many_destinations()
    return Report(plan, machine, runs, many, profile)


def machine_facts() -> dict[str, str]:
    """What the numbers depend on, for the report."""
    try:
        loop = f"uvloop {importlib.metadata.version('uvloop')}"
    except importlib.metadata.PackageNotFoundError:
        loop = "asyncio"
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return {
        "date": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "nproc": str(os.cpu_count()),
        "memory": f"{psutil.virtual_memory().total / (1 << 30):.0f} GiB",
        "python": platform.python_version(),
        "confluent-kafka": importlib.metadata.version("confluent-kafka"),
        "librdkafka": confluent_kafka.libversion()[0],
        "aiohttp": aiohttp.__version__,
        "event loop": loop,
        "dispatcher code": code_version(),
        "load average at start": load,
    }


def code_version() -> str:
    """The commit measured, noting uncommitted changes to the code under test."""

    def git(*args: str) -> str:
        result = subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, check=False
        )
        return result.stdout.strip() if result.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "dispatcher", "eventlog")
    return f"commit {commit}" + (" with uncommitted changes" if dirty else "")


# -- the profile -------------------------------------------------------------------------------


def summarise_profile(session_path: Path, run: Run, results_dir: Path) -> ProfileSummary:
    """Self time by function and by area within the event loop (start-up and imports left
    out); the profile's top goes to ``dispatch-profile.txt``."""
    from pyinstrument.renderers import ConsoleRenderer  # noqa: PLC0415 - dev-only
    from pyinstrument.session import Session  # noqa: PLC0415

    session = Session.load(str(session_path))
    root = session.root_frame()
    loop = _event_loop_frame(root) if root is not None else None
    functions: defaultdict[str, float] = defaultdict(float)
    areas: defaultdict[str, float] = defaultdict(float)
    if loop is not None:
        for frame, area, seconds in _self_times(loop):
            functions[f"{_name(frame)} ({_short_location(frame)})"] += seconds
            areas[area] += seconds
    total = (loop.time if loop is not None else 0.0) or 1.0
    header = [
        f"pyinstrument: the dispatcher at concurrency {run.concurrency} delivering to the 0 ms"
        f" sink ({run.deliveries:,} deliveries, {run.rate:,.0f}/s under the profiler).",
        "Main thread only (the event loop); librdkafka's threads are native and not sampled.",
        "Shares are of the time inside the event loop (Runner.run); start-up and imports are"
        " left out. 'Runner.run' self time is uvloop's own native work (I/O, scheduling) and idle.",
    ]
    tree = ConsoleRenderer(show_all=False, time="percent_of_total").render(session)
    text = [
        *header,
        "",
        "== Functions by self time ==",
        *(f"{100 * h.share:6.1f}%  {h.name}" for h in _shares(functions, total, top=50)),
        "",
        "== Self time by area (built-ins count for their caller) ==",
        *(f"{100 * h.share:6.1f}%  {h.name}" for h in _shares(areas, total, top=20)),
        "",
        "== Call tree of the whole process (library frames folded) ==",
        *tree.splitlines()[:PROFILE_TOP_LINES],
    ]
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "dispatch-profile.txt").write_text("\n".join(text) + "\n")
    return ProfileSummary(
        run=run,
        functions=_shares(functions, total, top=15),
        areas=_shares(areas, total, top=12),
    )


def _shares(seconds: dict[str, float], total: float, *, top: int) -> list[Hotspot]:
    ranked = sorted(seconds.items(), key=lambda item: -item[1])[:top]
    return [Hotspot(name, spent / total) for name, spent in ranked]


def _event_loop_frame(root: Any) -> Any:
    """The frame of ``asyncio.Runner.run`` (the loop's whole life), else ``root``."""
    stack = [root]
    while stack:
        frame = stack.pop()
        if _name(frame) == "Runner.run" and str(frame.file_path).endswith("asyncio/runners.py"):
            return frame
        stack.extend(frame.children)
    return root


def _self_times(top: Any) -> Iterator[tuple[Any, str, float]]:
    """(frame, area, self seconds) for every real frame under ``top``. pyinstrument keeps a
    frame's own time in synthetic children (``[self]``, ``[await]``), counted for it here;
    built-in functions count for their caller's area."""
    stack: list[tuple[Any, str]] = [(top, _area(top.file_path) or "?")]
    while stack:
        frame, caller_area = stack.pop()
        area = _area(frame.file_path) or caller_area
        if frame is top and _name(frame) == "Runner.run":
            area = "event loop (uvloop native, and idle)"
        own = sum(child.time for child in frame.children if child.is_synthetic_leaf)
        if not frame.is_synthetic and own > 0:
            yield frame, area, own
        stack.extend((c, area) for c in frame.children if not c.is_synthetic_leaf)


def _name(frame: Any) -> str:
    function = str(frame.function)
    return function if "." in function or not frame.class_name else f"{frame.class_name}.{function}"


def _short_location(frame: Any) -> str:
    path = str(frame.file_path or "?")
    for marker in ("site-packages/", str(REPO) + "/"):
        if marker in path:
            return f"{path.split(marker, 1)[1]}:{frame.line_no}"
    if "/lib/python3" in path:  # the standard library: lib/python3.X/<module path>
        return f"{path.split('/lib/python3', 1)[1].split('/', 1)[-1]}:{frame.line_no}"
    return f"{path}:{frame.line_no}"


def _area(file_path: str | None) -> str | None:
    """The package (or stdlib module) a frame's file belongs to; ``None`` for built-ins."""
    if not file_path or file_path.startswith("<"):
        return None
    path = str(file_path)
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if path.startswith(str(REPO) + "/"):
        parts = Path(path).relative_to(REPO).with_suffix("").parts
        return ".".join(parts[:3] if parts[0] == "dispatcher" else parts[:1])
    if "/lib/python3" in path:
        module = path.split("/lib/python3", 1)[1].split("/")[1]
        return "stdlib " + module.removesuffix(".py")
    return path


# -- the report --------------------------------------------------------------------------------


def render(report: Report) -> str:
    """The results as markdown."""
    sections = [
        _header(report),
        _runs_table(report.runs),
        _ratios(report),
        _ceiling(report.runs),
        _many_table(report.many, report.runs),
    ]
    if report.profile is not None:
        sections.append(_profile_section(report.profile))
    return "\n\n".join(sections) + "\n"


def _header(report: Report) -> str:
    plan = report.plan
    facts = "; ".join(f"{key} {value}" for key, value in report.machine.items())
    return "\n".join(
        [
            "# Dispatcher benchmark (issue 6)",
            "",
            f"Written by `python -m benchmarks.bench_dispatch` (`just bench-dispatch`), {plan.mode}"
            " mode.",
            "",
            f"Machine: {facts}. Other people's tests share this machine: compare the ratios, not"
            " the absolute rates.",
            "",
            f"Setup: {plan.events:,} events of {plan.users:,} users pre-loaded in a"
            f" {PARTITIONS}-partition topic. Sink: aiohttp in its own process, answering 204 after"
            " 0 or 20 ms. Dispatcher: `dispatcher --manifest <generated> --log-level WARNING` as a"
            " subprocess, a fresh consumer group per run from the earliest offset, one http"
            " destination with `max_connections` = `concurrency`. Bare aiohttp: one process POSTing"
            " the same kind of body to the same sink from `concurrency` loops. A rate is"
            " (deliveries - 1) / (last - first arrival at the sink); a run ends at all events or"
            f" after {plan.window:g} s. CPU % is of one core, over the measured window; 'loop' is"
            " the main thread alone (the event loop), the rest is mostly librdkafka's threads.",
        ]
    )


def _runs_table(runs: list[Run]) -> str:
    rows = [
        "## Deliveries per second",
        "",
        "| client | sink latency ms | concurrency | deliveries | seconds | deliveries/s"
        " | x bare at top concurrency | CPU % | loop CPU % | loop waiting % | CPU µs/delivery"
        " | loop CPU µs/delivery | sink CPU % | sink waiting % | mean in flight | peak RSS MiB"
        " | threads | ended by |",
        "| --- |" + " ---: |" * 16 + " --- |",
    ]
    for run in runs:
        ceiling = _ceiling_run(runs, run.latency_ms)
        ratio = run.rate / ceiling.rate if ceiling is not None and ceiling.rate else 0.0
        cells = [
            run.client,
            str(run.latency_ms),
            str(run.concurrency),
            f"{run.deliveries:,}",
            f"{run.seconds:.2f}",
            f"{run.rate:,.0f}",
            f"{ratio:.2f}",
            f"{run.percent(run.used.cpu):.0f}",
            f"{run.percent(run.used.loop_cpu):.0f}",
            f"{run.percent(run.used.loop_wait):.0f}",
            f"{run.per_delivery_us(run.used.cpu):,.0f}",
            f"{run.per_delivery_us(run.used.loop_cpu):,.0f}",
            f"{run.percent(run.sink_used.cpu):.0f}",
            f"{run.percent(run.sink_used.loop_wait):.0f}",
            "-" if run.in_flight is None else f"{run.in_flight:.0f}",
            f"{run.peak_rss / (1 << 20):.0f}",
            str(run.threads),
            run.ended_by,
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _find(runs: list[Run], client: str, latency_ms: int, concurrency: int) -> Run | None:
    return next(
        (
            r
            for r in runs
            if (r.client, r.latency_ms, r.concurrency) == (client, latency_ms, concurrency)
        ),
        None,
    )


def _ceiling_run(runs: list[Run], latency_ms: int) -> Run | None:
    top = max(r.concurrency for r in runs)
    return _find(runs, BARE, latency_ms, top)


def _ratio(numerator: Run | None, denominator: Run | None) -> float | None:
    if numerator is None or denominator is None or not denominator.rate:
        return None
    return numerator.rate / denominator.rate


def _ratios(report: Report) -> str:
    runs, top, at = report.runs, report.plan.top_concurrency, RATIO_LATENCY_MS
    rows = [
        "## Ratios",
        "",
        "| ratio | value | goal |",
        "| --- | ---: | --- |",
    ]

    def row(name: str, value: float | None, goal: str) -> None:
        shown = f"{value:,.1f}x" if value is not None else "n/a"
        rows.append(f"| {name} | {shown} | {goal} |")

    row(
        f"dispatcher concurrency {top} / concurrency 1, {at} ms sink",
        _ratio(_find(runs, DISPATCHER, at, top), _find(runs, DISPATCHER, at, 1)),
        f">= {RATIO_GOAL:g}x",
    )
    row(
        f"bare aiohttp concurrency {top} / concurrency 1, {at} ms sink",
        _ratio(_find(runs, BARE, at, top), _find(runs, BARE, at, 1)),
        "reference",
    )
    for latency in LATENCIES_MS:
        row(
            f"dispatcher / bare aiohttp, concurrency {top}, {latency} ms sink",
            _ratio(_find(runs, DISPATCHER, latency, top), _find(runs, BARE, latency, top)),
            "1x is the ceiling",
        )
    rows += ["", _goal_arithmetic(runs, top)]
    return "\n".join(rows)


def _goal_arithmetic(runs: list[Run], top: int) -> str:
    """What the ratio goal asks of the loop's CPU per delivery, next to what it uses."""
    one, fast = _find(runs, DISPATCHER, RATIO_LATENCY_MS, 1), _find(runs, DISPATCHER, 0, top)
    bare = _find(runs, BARE, 0, top)
    if one is None or fast is None or bare is None or not one.rate:
        return ""
    needed = RATIO_GOAL * one.rate
    return (
        f"{RATIO_GOAL:g}x at {RATIO_LATENCY_MS} ms means {needed:,.0f} deliveries/s from one"
        f" event loop: at most {1e6 / needed:,.0f} µs of loop CPU per delivery on a core of its"
        f" own. The dispatcher used {fast.per_delivery_us(fast.used.loop_cpu):,.0f} µs"
        f" (concurrency {top}, 0 ms sink); the bare aiohttp client"
        f" {bare.per_delivery_us(bare.used.loop_cpu):,.0f} µs per request."
    )


def _ceiling(runs: list[Run]) -> str:
    """The CPU-bound case: the top concurrency with the 0 ms sink, next to the bare client."""
    top = max(r.concurrency for r in runs)
    bound, bare = _find(runs, DISPATCHER, 0, top), _find(runs, BARE, 0, top)
    zero = [r for r in runs if r.client == DISPATCHER and r.latency_ms == 0]
    if bound is None or bare is None:
        return "## CPU ceiling (0 ms sink)\n\nNot measured."
    fastest = max(zero, key=lambda r: r.rate)
    loop_us, bare_us = (r.per_delivery_us(r.used.loop_cpu) for r in (bound, bare))
    busy = bound.percent(bound.used.loop_cpu + bound.used.loop_wait)
    verdict = (
        "CPU-bound" if busy >= CPU_BOUND_PERCENT else "not CPU-bound: something else bounds it"
    )
    return "\n".join(
        [
            "## CPU ceiling (0 ms sink)",
            "",
            f"At concurrency {top} the dispatcher delivered **{bound.rate:,.0f}/s**; its event"
            f" loop ran {bound.percent(bound.used.loop_cpu):.0f}% of the time and waited for a"
            f" core another {bound.percent(bound.used.loop_wait):.0f}% ({busy:.0f}% busy:"
            f" {verdict}; the threshold is {CPU_BOUND_PERCENT}%). The fastest 0 ms run was"
            f" {fastest.rate:,.0f}/s at concurrency {fastest.concurrency}.",
            "",
            f"Loop CPU per delivery: **{loop_us:,.0f} µs**, so one core given to the loop alone"
            f" tops out near **{1e6 / loop_us if loop_us else 0:,.0f} deliveries/s**. The bare"
            f" aiohttp client spends {bare_us:,.0f} µs per request (near"
            f" {1e6 / bare_us if bare_us else 0:,.0f}/s): the dispatcher's own work per delivery"
            f" is {loop_us - bare_us:,.0f} µs on top. CPU per delivery suffers less from the"
            " machine's other users than the rate does.",
        ]
    )


def _many_table(many: ManyDestinations, runs: list[Run]) -> str:
    singles = [r.peak_rss for r in runs if r.client == DISPATCHER]
    single = min(singles) if singles else 0
    extra = (many.rss - single) / max(1, many.destinations - 1) if single else 0.0
    mib = 1 << 20
    under = "yes" if many.peak_rss < MEMORY_GOAL_BYTES else "NO"
    cells = [
        str(many.destinations),
        f"{many.complete} of {many.destinations}",
        f"{many.arrivals:,} of {many.destinations * many.batch:,}",
        f"{many.dead_lettered:,}",
        f"{many.seconds:.1f}",
        f"{many.rss / mib:.0f}",
        f"{many.peak_rss / mib:.0f}",
        f"{many.rss / mib / many.destinations:.2f}",
        f"{extra / mib:.2f}",
        str(many.threads),
        f"{many.threads / many.destinations:.1f}",
        f"{100 * many.idle.cpu:.0f}",
        f"{100 * many.idle.loop_cpu:.0f}",
        under,
    ]
    return "\n".join(
        [
            f"## {many.destinations} destinations in one process",
            "",
            "Each an http destination with the default concurrency, max_buffered and"
            " max_connections (attempt timeout 5 s, 2 retries), each delivering the same"
            f" {many.batch}-event batch to the 0 ms sink; RSS and threads read once every batch"
            " had arrived (all consuming), or at the deadline. 'Delivered whole batch' counts"
            " distinct event ids at the sink; arrivals above the batch total are attempts that"
            " timed out in the dispatcher and were retried; dead letters are events it gave up"
            " on. 'Per extra destination' is over the smallest one-destination dispatcher above."
            f" Idle CPU is over {IDLE_WINDOW:g} s afterwards, with nothing left to deliver.",
            "",
            "| destinations | delivered whole batch | sink arrivals | dead-lettered"
            " | seconds to all delivered | RSS MiB | peak RSS MiB | RSS per destination MiB"
            " | RSS per extra destination MiB | threads | threads per destination"
            " | idle CPU % | idle loop CPU % | under 1 GiB |",
            "|" + " ---: |" * 13 + " --- |",
            "| " + " | ".join(cells) + " |",
        ]
    )


def _profile_section(profile: ProfileSummary) -> str:
    run = profile.run
    rows = [
        "## Where the dispatcher's CPU goes",
        "",
        f"pyinstrument on the main thread at concurrency {run.concurrency}, 0 ms sink"
        f" ({run.deliveries:,} deliveries at {run.rate:,.0f}/s under the profiler); the top of the"
        " profile is in `dispatch-profile.txt`. Shares are of the time inside the event loop, by"
        " self time (built-ins count for their caller's area).",
        "",
        "| area | share |",
        "| --- | ---: |",
        *(f"| {h.name} | {100 * h.share:.1f}% |" for h in profile.areas),
        "",
        "| function (self time) | share |",
        "| --- | ---: |",
        *(f"| `{h.name}` | {100 * h.share:.1f}% |" for h in profile.functions),
    ]
    return "\n".join(rows)


# -- command line ------------------------------------------------------------------------------


def _sizes_help(what: str, full: object, quick: object) -> str:
    def shown(value: object) -> str:
        return " ".join(map(str, value)) if isinstance(value, tuple) else str(value)

    return f"{what} [{shown(full)}; --quick: {shown(quick)}]"


@click.group(invoke_without_command=True)
@click.option("--quick", is_flag=True, help="Tiny numbers: a smoke run of the whole harness.")
@click.option(
    "--events",
    type=click.IntRange(min=10),
    help=_sizes_help("Events pre-loaded.", FULL.events, QUICK.events),
)
@click.option(
    "--users",
    type=click.IntRange(min=1),
    help=_sizes_help("Users they belong to.", FULL.users, QUICK.users),
)
@click.option(
    "--concurrency",
    "concurrencies",
    type=click.IntRange(min=1),
    multiple=True,
    help=_sizes_help(
        "Concurrency to measure, repeatable.", FULL.concurrencies, QUICK.concurrencies
    ),
)
@click.option(
    "--window",
    type=click.FloatRange(min=0.5),
    help=_sizes_help("Longest run, seconds.", FULL.window, QUICK.window),
)
@click.option(
    "--destinations",
    type=click.IntRange(min=1),
    help=_sizes_help("Destinations in one process.", FULL.destinations, QUICK.destinations),
)
@click.option(
    "--batch",
    type=click.IntRange(min=1),
    help=_sizes_help("Events each of them delivers.", FULL.batch, QUICK.batch),
)
@click.option("--profile/--no-profile", default=True, show_default=True)
@click.option(
    "--results-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=RESULTS_DIR,
    show_default=True,
)
@click.option(
    "--bootstrap-servers",
    envvar="KAFKA_BOOTSTRAP_SERVERS",
    default="127.0.0.1:9092",
    show_default=True,
)
@click.pass_context
def main(  # noqa: PLR0917 - click passes every option by position
    ctx: click.Context,
    quick: bool,
    events: int | None,
    users: int | None,
    concurrencies: tuple[int, ...],
    window: float | None,
    destinations: int | None,
    batch: int | None,
    profile: bool,
    results_dir: Path,
    bootstrap_servers: str,
) -> None:
    """Measure the dispatcher's deliveries/s against a bare aiohttp client; write a table."""
    if ctx.invoked_subcommand is not None:
        return
    sizes = QUICK if quick else FULL
    plan = Plan(
        bootstrap=bootstrap_servers,
        events=sizes.events if events is None else events,
        users=sizes.users if users is None else users,
        concurrencies=tuple(sorted(set(concurrencies))) or sizes.concurrencies,
        window=sizes.window if window is None else window,
        destinations=sizes.destinations if destinations is None else destinations,
        batch=sizes.batch if batch is None else batch,
        profile=profile,
        results_dir=results_dir,
        mode="quick" if quick else "full",
    )
    started = time.monotonic()
    report = run_benchmark(plan)
    text = render(report)
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "dispatch.md").write_text(text)
    click.echo(text)
    click.echo(
        f"wrote {results_dir / 'dispatch.md'} in {time.monotonic() - started:.0f}s", err=True
    )


@main.command(hidden=True)
@click.option("--port", default=0, show_default=True)
@click.option("--port-file", type=click.Path(path_type=Path, dir_okay=False), required=True)
@click.option("--lifetime", default=SINK_LIFETIME, show_default=True)
def sink(port: int, port_file: Path, lifetime: float) -> None:
    """Serve the counting sink on loopback (the benchmark starts it)."""
    run_loop(serve_sink(port, port_file, lifetime))


@main.command(hidden=True)
@click.option("--url", required=True)
@click.option("--concurrency", type=click.IntRange(min=1), required=True)
@click.option("--requests", type=click.IntRange(min=1), required=True)
@click.option("--seconds", type=click.FloatRange(min=0.1), required=True)
def client(url: str, concurrency: int, requests: int, seconds: float) -> None:
    """POST to the sink like a bare aiohttp client (the benchmark starts it)."""
    answered = run_loop(blast(url, concurrency=concurrency, requests=requests, seconds=seconds))
    click.echo(f"answered={answered}", err=True)


if __name__ == "__main__":
    main()
