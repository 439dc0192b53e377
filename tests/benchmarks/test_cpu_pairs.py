"""The CPU goal judged on the median over pairs of runs, not on one pair."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from benchmarks.dispatch.cpu_pairs import CpuPairs, section
from benchmarks.dispatch.plan import BARE, DISPATCHER
from benchmarks.dispatch.runs import Run
from benchmarks.measure import Counters


def run(client: str, cpu_us: float, *, latency: int = 0, concurrency: int = 16) -> Run:
    """A run whose CPU per delivery is ``cpu_us`` (1,000 deliveries in its window)."""
    return Run(
        client, latency, concurrency, deliveries=1000, counted=1000, seconds=1.0, wall=1.0,
        wall_deliveries=1000, used=Counters(cpu=cpu_us * 1000 / 1e6), sink_used=Counters(),
        peak_rss=0, threads=1, ended_by="all events",
    )  # fmt: skip


def test_the_main_pair_comes_first_then_the_further_ones() -> None:
    main = [run(BARE, 60), run(DISPATCHER, 120)]
    main += [run(BARE, 50, latency=20), run(DISPATCHER, 60, latency=20)]
    further = [(run(BARE, 80), run(DISPATCHER, 100)), (run(BARE, 70), run(DISPATCHER, 105))]
    pairs = CpuPairs.of(main, further)
    assert pairs.ratios[0, 16] == [2.0, 1.25, 1.5]
    assert pairs.median(0, 16) == 1.5  # not the main pair's 2.0
    assert pairs.median(20, 16) == 1.2
    assert pairs.median(0, 64) is None


def test_a_pair_without_a_measured_window_does_not_count() -> None:
    silent = Run(
        DISPATCHER, 0, 16, deliveries=0, counted=0, seconds=0.0, wall=0.0, wall_deliveries=0,
        used=Counters(), sink_used=Counters(), peak_rss=0, threads=1, ended_by="exited",
    )  # fmt: skip
    pairs = CpuPairs.of([run(BARE, 60), silent], [(run(BARE, 60), run(DISPATCHER, 90))])
    assert pairs.ratios[0, 16] == [None, 1.5]
    assert pairs.median(0, 16) == 1.5
    assert "| 0 | 16 | - | 1.50 | **1.50** |" in section(pairs)


@given(st.lists(st.floats(0.5, 3.0), min_size=1, max_size=7))
def test_the_median_lies_between_the_pairs(ratios: list[float]) -> None:
    median = CpuPairs({(0, 16): list(ratios)}).median(0, 16)
    assert median is not None
    assert min(ratios) <= median <= max(ratios)
    assert sum(r <= median for r in ratios) >= len(ratios) / 2
    assert sum(r >= median for r in ratios) >= len(ratios) / 2
