"""What the dispatch benchmark says bounded a run, from the figures alone."""

from __future__ import annotations

from benchmarks.dispatch.bounds import LATENCY, LOOP, MACHINE, STARVED, UNCLEAR, bound_by
from benchmarks.dispatch.runs import Run
from benchmarks.measure import Counters


def run(
    *,
    latency_ms: int = 20,
    concurrency: int = 256,
    rate: float = 1000.0,
    loop_cpu: float = 0.3,
    loop_wait: float = 0.0,
    in_flight: float | None = None,
    machine_busy: float = 0.5,
) -> Run:
    """A 10 s run delivering ``rate`` per second, its loop using ``loop_cpu`` of a core."""
    wall = 10.0
    deliveries = int(rate * wall) + 1
    return Run(
        client="dispatcher",
        latency_ms=latency_ms,
        concurrency=concurrency,
        deliveries=deliveries,
        counted=deliveries - 1,
        seconds=wall,
        wall=wall,
        wall_deliveries=deliveries,
        used=Counters(cpu=loop_cpu * wall, loop_cpu=loop_cpu * wall, loop_wait=loop_wait * wall),
        sink_used=Counters(),
        peak_rss=0,
        threads=1,
        ended_by="window",
        in_flight=in_flight,
        machine_busy=machine_busy,
    )


def test_a_rate_near_what_the_latency_allows_is_the_sinks_doing() -> None:
    assert bound_by(run(concurrency=1, rate=46.0)) == LATENCY
    assert bound_by(run(concurrency=256, rate=12_000.0, loop_cpu=0.95)) == LATENCY
    assert bound_by(run(concurrency=8, rate=350.0, in_flight=7.6)) == LATENCY  # all waiting


def test_a_busy_loop_bounds_it_and_waiting_for_a_core_means_the_machine() -> None:
    assert bound_by(run(latency_ms=0, loop_cpu=0.9)) == LOOP
    assert bound_by(run(latency_ms=0, loop_cpu=0.4, loop_wait=0.5)) == MACHINE


def test_an_idle_loop_with_few_in_flight_is_starved() -> None:
    assert bound_by(run(in_flight=64.0)) == STARVED
    assert bound_by(run(latency_ms=0, in_flight=250.0, machine_busy=0.99)) == MACHINE
    assert bound_by(run(latency_ms=0, in_flight=250.0)) == UNCLEAR
