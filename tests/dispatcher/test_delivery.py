"""The delivery machinery (tenacity, timeouts, outcome) around real destination objects."""

from __future__ import annotations

import time

import pytest

from dispatcher.delivery import deliver
from dispatcher.destinations.mock import MockDestination, MockOptions
from dispatcher.durations import Duration
from dispatcher.exceptions import PermanentDeliveryError, RetryableDeliveryError
from dispatcher.retry import RetryPolicy
from eventlog.record import Event

EVENT = Event(id="e-1", user_id="alice", payload="hi", received_at_ms=0)
FAST = RetryPolicy(max_retries=3, initial_backoff=Duration(0.001), max_backoff=Duration(0.01))


def mock(behavior: str, **options: object) -> MockDestination:
    return MockDestination("demo", MockOptions(behavior=behavior, **options))  # type: ignore[arg-type]


async def test_success_takes_one_attempt() -> None:
    outcome = await deliver(mock("succeed"), EVENT, name="demo", attempt_timeout=1, policy=FAST)
    assert (outcome.delivered, outcome.attempts, outcome.error) == (True, 1, None)


async def test_always_failing_gets_one_plus_max_retries_attempts() -> None:
    outcome = await deliver(mock("fail"), EVENT, name="demo", attempt_timeout=1, policy=FAST)
    assert not outcome.delivered
    assert outcome.attempts == 4
    assert "always fails" in (outcome.error or "")
    assert not outcome.permanent


async def test_fail_first_is_delivered_on_the_second_attempt() -> None:
    destination = mock("fail_first")
    for event_id in ("a", "b"):
        event = Event(id=event_id, user_id="u", payload="p", received_at_ms=0)
        outcome = await deliver(destination, event, name="demo", attempt_timeout=1, policy=FAST)
        assert (outcome.delivered, outcome.attempts) == (True, 2)


async def test_a_hanging_destination_is_cut_off_by_the_attempt_timeout() -> None:
    started = time.monotonic()
    outcome = await deliver(mock("timeout"), EVENT, name="demo", attempt_timeout=0.05, policy=FAST)
    elapsed = time.monotonic() - started
    assert outcome.attempts == 4
    assert outcome.error == "timed out after 0.05s"
    assert 4 * 0.05 <= elapsed < 2


async def test_random_failures_are_repeatable_with_a_seed() -> None:
    async def run() -> list[bool]:
        destination = mock("random", failure_rate=0.5, seed=7)
        failed = []
        for _ in range(40):
            try:
                await destination.send(EVENT)
                failed.append(False)
            except RetryableDeliveryError:
                failed.append(True)
        return failed

    first = await run()
    assert first == await run()
    assert 5 < sum(first) < 35


class Refusing:
    """A destination that refuses permanently, counting its attempts."""

    def __init__(self) -> None:
        self.calls = 0

    async def send(self, event: Event) -> None:
        self.calls += 1
        raise PermanentDeliveryError("HTTP 400")

    async def close(self) -> None:
        return None


async def test_a_permanent_failure_is_not_retried() -> None:
    destination = Refusing()
    outcome = await deliver(destination, EVENT, name="demo", attempt_timeout=1, policy=FAST)
    assert (outcome.delivered, outcome.attempts, outcome.permanent) == (False, 1, True)
    assert destination.calls == 1


class AsksToWait:
    def __init__(self) -> None:
        self.times: list[float] = []

    async def send(self, event: Event) -> None:
        self.times.append(time.monotonic())
        if len(self.times) == 1:
            raise RetryableDeliveryError("HTTP 429", retry_after=0.3)

    async def close(self) -> None:
        return None


async def test_retry_after_is_honoured() -> None:
    destination = AsksToWait()
    outcome = await deliver(destination, EVENT, name="demo", attempt_timeout=1, policy=FAST)
    assert outcome.delivered
    assert destination.times[1] - destination.times[0] >= 0.3


class Buggy:
    async def send(self, event: Event) -> None:
        raise KeyError("oops")

    async def close(self) -> None:
        return None


async def test_an_unexpected_exception_counts_as_a_failed_attempt() -> None:
    outcome = await deliver(Buggy(), EVENT, name="demo", attempt_timeout=1, policy=FAST)
    assert not outcome.delivered
    assert outcome.attempts == 4
    assert "KeyError" in (outcome.error or "")


@pytest.mark.parametrize("rate", [-0.1, 1.5])
def test_failure_rate_must_be_a_probability(rate: float) -> None:
    with pytest.raises(ValueError, match="failure_rate"):
        MockOptions(behavior="random", failure_rate=rate)
