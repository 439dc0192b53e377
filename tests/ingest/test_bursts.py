"""Deciding when a burst of occurrences is reported, with the time given."""

from __future__ import annotations

from ingest.bursts import BurstCounter


def test_the_first_of_a_burst_is_reported_at_once_and_the_rest_once_per_interval() -> None:
    counter = BurstCounter(interval=10)
    assert counter.hit(100.0) == 1
    assert [counter.hit(100.0 + n / 10) for n in range(1, 6)] == [None] * 5
    assert counter.next_report_at == 110.0
    assert counter.due(109.9) is None
    assert counter.due(110.0) == 5
    assert counter.due(120.0) is None  # nothing new: no line
    assert counter.next_report_at is None


def test_after_a_quiet_interval_the_next_occurrence_is_reported_at_once() -> None:
    counter = BurstCounter(interval=10)
    assert counter.hit(0.0) == 1
    assert counter.hit(1.0) is None
    # The timer may not have fired yet: what was pending is reported with the new one.
    assert counter.hit(30.0) == 2
    assert counter.next_report_at is None
