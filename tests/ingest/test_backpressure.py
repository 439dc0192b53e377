"""The request bound: a bounded wait for a slot, then 503."""

from __future__ import annotations

import asyncio
import logging

import pytest

from ingest.backpressure import RequestSlots
from ingest.exceptions import Unavailable
from tests.ingest.waiting import until


async def test_a_request_waits_for_a_slot_that_frees_up() -> None:
    slots = RequestSlots(max_concurrent=1, wait=30.0, retry_after=1)
    release = asyncio.Event()
    entered = asyncio.Event()

    async def first() -> None:
        async with slots.hold():
            entered.set()
            await release.wait()

    holder = asyncio.create_task(first())
    await entered.wait()
    waiter = asyncio.create_task(_hold_once(slots))
    await until(lambda: slots.waiting == 1, within=5, what="the second request waits")
    assert not waiter.done()
    release.set()
    await asyncio.wait_for(waiter, timeout=5)
    await holder
    assert slots.in_use == 0


async def test_no_slot_within_the_wait_is_503_with_retry_after() -> None:
    slots = RequestSlots(max_concurrent=2, wait=0.05, retry_after=3)
    release = asyncio.Event()
    holders = [asyncio.create_task(_hold_until(slots, release)) for _ in range(2)]
    await until(lambda: slots.in_use == 2, within=5, what="both slots taken")
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(Unavailable) as exc:
        await _hold_once(slots)
    assert loop.time() - started < 2.0
    assert exc.value.retry_after == 3
    assert exc.value.reason == "busy"
    release.set()
    await asyncio.gather(*holders)
    # The refused request took no slot with it.
    await asyncio.wait_for(asyncio.gather(_hold_once(slots), _hold_once(slots)), timeout=5)
    assert slots.in_use == 0


async def test_a_slot_is_returned_when_the_request_fails() -> None:
    slots = RequestSlots(max_concurrent=1, wait=0.0, retry_after=1)
    with pytest.raises(RuntimeError):
        async with slots.hold():
            raise RuntimeError("handler failed")
    await _hold_once(slots)


async def _hold_once(slots: RequestSlots) -> None:
    async with slots.hold():
        pass


async def _hold_until(slots: RequestSlots, release: asyncio.Event) -> None:
    async with slots.hold():
        await release.wait()


async def test_refusals_are_logged_once_per_burst_with_their_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="ingest")
    slots = RequestSlots(max_concurrent=1, wait=0.0, retry_after=1, log_interval=2.0)
    release = asyncio.Event()
    holder = asyncio.create_task(_hold_until(slots, release))
    await until(lambda: slots.in_use == 1, within=5, what="the only slot is taken")
    for _ in range(50):
        with pytest.raises(Unavailable):
            await _hold_once(slots)

    def busy_lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if "busy" in r.getMessage()]

    first, *_ = busy_lines()
    assert len(busy_lines()) == 1, busy_lines()
    assert "count=1 " in first
    await until(lambda: len(busy_lines()) == 2, within=5, what="the rest of the burst summed")
    assert "count=49 in the last 2s" in busy_lines()[1]
    assert all(r.levelno == logging.WARNING for r in caplog.records)
    release.set()
    await holder
