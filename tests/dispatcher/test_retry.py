from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispatcher.durations import decode_hook, parse_duration
from dispatcher.retry import MAX_RETRY_AFTER, RetryPolicy, next_backoff

NO_JITTER = RetryPolicy(
    max_retries=5,
    initial_backoff=parse_duration("100ms"),
    max_backoff=parse_duration("1s"),
    multiplier=2,
    jitter=False,
)


def test_backoff_grows_exponentially_up_to_the_cap() -> None:
    waits = [next_backoff(attempt=n, policy=NO_JITTER) for n in range(1, 7)]
    assert waits == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


@given(attempt=st.integers(1, 50), draw=st.floats(0, 1))
def test_jitter_takes_at_most_half_off(attempt: int, draw: float) -> None:
    jittered = RetryPolicy(max_retries=5, initial_backoff=parse_duration(0.1), jitter=True)
    plain = next_backoff(
        attempt=attempt,
        policy=NO_JITTER.__class__(
            max_retries=5, initial_backoff=parse_duration(0.1), jitter=False
        ),
    )
    wait = next_backoff(attempt=attempt, policy=jittered, uniform=lambda: draw)
    assert plain / 2 <= wait <= plain


def test_retry_after_is_a_floor_with_a_ceiling() -> None:
    assert next_backoff(attempt=1, policy=NO_JITTER, retry_after=3) == 3
    assert next_backoff(attempt=5, policy=NO_JITTER, retry_after=0.01) == pytest.approx(1.0)
    assert next_backoff(attempt=1, policy=NO_JITTER, retry_after=10_000) == MAX_RETRY_AFTER


def test_max_attempts_counts_the_first_try() -> None:
    assert RetryPolicy(max_retries=0).max_attempts == 1
    assert RetryPolicy(max_retries=3).max_attempts == 4


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"max_retries": -1}, "max_retries must be 0 or more"),
        ({"multiplier": 0.5}, "multiplier must be at least 1"),
        ({"initial_backoff": "2s", "max_backoff": "1s"}, "max_backoff must not be below"),
        ({"initial_backoff": "soon"}, "not a duration"),
    ],
)
def test_bad_policies_are_refused(raw: dict[str, object], message: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=message):
        msgspec.convert(raw, RetryPolicy, dec_hook=decode_hook)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("250ms", 0.25), ("2s", 2.0), ("1.5m", 90.0), ("3", 3.0), (7, 7.0), (0.5, 0.5)],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["soon", "1 h", "-1s", -3, True, None, "ms"])
def test_bad_durations_say_what_is_accepted(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


def test_thousands_of_retries_stay_at_the_cap_instead_of_overflowing() -> None:
    # 2.0 ** 1999 is beyond any float: the old arithmetic raised OverflowError, and the
    # exception froze the event's partition.
    policy = RetryPolicy(max_retries=2000, jitter=False)
    assert next_backoff(attempt=2000, policy=policy) == policy.max_backoff
