"""Demonstration destinations that succeed, fail, hang, fail once, or fail at random."""

from __future__ import annotations

import asyncio
import random
from typing import Literal

import msgspec

from dispatcher.destinations.base import DestinationType
from dispatcher.durations import Duration
from dispatcher.exceptions import RetryableDeliveryError
from eventlog.record import Event

__all__ = ["TYPE", "MockDestination", "MockOptions"]

Behavior = Literal["succeed", "fail", "timeout", "fail_first", "random"]


class MockOptions(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Manifest keys of ``type: mock``."""

    behavior: Behavior
    """succeed | fail (always) | timeout (never answers) | fail_first (each event's first
    attempt fails, the retry succeeds) | random (fails with ``failure_rate``)."""
    failure_rate: float = 0.5
    """Probability that an attempt fails, for ``behavior: random``."""
    seed: int | None = None
    """Seed of ``random``'s generator, for repeatable runs."""
    latency: Duration = Duration(0)
    """How long each attempt takes before it answers."""

    def __post_init__(self) -> None:
        if not 0 <= self.failure_rate <= 1:
            raise ValueError("failure_rate must be between 0 and 1")


class MockDestination:
    """Answers as its ``behavior`` says; the delivery machinery around it is the real one."""

    def __init__(self, name: str, options: MockOptions, concurrency: int = 1) -> None:
        self.name = name
        self._options = options
        self._random = random.Random(options.seed)  # noqa: S311 - a demo, not cryptography
        self._failed_once: set[str] = set()

    async def send(self, event: Event) -> None:
        behavior = self._options.behavior
        if self._options.latency:
            await asyncio.sleep(self._options.latency)
        if behavior == "succeed":
            return
        if behavior == "fail":
            raise RetryableDeliveryError(f"{self.name} is down (mock: always fails)")
        if behavior == "timeout":
            await asyncio.Event().wait()  # never answers: the attempt timeout ends it
        if behavior == "fail_first":
            if event.id in self._failed_once:
                self._failed_once.discard(event.id)
                return
            self._failed_once.add(event.id)
            raise RetryableDeliveryError(f"{self.name} failed the first attempt (mock)")
        if self._random.random() < self._options.failure_rate:
            raise RetryableDeliveryError(f"{self.name} failed at random (mock)")

    async def close(self) -> None:
        self._failed_once.clear()


TYPE = DestinationType(options=MockOptions, create=MockDestination)
