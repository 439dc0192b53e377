"""Naps end on a shared beat: never later than one period, never at once, equal ones together."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispatcher.beats import due, next_beat
from dispatcher.worker import IDLE_SLEEP_MAX, TICK

NOW = st.floats(0.0, 1e7, allow_nan=False)
PERIOD = st.sampled_from([0.001, 0.002, 0.004, 0.064, 0.1, 0.5, 5.0])


@given(NOW, PERIOD)
def test_a_beat_comes_after_now_and_within_one_period(now: float, period: float) -> None:
    beat = next_beat(now, period)
    assert now < beat <= now + period * (1 + 1e-5)


@given(st.integers(0, 10**9), PERIOD)
def test_woken_on_a_beat_the_next_nap_lasts_a_whole_period(beats: int, period: float) -> None:
    # uvloop's clock counts whole milliseconds, so a nap woken on a beat reads the beat as
    # the nearest float to a whole millisecond, which may lie a hair below the beat: the
    # next beat must not be that same one, or the nap ends at once and the fetch loop spins
    # until the clock moves.
    now = round(beats * period * 1000) / 1000
    assert math.isclose(next_beat(now, period), (beats + 1) * period, rel_tol=1e-12)


@pytest.mark.parametrize(("now", "period"), [(4.3, 0.1), (8.1, 0.001), (68411.4, 0.1)])
def test_beats_that_floats_cannot_hit_exactly(now: float, period: float) -> None:
    assert next_beat(now, period) - now == pytest.approx(period)


def test_a_period_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        next_beat(1.0, 0.0)


def test_the_periodic_duties_wake_on_a_beat_of_the_idle_polls() -> None:
    # A duty then wakes the loop together with the polls, not between them.
    assert math.isclose(TICK / IDLE_SLEEP_MAX, round(TICK / IDLE_SLEEP_MAX))


@given(
    NOW,
    st.sampled_from([0.01, 0.1, 0.5]),
    st.sampled_from([0.01, 0.1, 0.5, 0.7, 1.0, 2.5]),
    st.lists(st.floats(0.0, 0.49), min_size=12, max_size=12),
)
def test_a_duty_on_the_beat_keeps_an_even_pace_whenever_the_loop_wakes(
    start: float, period: float, interval: float, lateness: list[float]
) -> None:
    # As the worker's periodic duties: nap to the next beat, wake somewhat late, commit when
    # due. The commits come a steady whole number of beats apart, at least an interval.
    period = min(period, interval)
    now, since, done = start, start, []
    for late in lateness:
        beat = next_beat(now, period)
        now = beat + late * period
        if due(beat, since, interval):
            since = beat
            done.append(beat)
    gaps = [b - a for a, b in itertools.pairwise(done)]
    assert all(math.isclose(gap, gaps[0], rel_tol=1e-6) for gap in gaps)
    assert all(interval * (1 - 1e-6) <= gap < interval + period for gap in gaps)
