"""Attempt timeouts sharing one timer per destination: each attempt is cut off at its own
deadline, the others are untouched, and cancellations that are not ours stay cancellations."""

from __future__ import annotations

import asyncio

import pytest

from dispatcher.timeouts import Timeouts

SECONDS = 0.05
WITHIN = 5.0
"""Seconds a test waits for what must happen long before (a hang fails it, not a slow box)."""


async def hang(timeouts: Timeouts, ended: list[tuple[str, float]], name: str) -> None:
    """Wait inside a bound for something that never comes; note when it was cut off."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        with timeouts.bound():
            await asyncio.Event().wait()
    except TimeoutError:
        ended.append((name, loop.time() - started))
        raise


async def test_an_attempt_past_its_deadline_gets_a_timeout_and_its_task_goes_on() -> None:
    timeouts = Timeouts(SECONDS)

    async def attempt() -> int:
        task = asyncio.current_task()
        assert task is not None
        with pytest.raises(TimeoutError), timeouts.bound():
            await asyncio.Event().wait()
        await asyncio.sleep(0)  # it can still await: no cancellation is left pending on it
        return task.cancelling()

    assert await asyncio.wait_for(asyncio.create_task(attempt()), WITHIN) == 0
    assert timeouts.in_flight == 0


async def test_attempts_that_end_in_time_are_untouched_while_a_hung_one_is_cut_off() -> None:
    timeouts = Timeouts(SECONDS)
    ended: list[tuple[str, float]] = []

    async def quick(number: int) -> int:
        with timeouts.bound():
            await asyncio.sleep(0)
        return number

    hung = asyncio.create_task(hang(timeouts, ended, "hung"))
    assert await asyncio.gather(*(quick(n) for n in range(50))) == list(range(50))
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(hung, WITHIN)
    assert [name for name, _ in ended] == ["hung"]
    assert timeouts.in_flight == 0


async def test_hung_attempts_are_cut_off_each_at_its_own_deadline_in_start_order() -> None:
    timeouts = Timeouts(SECONDS)
    ended: list[tuple[str, float]] = []
    tasks = []
    for name in "abcd":  # started a third of the timeout apart: one timer re-arms for each
        tasks.append(asyncio.create_task(hang(timeouts, ended, name)))
        await asyncio.sleep(SECONDS / 3)
    results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), WITHIN)
    assert all(isinstance(result, TimeoutError) for result in results)
    assert [name for name, _ in ended] == list("abcd")
    assert all(waited >= SECONDS - 0.002 for _, waited in ended), ended  # never early


async def test_an_attempt_started_after_the_table_emptied_is_still_cut_off() -> None:
    timeouts = Timeouts(SECONDS)
    with timeouts.bound():  # arms the timer for its deadline, then leaves at once
        pass
    await asyncio.sleep(SECONDS / 2)
    ended: list[tuple[str, float]] = []
    with pytest.raises(TimeoutError):  # the stale timer finds it not due and re-arms for it
        await asyncio.wait_for(hang(timeouts, ended, "late"), WITHIN)
    assert ended[0][1] >= SECONDS - 0.002


async def test_someone_elses_cancellation_stays_a_cancellation() -> None:
    timeouts = Timeouts(60.0)
    entered = asyncio.Event()

    async def attempt() -> None:
        with timeouts.bound():
            entered.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(attempt())
    await asyncio.wait_for(entered.wait(), WITHIN)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert timeouts.in_flight == 0


async def test_a_cancellation_arriving_with_the_deadline_is_not_swallowed() -> None:
    timeouts = Timeouts(60.0)
    entered = asyncio.Event()
    bounds = []

    async def attempt() -> None:
        with timeouts.bound() as bound:
            bounds.append(bound)
            entered.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(attempt())
    await asyncio.wait_for(entered.wait(), WITHIN)
    bounds[0].expire()  # the deadline passes ...
    task.cancel()  # ... and someone else cancels the attempt in the same turn of the loop
    with pytest.raises(asyncio.CancelledError):
        await task


def test_a_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        Timeouts(0)
