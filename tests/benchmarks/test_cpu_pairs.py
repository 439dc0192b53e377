"""The CPU goal judged on the median over pairs of runs, not on one pair."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from benchmarks.dispatch.cpu_pairs import CpuPairs, Ratio, section
from benchmarks.dispatch.plan import BARE, DISPATCHER
from benchmarks.dispatch.runs import Run
from benchmarks.measure import Counters


def run(
    client: str, cpu_us: float, *, latency: int = 0, concurrency: int = 16, scraped: bool = False
) -> Run:
    """A run whose CPU per delivery is ``cpu_us`` (1,000 deliveries in its window)."""
    return Run(
        client, latency, concurrency, deliveries=1000, counted=1000, seconds=1.0, wall=1.0,
        wall_deliveries=1000, used=Counters(cpu=cpu_us * 1000 / 1e6), sink_used=Counters(),
        peak_rss=0, threads=1, ended_by="all events", scraped=scraped,
    )  # fmt: skip


def values(pairs: CpuPairs, latency: int = 0, concurrency: int = 16) -> list[float | None]:
    return [r.value for r in pairs.ratios[latency, concurrency]]


def test_the_main_pair_comes_first_then_the_further_ones() -> None:
    main = [run(BARE, 60), run(DISPATCHER, 120)]
    main += [run(BARE, 50, latency=20), run(DISPATCHER, 60, latency=20)]
    further = [(run(BARE, 80), run(DISPATCHER, 100)), (run(BARE, 70), run(DISPATCHER, 105))]
    pairs = CpuPairs.of(main, further)
    assert values(pairs) == [2.0, 1.25, 1.5]
    assert pairs.median(0, 16) == 1.5  # not the main pair's 2.0
    assert pairs.median(20, 16) == 1.2
    assert pairs.median(0, 64) is None


def test_a_pair_without_a_measured_window_does_not_count() -> None:
    silent = Run(
        DISPATCHER, 0, 16, deliveries=0, counted=0, seconds=0.0, wall=0.0, wall_deliveries=0,
        used=Counters(), sink_used=Counters(), peak_rss=0, threads=1, ended_by="exited",
    )  # fmt: skip
    pairs = CpuPairs.of([run(BARE, 60), silent], [(run(BARE, 60), run(DISPATCHER, 90))])
    assert values(pairs) == [None, 1.5]
    assert pairs.median(0, 16) == 1.5
    assert "| 0 | 16 | - | 1.50 | **1.50** |" in section(pairs)


def test_pairs_whose_gauge_was_read_are_left_out_of_the_median_when_others_exist() -> None:
    # The main runs read the dispatcher's gauge (2-3 ms of its CPU a read); the bare client
    # is never read, so those pairs weigh the dispatcher down by the benchmark's own cost.
    main = [run(BARE, 600), run(DISPATCHER, 1200, scraped=True)]
    further = [(run(BARE, 600), run(DISPATCHER, 780)), (run(BARE, 600), run(DISPATCHER, 840))]
    pairs = CpuPairs.of(main, further)
    assert [r.scraped for r in pairs.ratios[0, 16]] == [True, False, False]
    assert pairs.median(0, 16) == 1.35  # of 1.3 and 1.4; all three would give 1.4
    assert "| 0 | 16 | 2.00* | 1.30 | 1.40 | **1.35** |" in section(pairs)


def test_with_only_scraped_pairs_the_median_is_theirs() -> None:
    pairs = CpuPairs.of([run(BARE, 60), run(DISPATCHER, 90, scraped=True)], [])
    assert pairs.median(0, 16) == 1.5


@given(st.lists(st.tuples(st.floats(0.5, 3.0), st.booleans()), min_size=1, max_size=7))
def test_the_median_lies_between_the_pairs_it_judges(pairs: list[tuple[float, bool]]) -> None:
    median = CpuPairs({(0, 16): [Ratio(v, scraped) for v, scraped in pairs]}).median(0, 16)
    judged = [v for v, scraped in pairs if not scraped] or [v for v, _ in pairs]
    assert median is not None
    assert min(judged) <= median <= max(judged)
    assert sum(r <= median for r in judged) >= len(judged) / 2
    assert sum(r >= median for r in judged) >= len(judged) / 2
