"""What the dispatch benchmark measures: its sizes (full or ``--quick``) and fixed settings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "BARE",
    "DISPATCHER",
    "FULL",
    "LATENCIES_MS",
    "PARTITIONS",
    "QUICK",
    "RATIO_LATENCY_MS",
    "TRACING_CONCURRENCY",
    "Plan",
    "Sizes",
]

LATENCIES_MS = (0, 20)
"""Sink latencies every run is measured at."""
RATIO_LATENCY_MS = 20
"""The latency at which the top-concurrency / concurrency-1 ratio is taken (goal: 100x)."""
RATIO_GOAL = 100.0
MEMORY_GOAL_BYTES = 1 << 30
CPU_BOUND_PERCENT = 85
"""A loop busy (running or waiting for a core) this share of the time counts as CPU-bound."""
PARTITIONS = 12
TRACING_CONCURRENCY = 64
"""Tracing on versus off is measured at this concurrency, with the 0 ms sink."""
TRACING_ROUNDS = 2
"""Off-on pairs the tracing comparison alternates through, each over half the window."""

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


FULL = Sizes(20_000, 1000, (1, 16, 64, 256), window=12.0, destinations=200, batch=20)
QUICK = Sizes(400, 100, (1, 256), window=3.0, destinations=10, batch=10)


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
    tracing: bool
    """Measure the dispatcher with tracing on and off."""
    results_dir: Path
    """Where ``dispatch.md`` and ``dispatch-profile.txt`` are written."""
    mode: str
    """``full`` or ``quick``, for the report."""

    @property
    def top_concurrency(self) -> int:
        return max(self.concurrencies)
