"""The delivery machinery (gate, tenacity, timeouts, outcome) around real destination objects."""

from __future__ import annotations

import asyncio
import time

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from dispatcher.breaker import BreakerPolicy, State, Transition
from dispatcher.delivery import Outcome, Result, deliver
from dispatcher.destinations import Destination
from dispatcher.destinations.mock import MockDestination, MockOptions
from dispatcher.durations import Duration
from dispatcher.exceptions import (
    DestinationError,
    PermanentDeliveryError,
    RetryableDeliveryError,
    ThrottledError,
)
from dispatcher.gate import DestinationGate
from dispatcher.retry import RetryPolicy
from dispatcher.timeouts import Timeouts
from eventlog import semconv
from eventlog.record import Event

EVENT = Event(id="e-1", user_id="alice", payload="hi", received_at_ms=0)
FAST = RetryPolicy(max_retries=3, initial_backoff=Duration(0.001), max_backoff=Duration(0.01))
NEVER_OPENS = BreakerPolicy(consecutive_failures=1000, min_volume=1000)


def mock(behavior: str, **options: object) -> MockDestination:
    return MockDestination("demo", MockOptions(behavior=behavior, **options))  # type: ignore[arg-type]


def make_gate(
    policy: BreakerPolicy = NEVER_OPENS, seen: list[Transition] | None = None
) -> DestinationGate:
    return DestinationGate(policy, on_transition=(seen if seen is not None else []).append)


async def send(
    destination: Destination,
    *,
    gate: DestinationGate | None = None,
    policy: RetryPolicy = FAST,
    attempt_timeout: float = 1.0,
    deadline: float | None = None,
) -> Outcome:
    return await deliver(
        destination, EVENT, gate=gate or make_gate(), name="demo",
        timeouts=Timeouts(attempt_timeout), policy=policy, deadline=deadline,
    )  # fmt: skip


async def test_success_takes_one_attempt() -> None:
    outcome = await deliver(
        mock("succeed"), EVENT, gate=make_gate(), name="d", timeouts=Timeouts(1), policy=FAST
    )
    assert (outcome.result, outcome.attempts, outcome.error) == (Result.DELIVERED, 1, None)


async def test_always_failing_gets_one_plus_max_retries_attempts() -> None:
    outcome = await deliver(
        mock("fail"), EVENT, gate=make_gate(), name="d", timeouts=Timeouts(1), policy=FAST
    )
    assert outcome.result is Result.EXHAUSTED
    assert outcome.attempts == 4
    assert "always fails" in (outcome.error or "")


async def test_a_single_attempt_policy_gives_up_after_one() -> None:
    once = RetryPolicy(max_retries=0)
    outcome = await deliver(
        mock("fail"), EVENT, gate=make_gate(), name="d", timeouts=Timeouts(1), policy=once
    )
    assert (outcome.result, outcome.attempts) == (Result.EXHAUSTED, 1)


async def test_fail_first_is_delivered_on_the_second_attempt() -> None:
    destination = mock("fail_first")
    for event_id in ("a", "b"):
        event = Event(id=event_id, user_id="u", payload="p", received_at_ms=0)
        outcome = await deliver(
            destination, event, gate=make_gate(), name="d", timeouts=Timeouts(1), policy=FAST
        )
        assert (outcome.delivered, outcome.attempts) == (True, 2)


async def test_a_hanging_destination_is_cut_off_by_the_attempt_timeout() -> None:
    started = time.monotonic()
    outcome = await deliver(
        mock("timeout"), EVENT, gate=make_gate(), name="d", timeouts=Timeouts(0.05), policy=FAST
    )
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


class Scripted:
    """A destination answering each attempt from a list of errors (``None``: success)."""

    def __init__(self, *answers: BaseException | None) -> None:
        self.answers = list(answers)
        self.times: list[float] = []

    async def send(self, event: Event) -> None:
        self.times.append(time.monotonic())
        answer = self.answers.pop(0) if self.answers else None
        if answer is not None:
            raise answer

    async def close(self) -> None:
        return None


async def test_a_permanent_failure_is_not_retried() -> None:
    destination = Scripted(PermanentDeliveryError("HTTP 400"))
    outcome = await send(destination)
    assert (outcome.result, outcome.attempts) == (Result.REFUSED, 1)
    assert len(destination.times) == 1


async def test_retry_after_is_honoured_on_every_retry_not_only_the_first() -> None:
    destination = Scripted(
        RetryableDeliveryError("HTTP 500", retry_after=0.2),
        RetryableDeliveryError("HTTP 500", retry_after=0.3),
    )
    outcome = await send(destination)
    assert outcome.delivered
    first, second, third = destination.times
    assert second - first >= 0.2
    assert third - second >= 0.3


async def test_a_throttle_pauses_the_destination_without_spending_attempts() -> None:
    seen: list[Transition] = []
    answers = [ThrottledError("HTTP 429", retry_after=0.2)] * 6
    destination = Scripted(*answers)
    once = RetryPolicy(max_retries=0)
    started = time.monotonic()
    outcome = await send(destination, gate=make_gate(NEVER_OPENS, seen), policy=once)
    assert outcome.delivered
    assert len(destination.times) == 7  # six throttles cost nothing, even with one attempt
    assert time.monotonic() - started >= 6 * 0.2
    assert seen[0].state is State.OPEN and "throttled" in seen[0].reason
    assert seen[-1].state is State.CLOSED


async def test_a_destination_level_error_opens_the_breaker_and_costs_no_attempt() -> None:
    seen: list[Transition] = []
    policy = BreakerPolicy(cooldown=Duration(0.05))
    destination = Scripted(DestinationError("HTTP 401"), DestinationError("HTTP 401"))
    outcome = await send(
        destination, gate=make_gate(policy, seen), policy=RetryPolicy(max_retries=0)
    )
    assert outcome.delivered
    assert [t.state for t in seen] == [
        State.OPEN, State.HALF_OPEN, State.OPEN, State.HALF_OPEN, State.CLOSED,
    ]  # fmt: skip


async def test_failures_while_the_breaker_is_open_wait_in_place() -> None:
    """Another user failed just before: this failure makes two users in a row and opens the
    breaker. The event then waits and keeps its attempts: with a budget of 2 it is still
    delivered after 5 failed attempts in all (the later ones being probes)."""
    policy = BreakerPolicy(consecutive_failures=2, cooldown=Duration(0.02))
    shared = make_gate(policy)
    shared.record(ok=False, probe=False, key="bob")
    destination = Scripted(*[RetryableDeliveryError("HTTP 503")] * 5)
    outcome = await send(destination, gate=shared, policy=RetryPolicy(max_retries=1))
    assert outcome.delivered
    assert outcome.attempts == 6


async def test_past_its_deadline_a_waiting_event_is_evacuated() -> None:
    policy = BreakerPolicy(consecutive_failures=1, cooldown=Duration(60))
    outcome = await send(
        Scripted(RetryableDeliveryError("down")), gate=make_gate(policy), deadline=time.time() + 0.1
    )
    assert outcome.result is Result.EVACUATE


async def test_cancelling_the_probe_lets_another_waiter_probe() -> None:
    policy = BreakerPolicy(consecutive_failures=1, cooldown=Duration(0.01))
    shared = make_gate(policy)
    shared.trip("test")
    hanging = asyncio.create_task(send(mock("timeout"), gate=shared, attempt_timeout=30.0))
    await asyncio.sleep(0.05)
    assert shared.breaker.state is State.HALF_OPEN  # the hanging attempt is the probe
    hanging.cancel()
    with pytest.raises(asyncio.CancelledError):
        await hanging
    outcome = await asyncio.wait_for(send(mock("succeed"), gate=shared), timeout=5)
    assert outcome.delivered


class Buggy:
    async def send(self, event: Event) -> None:
        raise KeyError("oops")

    async def close(self) -> None:
        return None


async def test_an_unexpected_exception_counts_as_a_failed_attempt() -> None:
    outcome = await send(Buggy())
    assert outcome.result is Result.EXHAUSTED
    assert outcome.attempts == 4
    assert "KeyError" in (outcome.error or "")


@pytest.mark.parametrize("rate", [-0.1, 1.5])
def test_failure_rate_must_be_a_probability(rate: float) -> None:
    with pytest.raises(ValueError, match="failure_rate"):
        MockOptions(behavior="random", failure_rate=rate)


class _Hangs:
    """A destination whose first attempt never answers; the next ones succeed."""

    name = "hangs"

    def __init__(self) -> None:
        self.calls = 0

    async def send(self, event: Event) -> None:
        self.calls += 1
        if self.calls == 1:
            await asyncio.Event().wait()

    async def close(self) -> None:
        return None


def _attempt_spans(exporter: InMemorySpanExporter) -> list[tuple[object, ...]]:
    return [
        (
            (s.attributes or {}).get(semconv.DELIVERY_ATTEMPT),
            (s.attributes or {}).get(semconv.DELIVERY_OUTCOME),
            s.status.status_code,
        )
        for s in exporter.get_finished_spans()
        if s.name == "deliver demo"
    ]


async def test_each_traced_attempt_is_a_span_saying_how_it_ended(
    span_exporter: InMemorySpanExporter,
) -> None:
    outcome = await deliver(
        _Hangs(), EVENT, gate=make_gate(), name="demo", timeouts=Timeouts(0.05),
        policy=FAST, traced=True,
    )  # fmt: skip
    assert (outcome.result, outcome.attempts) == (Result.DELIVERED, 2)
    assert _attempt_spans(span_exporter) == [
        (1, "timeout", StatusCode.ERROR),
        (2, "delivered", StatusCode.UNSET),
    ]


async def test_a_traced_attempt_cancelled_ends_its_span_as_cancelled(
    span_exporter: InMemorySpanExporter,
) -> None:
    attempts = deliver(
        _Hangs(), EVENT, gate=make_gate(), name="demo", timeouts=Timeouts(60),
        policy=FAST, traced=True,
    )  # fmt: skip
    task = asyncio.create_task(attempts)
    await asyncio.sleep(0)  # the attempt starts and waits for its answer
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert _attempt_spans(span_exporter) == [(1, "cancelled", StatusCode.UNSET)]
