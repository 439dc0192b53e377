"""The load client (this process, aiohttp, loopback only): ``concurrency`` requests in flight
against each target in turn, a window at a time, so that a change in the shared machine's
background load hits every target alike; then one request at a time, for latency alone."""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import time
from collections import Counter
from dataclasses import dataclass

import aiohttp

from benchmarks.exceptions import BenchError
from benchmarks.ingest.ceilings import PAYLOAD_BYTES, USERS
from benchmarks.ingest.targets import Target
from benchmarks.measure import ProcessWatch

__all__ = ["Load", "load_in_turns", "one_at_a_time", "percentile_ms"]

REQUEST_CAP = 1_000_000
_JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True, slots=True)
class Load:
    """What the measured windows of one target saw, summed."""

    accepted: int
    other: Counter[int]
    """Answers other than 202, by status."""
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
        return percentile_ms(self.latencies, p)

    def per_second(self, cpu: float | None) -> str:
        return "n/a" if cpu is None else f"{cpu / self.seconds:.2f}"

    def per_request_us(self, cpu: float) -> float:
        return cpu / self.accepted * 1e6 if self.accepted else 0.0

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


def percentile_ms(latencies: list[float], p: int) -> float:
    """The ``p``-th percentile of ``latencies`` (seconds), in milliseconds."""
    return statistics.quantiles(latencies, n=100, method="inclusive")[p - 1] * 1000


def bodies() -> list[bytes]:
    """One request body per user."""
    payload = "x" * PAYLOAD_BYTES
    return [json.dumps({"user_id": f"user-{u}", "payload": payload}).encode() for u in range(USERS)]


async def _window(
    session: aiohttp.ClientSession,
    target: Target,
    *,
    concurrency: int,
    seconds: float,
    broker: ProcessWatch | None,
) -> Load:
    """``concurrency`` clients start requests for ``seconds`` (at most ``REQUEST_CAP`` in
    all); the window ends when the last of them is answered."""
    payloads = bodies()
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    sent = 0
    clock = time.perf_counter

    async def client(n: int) -> None:
        nonlocal sent
        i = n
        while sent < REQUEST_CAP and clock() < stop_starting:
            sent += 1
            i += concurrency
            began = clock()
            async with session.put(target.url, data=payloads[i % USERS], headers=_JSON) as answer:
                await answer.read()
            latencies.append(clock() - began)
            statuses[answer.status] += 1

    server = target.process.watch
    cpu0 = (time.process_time(), server.sample(per_thread=False).cpu, _cpu(broker))
    start = clock()
    stop_starting = start + seconds
    await asyncio.gather(*(client(n) for n in range(concurrency)))
    elapsed = clock() - start
    broker_cpu = _cpu(broker)
    return Load(
        accepted=statuses.pop(202, 0),
        other=statuses,
        seconds=elapsed,
        latencies=latencies,
        client_cpu=time.process_time() - cpu0[0],
        server_cpu=server.sample(per_thread=False).cpu - cpu0[1],
        broker_cpu=None if broker_cpu is None or cpu0[2] is None else broker_cpu - cpu0[2],
    )


def _cpu(watch: ProcessWatch | None) -> float | None:
    return None if watch is None else watch.sample(per_thread=False).cpu


async def load_in_turns(
    targets: list[Target],
    *,
    concurrency: int,
    warmup: float,
    window: float,
    rounds: int,
    broker: ProcessWatch | None,
) -> dict[str, Load]:
    """Warm every target up, then load them in turn, ``rounds`` times each, ``window / rounds``
    seconds a turn."""
    timeout = aiohttp.ClientTimeout(total=30)
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
                broker=broker,
            )

        for target in targets:
            await run(target, warmup)
        totals: dict[str, Load] = {}
        for _ in range(rounds):
            for target in targets:
                load = await run(target, window / rounds)
                totals[target.name] = totals[target.name] + load if target.name in totals else load
    return totals


async def one_at_a_time(target: Target, *, requests: int) -> list[float]:
    """Latencies of ``requests`` requests sent one after another (after a tenth as many to
    warm up)."""
    payloads = bodies()
    latencies = []
    async with aiohttp.ClientSession() as session:
        for n in range(requests + requests // 10):
            began = time.perf_counter()
            async with session.put(target.url, data=payloads[n % USERS], headers=_JSON) as answer:
                await answer.read()
                if answer.status != 202:
                    raise BenchError(f"{target.name}: the single client got {answer.status}")
            if n >= requests // 10:  # the first tenth warms up
                latencies.append(time.perf_counter() - began)
    return latencies
