"""What bounded one run, read from what it used: the sink's latency (by design, at 20 ms), the
client's event loop, the machine's shared cores, or, for the dispatcher, too few deliveries in
flight (a starved pipeline). A decision on the measured figures alone, so that the report can
say it beside every rate."""

from __future__ import annotations

from benchmarks.dispatch.plan import CPU_BOUND_PERCENT, IN_FLIGHT_GOAL
from benchmarks.dispatch.runs import Run

__all__ = [
    "LATENCY",
    "LOOP",
    "MACHINE",
    "STARVED",
    "UNCLEAR",
    "bound_by",
]

LATENCY = "sink latency"
LOOP = "event loop CPU"
MACHINE = "shared cores"
STARVED = "starved: too few in flight"
UNCLEAR = "unclear"

LATENCY_SHARE = 0.8
"""A rate at this share of ``concurrency / latency`` is all the sink's latency allows."""
MACHINE_BUSY = 0.95
"""All cores at least this busy (anyone's work): the machine bounds everyone."""


def bound_by(run: Run) -> str:
    """The likeliest bound of ``run``, in the order a reader would check them."""
    share = run.in_flight_share
    if run.latency_ms > 0:
        allowed = run.concurrency * 1000 / run.latency_ms
        # Every slot in flight is every slot waiting on the sink, whatever the rate.
        if run.rate >= LATENCY_SHARE * allowed or (share or 0) >= IN_FLIGHT_GOAL:
            return LATENCY
    loop_busy = run.percent(run.used.loop_cpu + run.used.loop_wait)
    if loop_busy >= CPU_BOUND_PERCENT:
        # Waiting for a core counts as busy: the loop had work but another process ran.
        return MACHINE if run.used.loop_wait > run.used.loop_cpu else LOOP
    if share is not None and share < IN_FLIGHT_GOAL:
        return STARVED
    if run.machine_busy >= MACHINE_BUSY:
        return MACHINE
    return UNCLEAR
