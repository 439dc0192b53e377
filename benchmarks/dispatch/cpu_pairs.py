"""CPU per delivery against the bare client's, pair after pair.

On this shared machine one bare client's CPU per request and the dispatcher's CPU per
delivery, measured back to back, swing by 15% or more from one pair to the next (other
people's work shares the cores and their caches): the ratio of a single pair ranged from 1.30
to 2.03 over five pairs of the same code, run back to back (issue 14). So the goal on CPU is
judged by
the median over several pairs: the pair of the main runs, then ``plan.cpu_pairs`` more at each
latency and concurrency, each over a shorter window (CPU per delivery needs a few thousand
deliveries, not the full window).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from benchmarks.dispatch.harness import Bench
from benchmarks.dispatch.plan import BARE, DISPATCHER
from benchmarks.dispatch.runs import Run
from benchmarks.report import markdown_table

__all__ = ["PAIR_WINDOW", "CpuPairs", "cpu_ratio", "measure_pairs", "section"]

PAIR_WINDOW = 5.0
"""Longest measured window of the further pairs, seconds."""


def cpu_ratio(run: Run, bare: Run | None) -> float | None:
    """Dispatcher CPU per delivery / bare client CPU per request (all threads each)."""
    if bare is None:
        return None
    ours, theirs = run.per_delivery_us(run.used.cpu), bare.per_delivery_us(bare.used.cpu)
    return ours / theirs if theirs and ours else None


@dataclass(frozen=True, slots=True)
class CpuPairs:
    """Each (latency ms, concurrency)'s CPU ratio, pair by pair, the main runs' first."""

    ratios: dict[tuple[int, int], list[float | None]]

    def median(self, latency_ms: int, concurrency: int) -> float | None:
        """The median of the pairs' ratios (``None`` if no pair measured one)."""
        known = [r for r in self.ratios.get((latency_ms, concurrency), []) if r is not None]
        return statistics.median(known) if known else None

    def median_of(self, run: Run) -> float | None:
        """The median ratio at ``run``'s latency and concurrency."""
        return self.median(run.latency_ms, run.concurrency)

    @classmethod
    def of(cls, runs: list[Run], pairs: list[tuple[Run, Run]]) -> CpuPairs:
        """The ratios of the main runs' pairs (``runs``), then of the further ``pairs``
        (bare, dispatcher)."""
        ratios: dict[tuple[int, int], list[float | None]] = {}
        bare = {(r.latency_ms, r.concurrency): r for r in runs if r.client == BARE}
        for run in runs:
            if run.client == DISPATCHER:
                key = (run.latency_ms, run.concurrency)
                ratios.setdefault(key, []).append(cpu_ratio(run, bare.get(key)))
        for bare_run, run in pairs:
            key = (run.latency_ms, run.concurrency)
            ratios.setdefault(key, []).append(cpu_ratio(run, bare_run))
        return cls(ratios)


def measure_pairs(bench: Bench, topic: str) -> list[tuple[Run, Run]]:
    """``plan.cpu_pairs`` rounds of a bare client then the dispatcher, at every latency and
    concurrency of the plan, each over at most ``PAIR_WINDOW`` seconds."""
    plan = bench.plan
    window = min(plan.window, PAIR_WINDOW)
    pairs = []
    for _ in range(plan.cpu_pairs):
        for latency in plan.latencies:
            for concurrency in plan.concurrencies:
                bare = bench.bare(latency, concurrency, window=window)
                pairs.append((bare, bench.dispatcher(topic, latency, concurrency, window=window)))
    return pairs


def section(pairs: CpuPairs) -> str:
    """The pairs' ratios and their medians, as markdown."""
    most = max((len(r) for r in pairs.ratios.values()), default=0)
    header = ["sink latency ms", "concurrency", *(f"pair {n + 1}" for n in range(most))]
    rows = [
        [
            str(latency),
            str(concurrency),
            *(f"{r:.2f}" if r is not None else "-" for r in ratios),
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
        " goal (Ratios) is judged on the median.\n\n"
        f"{table}"
    )


def _shown(value: float | None) -> str:
    return "-" if value is None else f"**{value:.2f}**"
