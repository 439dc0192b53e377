"""Naps end on a shared beat: never later than one period, and equal periods together."""

from __future__ import annotations

import math

from hypothesis import assume, given
from hypothesis import strategies as st

from dispatcher.beats import next_beat

NOW = st.floats(0.0, 1e7, allow_nan=False)
PERIOD = st.sampled_from([0.001, 0.002, 0.004, 0.064, 0.1, 0.5, 5.0])
SHARE = st.floats(0.0, 1.0, exclude_max=True)


@given(NOW, PERIOD)
def test_a_beat_comes_after_now_and_within_one_period(now: float, period: float) -> None:
    beat = next_beat(now, period)
    assert now < beat <= now + period * (1 + 1e-9)


@given(st.integers(0, 10**8), PERIOD, SHARE, SHARE)
def test_naps_started_between_the_same_two_beats_end_together(
    beats: int, period: float, first: float, second: float
) -> None:
    # Two destinations start napping at different moments of the same beat.
    a, b = (beats + first) * period, (beats + second) * period
    assume(math.floor(a / period) == math.floor(b / period) == beats)  # rounding aside
    assert next_beat(a, period) == next_beat(b, period)


@given(NOW)
def test_the_periodic_duties_wake_on_a_beat_of_the_idle_polls(now: float) -> None:
    # 0.5 s is a multiple of 0.1 s: a duty wakes the loop together with the polls.
    tick = next_beat(now, 0.5)
    assert math.isclose(tick / 0.1, round(tick / 0.1), abs_tol=1e-6)
