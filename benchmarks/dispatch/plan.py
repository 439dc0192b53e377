"""What the dispatch benchmark measures: its sizes (full or ``--quick``) and fixed settings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dispatcher.manifest import MAX_DESTINATIONS

__all__ = [
    "ATTEMPT_TIMEOUT",
    "BARE",
    "BUFFER_SIZES",
    "CPU_GOAL",
    "DEFAULT_SCENARIOS",
    "DISPATCHER",
    "FULL",
    "IN_FLIGHT_GOAL",
    "LATENCIES_MS",
    "PARTITIONS",
    "QUICK",
    "RATIO_LATENCY_MS",
    "SCENARIOS",
    "TRACING_CONCURRENCY",
    "TRANSPORT_BARE_CONCURRENCIES",
    "TRANSPORT_DISPATCHER_CONCURRENCIES",
    "TRANSPORT_GOAL",
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
SCENARIOS = ("runs", "buffer", "processes", "many", "tracing", "profile", "transport")
"""What ``--only`` can pick: the one-destination runs (with their bare clients), buffer sizes,
processes 1 versus 2, many destinations in one process, tracing off versus on, the profile,
aiohttp versus pyreqwest."""
DEFAULT_SCENARIOS = tuple(s for s in SCENARIOS if s != "transport")
"""What a run without ``--only`` measures: the transport comparison answered its question
once (issue 14) and takes minutes of its own, so it runs when asked for."""
TRANSPORT_BARE_CONCURRENCIES = (16, 64, 256)
TRANSPORT_DISPATCHER_CONCURRENCIES = (64, 256)
"""Concurrencies of the transport comparison's bare clients and dispatchers (unless
``--concurrency`` names others)."""
TRANSPORT_GOAL = 1.3
"""Deliveries per CPU-second, pyreqwest over aiohttp, at which the dispatcher would adopt it."""
ATTEMPT_TIMEOUT = 5.0
"""Seconds each delivery attempt may take (the generated manifests' ``timeout``)."""
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
    cpu_pairs: int
    """Further bare-dispatcher pairs at each latency and concurrency, for the CPU ratio's
    median (``cpu_pairs``): measured without reading the dispatcher's gauge, they alone make
    the median when there are any."""
    warmup: float
    """Seconds after a run's first arrival before it is measured."""


FULL = Sizes(
    60_000,
    1000,
    (1, 16, 64, 256),
    window=12.0,
    destinations=MAX_DESTINATIONS,
    batch=5,
    tracing_rounds=2,
    cpu_pairs=3,
    warmup=2.0,
)
QUICK = Sizes(
    400, 100, (1, 8), window=1.5, destinations=3, batch=4, tracing_rounds=1, cpu_pairs=0,
    warmup=0.0,
)  # fmt: skip


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
    cpu_pairs: int
    """Further bare-dispatcher pairs for the CPU ratio's median."""
    scenarios: frozenset[str]
    """Which of ``SCENARIOS`` to measure."""
    results_dir: Path
    """Where ``dispatch.md`` and ``dispatch-profile.txt`` are written."""
    mode: str
    """``full`` or ``quick``, for the report."""
    max_buffered: int | None = None
    """The destinations' ``max_buffered`` (``None``: the manifest's default), to compare
    buffer sizes by measurement."""
    concurrencies_given: bool = False
    """Whether ``concurrencies`` were named (``--concurrency``) rather than the mode's."""

    @property
    def top_concurrency(self) -> int:
        return max(self.concurrencies)

    def measures(self, scenario: str) -> bool:
        return scenario in self.scenarios
