"""One run: a client (bare or dispatcher) delivering to the sink at one latency and
concurrency, watched from its first arrival until it is done, and what it used meanwhile."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

from benchmarks.dispatch.sink import SinkClient
from benchmarks.exceptions import BenchError
from benchmarks.measure import POLL_INTERVAL, Counters, mean, read_metric
from benchmarks.processes import Child

__all__ = ["Run", "measure"]

IN_FLIGHT_GAUGE = "delivery_in_flight"
IN_FLIGHT_EVERY = 5
"""Polls between reads of the dispatcher's in-flight gauge (a scrape costs it some CPU)."""
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


def measure(
    client: Child,
    sink: SinkClient,
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
    watches = (client.watch, sink.process.watch)
    client0, sink0 = (watch.sample() for watch in watches)
    t0, first_count = time.monotonic(), stats.count
    seen, progressed = stats.count, t0
    in_flight: list[float | None] = []
    for polls in itertools.count(1):
        time.sleep(POLL_INTERVAL)
        if client.metrics_url and polls % IN_FLIGHT_EVERY == 0:
            in_flight.append(read_metric(client.metrics_url, IN_FLIGHT_GAUGE))
        exited = not client.running()
        client_now, sink_now = (watch.sample() for watch in watches)
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
        used=client_now - client0,
        sink_used=sink_now - sink0,
        peak_rss=client.watch.peak_rss,
        threads=client.watch.threads,
        ended_by=ended_by,
        in_flight=mean([value for value in in_flight if value is not None]),
    )


def _ended_by(*, delivered: bool, window_over: bool, stalled: bool, exited: bool) -> str:
    """Why a run ends now, or ``""`` while it goes on."""
    reasons = {"all events": delivered, "window": window_over, "stalled": stalled, "exited": exited}
    return next((reason for reason, applies in reasons.items() if applies), "")
