"""CPU per delivery against the bare client's, pair after pair.

On this shared machine one bare client's CPU per request and the dispatcher's CPU per
delivery, measured back to back, swing by 15% or more from one pair to the next (other
people's work shares the cores and their caches): the ratio of a single pair ranged from 1.30
to 2.03 over five pairs of the same code, run back to back (issue 14). So the goal on CPU is
judged by the median over several pairs: the pair of the main runs, then ``plan.cpu_pairs``
more at each latency and concurrency, each over a shorter window (CPU per delivery needs a
few thousand deliveries, not the full window; at 20 ms and concurrency 1 a pair has only
about 235, and swings the most).

The main runs read the dispatcher's in-flight gauge twice a second, and each read costs it
2-3 ms of CPU: at 47 deliveries a second (20 ms sink, concurrency 1) about 100 µs per
delivery that the bare client, never read, does not pay. The further pairs leave the gauge
alone, and when there are any the median is theirs alone.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from benchmarks.dispatch.harness import Bench
from benchmarks.dispatch.plan import BARE, DISPATCHER
from benchmarks.dispatch.runs import Run
from benchmarks.report import markdown_table

__all__ = ["PAIR_WINDOW", "CpuPairs", "Ratio", "cpu_ratio", "measure_pairs", "section"]

PAIR_WINDOW = 5.0
"""Longest measured window of the further pairs, seconds."""


def cpu_ratio(run: Run, bare: Run | None) -> float | None:
    """Dispatcher CPU per delivery / bare client CPU per request (all threads each)."""
    if bare is None:
        return None
    ours, theirs = run.per_delivery_us(run.used.cpu), bare.per_delivery_us(bare.used.cpu)
    return ours / theirs if theirs and ours else None


@dataclass(frozen=True, slots=True)
class Ratio:
    """One pair's CPU ratio (``None``: a run measured no window)."""

    value: float | None
    scraped: bool
    """The benchmark read the dispatcher's gauge meanwhile, at a cost the bare client did
    not pay."""


@dataclass(frozen=True, slots=True)
class CpuPairs:
    """Each (latency ms, concurrency)'s CPU ratio, pair by pair, the main runs' first."""

    ratios: dict[tuple[int, int], list[Ratio]]

    def median(self, latency_ms: int, concurrency: int) -> float | None:
        """The median of the pairs' ratios, over the unscraped pairs if any measured one
        (``None`` if no pair did)."""
        ratios = self.ratios.get((latency_ms, concurrency), [])
        known = [(r.value, r.scraped) for r in ratios if r.value is not None]
        chosen = [v for v, scraped in known if not scraped] or [v for v, _ in known]
        return statistics.median(chosen) if chosen else None

    def median_of(self, run: Run) -> float | None:
        """The median ratio at ``run``'s latency and concurrency."""
        return self.median(run.latency_ms, run.concurrency)

    @classmethod
    def of(cls, runs: list[Run], pairs: list[tuple[Run, Run]]) -> CpuPairs:
        """The ratios of the main runs' pairs (``runs``), then of the further ``pairs``
        (bare, dispatcher)."""
        ratios: dict[tuple[int, int], list[Ratio]] = {}
        bare = {(r.latency_ms, r.concurrency): r for r in runs if r.client == BARE}
        main = [
            (bare.get((r.latency_ms, r.concurrency)), r) for r in runs if r.client == DISPATCHER
        ]
        for bare_run, run in [*main, *pairs]:
            ratio = Ratio(cpu_ratio(run, bare_run), run.scraped)
            ratios.setdefault((run.latency_ms, run.concurrency), []).append(ratio)
        return cls(ratios)


def measure_pairs(bench: Bench, topic: str) -> list[tuple[Run, Run]]:
    """``plan.cpu_pairs`` rounds of a bare client then the dispatcher (its gauge unread), at
    every latency and concurrency of the plan, each over at most ``PAIR_WINDOW`` seconds."""
    plan = bench.plan
    window = min(plan.window, PAIR_WINDOW)
    pairs = []
    for _ in range(plan.cpu_pairs):
        for latency in plan.latencies:
            for concurrency in plan.concurrencies:
                bare = bench.bare(latency, concurrency, window=window)
                ours = bench.dispatcher(
                    topic, latency, concurrency, window=window, read_in_flight=False
                )
                pairs.append((bare, ours))
    return pairs


def section(pairs: CpuPairs) -> str:
    """The pairs' ratios and their medians, as markdown."""
    most = max((len(r) for r in pairs.ratios.values()), default=0)
    header = ["sink latency ms", "concurrency", *(f"pair {n + 1}" for n in range(most))]
    rows = [
        [
            str(latency),
            str(concurrency),
            *(_pair(r) for r in ratios),
            *([""] * (most - len(ratios))),
            _shown(pairs.median(latency, concurrency)),
        ]
        for (latency, concurrency), ratios in sorted(pairs.ratios.items())
    ]
    table = markdown_table([*header, "median"], rows)
    return (
        "## CPU per delivery over the bare client's, pair by pair\n\n"
        "Dispatcher CPU per delivery / bare client CPU per request (whole processes), for the"
        " main runs' pair (pair 1) and each further pair, measured back to back over at most"
        f" {PAIR_WINDOW:g} s each. A single pair swings with the machine's other users; the"
        " goal (Ratios) is judged on the median. A ratio marked * was measured while the"
        " benchmark read the dispatcher's in-flight gauge (2-3 ms of the dispatcher's CPU per"
        " read, twice a second; the bare client is never read): the median leaves those out"
        " whenever a pair without reads was measured.\n\n"
        f"{table}"
    )


def _pair(ratio: Ratio) -> str:
    if ratio.value is None:
        return "-"
    return f"{ratio.value:.2f}{'*' if ratio.scraped else ''}"


def _shown(value: float | None) -> str:
    return "-" if value is None else f"**{value:.2f}**"
