"""What the dispatch benchmark measures: its sizes (full or ``--quick``) and fixed settings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "BARE",
    "BUFFER_SIZES",
    "CPU_GOAL",
    "DISPATCHER",
    "FULL",
    "IN_FLIGHT_GOAL",
    "LATENCIES_MS",
    "PARTITIONS",
    "QUICK",
    "RATIO_LATENCY_MS",
    "SCENARIOS",
    "TRACING_CONCURRENCY",
    "Plan",
    "Sizes",
]

LATENCIES_MS = (0, 20)
"""Sink latencies the one-destination runs are measured at (``--latency`` picks some)."""
RATIO_LATENCY_MS = 20
"""The latency at which the top-concurrency / concurrency-1 ratio is taken (goal: 100x)."""
RATIO_GOAL = 100.0
IN_FLIGHT_GOAL = 0.9
"""Mean in flight / concurrency the dispatcher should reach with enough users waiting."""
CPU_GOAL = 1.5
"""Dispatcher CPU per delivery / bare client CPU per request it should stay under."""
MEMORY_GOAL_BYTES = 1 << 30
CPU_BOUND_PERCENT = 85
"""A loop busy (running or waiting for a core) this share of the time counts as CPU-bound."""
PARTITIONS = 12
TRACING_CONCURRENCY = 64
"""Tracing on versus off is measured at this concurrency, with the 0 ms sink."""
PROCESSES_COMPARED = (1, 2)
"""``dispatcher --processes N`` values compared on the 0 ms sink at the top concurrency."""
SCENARIOS = ("runs", "buffer", "processes", "many", "tracing", "profile")
"""What ``--only`` can pick: the one-destination runs (with their bare clients), buffer sizes,
processes 1 versus 2, many destinations in one process, tracing off versus on, the profile."""
BUFFER_SIZES = (1000, 2000, 5000, 20000)
"""``max_buffered`` values compared at the top concurrency against the 20 ms sink."""

BARE = "bare aiohttp"
DISPATCHER = "dispatcher"


@dataclass(frozen=True, slots=True)
class Sizes:
    """The sizes of a plan that ``--quick`` shrinks (each has its own option too)."""

    events: int
    users: int
    concurrencies: tuple[int, ...]
    window: float
    destinations: int
    batch: int
    tracing_rounds: int
    """Off-on pairs the tracing comparison alternates through, each over a share of the
    window."""
    warmup: float
    """Seconds after a run's first arrival before it is measured."""


FULL = Sizes(
    60_000,
    1000,
    (1, 16, 64, 256),
    window=12.0,
    destinations=1000,
    batch=5,
    tracing_rounds=2,
    warmup=2.0,
)
QUICK = Sizes(400, 100, (1, 8), window=1.5, destinations=3, batch=4, tracing_rounds=1, warmup=0.0)


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
    """Destination concurrencies measured, the bare client's too."""
    latencies: tuple[int, ...]
    """Sink latencies measured, in milliseconds."""
    window: float
    """Longest one run measures, in seconds; slow runs report their rate over this window."""
    warmup: float
    """Seconds after a run's first arrival before its measurement starts."""
    destinations: int
    """Destinations hosted by the many-destination dispatcher."""
    batch: int
    """Events each of those destinations delivers."""
    tracing_rounds: int
    """Off-on pairs of the tracing comparison."""
    scenarios: frozenset[str]
    """Which of ``SCENARIOS`` to measure."""
    results_dir: Path
    """Where ``dispatch.md`` and ``dispatch-profile.txt`` are written."""
    mode: str
    """``full`` or ``quick``, for the report."""
    max_buffered: int | None = None
    """The destinations' ``max_buffered`` (``None``: the manifest's default), to compare
    buffer sizes by measurement."""

    @property
    def top_concurrency(self) -> int:
        return max(self.concurrencies)

    def measures(self, scenario: str) -> bool:
        return scenario in self.scenarios
