"""Waiting on a condition with a deadline (never a bare sleep standing in for it)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

__all__ = ["until", "until_async"]


async def until(condition: Callable[[], bool], *, within: float, what: str) -> None:
    """Return once ``condition()`` holds; fail the test after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within}s: {what}")
        await asyncio.sleep(0.005)


async def until_async(
    condition: Callable[[], Awaitable[bool]], *, within: float, interval: float, what: str
) -> None:
    """Like ``until`` for a condition that must be awaited (e.g. an HTTP probe)."""
    deadline = time.monotonic() + within
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within}s: {what}")
        await asyncio.sleep(interval)
