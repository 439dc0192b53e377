"""One run: a client (bare or dispatcher) delivering to the sink at one latency and
concurrency, watched from its first arrival until it is done, and what it used meanwhile."""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field
from typing import Any

import psutil

from benchmarks.dispatch.sink import SinkClient
from benchmarks.exceptions import BenchError
from benchmarks.measure import POLL_INTERVAL, Counters, ProcessWatch, mean, read_metric
from benchmarks.processes import Child

__all__ = ["InFlight", "Run", "measure"]

IN_FLIGHT_GAUGE = "delivery_in_flight"
IN_FLIGHT_EVERY = 5
"""Polls between reads of the dispatcher's in-flight gauge. A scrape costs the dispatcher 2-3 ms
of CPU (an idle one: 4.5 scrapes a second added 8-13 ms a second), which a run at 47
deliveries a second counts as 50-60 µs per delivery for each scrape a second: read every
0.2 s, the 20 ms run at concurrency 1 went from 679 to 1,018 µs per delivery."""
FIRST_DELIVERY_TIMEOUT = 60.0
"""Seconds a client may take to start (import, join its group, fetch) before the run fails."""
STALL_TIMEOUT = 10.0
"""Seconds without a new arrival after which a run ends early."""


@dataclass(frozen=True, slots=True)
class Run:
    """One client (bare or dispatcher) delivering to the sink at one latency and concurrency."""

    client: str
    latency_ms: int
    concurrency: int
    deliveries: int
    """Arrivals at the sink over the whole run, warm-up included."""
    counted: int
    """Arrivals the rate counts: after the warm-up (or the first arrival, without one)."""
    seconds: float
    """From the end of the warm-up (or the first arrival) to the last arrival, by the sink's
    clock."""
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
    """Mean of the dispatcher's ``delivery_in_flight`` gauge over the window while at least
    ``concurrency`` users had events left to deliver (``InFlight``): how much of
    ``concurrency`` it used when it could have used all of it (``None`` for the bare client,
    or when no read qualified)."""
    in_flight_whole: float | None = None
    """The same over every read in the window, the end of the run's drain included."""
    machine_busy: float = 0.0
    """Share of all the machine's cores busy over the window (anyone's work): near 1, the
    machine and not the client bounded the rate."""
    broker_used: Counters | None = None
    """The local broker's CPU over the window (``None``: not a broker of this machine's)."""
    scraped: bool = False
    """Whether the benchmark read the client's in-flight gauge during the window: each read
    costs the dispatcher 2-3 ms of CPU, which its CPU figures then include."""

    @property
    def rate(self) -> float:
        return self.counted / self.seconds if self.seconds > 0 else 0.0

    def percent(self, seconds: float) -> float:
        """``seconds`` of CPU (or waiting) as a percentage of one core over the window."""
        return 100 * seconds / self.wall if self.wall > 0 else 0.0

    def per_delivery_us(self, seconds: float) -> float:
        return 1e6 * seconds / self.wall_deliveries if self.wall_deliveries else 0.0

    @property
    def in_flight_share(self) -> float | None:
        """Mean in flight / concurrency: 1 is every slot used all the time."""
        return None if self.in_flight is None else self.in_flight / self.concurrency


@dataclass(slots=True)
class InFlight:
    """Reads of the in-flight gauge, and which of them the goal judges.

    The goal asks for ``concurrency`` in flight *whenever at least that many users are
    waiting*. Near the end of a run users run out: a read there (or one after the last
    delivery) says nothing about starvation. The events are pre-loaded round robin, so no user
    has more than ``events_per_user`` of them; while at least ``concurrency x
    events_per_user`` events are undelivered, at least ``concurrency`` users are waiting. The
    count of undelivered events is taken after the read, so it errs on the side of leaving a
    read out (the sink counts repeated attempts too, which errs the same way)."""

    slots: int
    """Deliveries the client may have in flight (all its processes)."""
    events_per_user: int
    busy: list[float] = field(default_factory=list)
    whole: list[float] = field(default_factory=list)

    @classmethod
    def for_load(cls, slots: int, *, events: int, users: int) -> InFlight:
        return cls(slots, math.ceil(events / max(1, users)))

    def add(self, value: float | None, *, undelivered: int) -> None:
        """A read of the gauge (``None``: a process did not answer), with the events not yet
        delivered counted just after it."""
        if value is None:
            return
        self.whole.append(value)
        if undelivered >= self.slots * self.events_per_user:
            self.busy.append(value)


def measure(
    client: Child,
    sink: SinkClient,
    *,
    label: str,
    latency_ms: int,
    concurrency: int,
    deliveries: int,
    window: float,
    in_flight: InFlight,
    warmup: float = 0.0,
    broker: ProcessWatch | None = None,
) -> Run:
    """Watch the sink count ``client``'s deliveries from ``warmup`` seconds after the first
    one until ``deliveries`` arrived, ``window`` seconds passed, arrivals stalled, or the
    client exited. The warm-up leaves a client's start (a new consumer group positioning its
    partitions, connections opening) out of the rate, the CPU and the in-flight figures;
    ``in_flight`` collects the reads of the client's in-flight gauge."""
    started = time.monotonic()
    while (stats := sink.stats()).count == 0:
        if not client.running() or time.monotonic() - started > FIRST_DELIVERY_TIMEOUT:
            raise BenchError(f"{client.name} delivered nothing:\n{client.log_tail()}")
        time.sleep(POLL_INTERVAL)
    # Without a warm-up the rate runs from the first arrival, which it does not count.
    start_at, start_count = stats.first, 1
    warmed = time.monotonic() + warmup
    while warmup and time.monotonic() < warmed and client.running():
        time.sleep(POLL_INTERVAL)
        if (stats := sink.stats()).count >= deliveries:
            start_at, start_count = stats.first, 1  # all delivered while warming up
            break
        start_at, start_count = stats.now, stats.count
    watches = (client.watch, sink.process.watch)
    client0, sink0 = (watch.sample() for watch in watches)
    broker0 = broker.sample(per_thread=False) if broker else None
    machine0 = psutil.cpu_times()
    t0, first_count = time.monotonic(), stats.count
    seen, progressed = stats.count, t0
    scraped = False
    for polls in itertools.count(1):
        time.sleep(POLL_INTERVAL)
        reading = bool(client.metrics_urls) and polls % IN_FLIGHT_EVERY == 0
        value = _in_flight(client.metrics_urls) if reading else None
        scraped |= reading
        exited = not client.running()
        client_now, sink_now = (watch.sample() for watch in watches)
        stats, now = sink.stats(), time.monotonic()
        in_flight.add(value, undelivered=deliveries - stats.count)  # counted after the read
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
    broker_used = broker.sample(per_thread=False) - broker0 if broker and broker0 else None
    return Run(
        client=label,
        latency_ms=latency_ms,
        concurrency=concurrency,
        deliveries=stats.count,
        counted=max(0, stats.count - start_count),
        seconds=max(0.0, stats.last - start_at),  # negative: nothing arrived after the start
        wall=now - t0,
        wall_deliveries=stats.count - first_count,
        used=client_now - client0,
        sink_used=sink_now - sink0,
        peak_rss=client.watch.peak_rss,
        threads=client.watch.threads,
        ended_by=ended_by,
        in_flight=mean(in_flight.busy),
        in_flight_whole=mean(in_flight.whole),
        machine_busy=_busy_share(machine0, psutil.cpu_times()),
        broker_used=broker_used,
        scraped=scraped,
    )


def _busy_share(before: Any, after: Any) -> float:
    """Share of all cores busy between two ``psutil.cpu_times()`` (waiting on I/O is idle)."""
    idle = sum(getattr(after, f, 0.0) - getattr(before, f, 0.0) for f in ("idle", "iowait"))
    total = sum(after) - sum(before)
    return 1 - idle / total if total > 0 else 0.0


def _in_flight(urls: list[str]) -> float | None:
    """The in-flight gauge added up over a client's processes; ``None`` unless all answer."""
    values = [read_metric(url, IN_FLIGHT_GAUGE) for url in urls]
    return None if None in values else sum(v for v in values if v is not None)


def _ended_by(*, delivered: bool, window_over: bool, stalled: bool, exited: bool) -> str:
    """Why a run ends now, or ``""`` while it goes on."""
    reasons = {"all events": delivered, "window": window_over, "stalled": stalled, "exited": exited}
    return next((reason for reason, applies in reasons.items() if applies), "")
