"""The breaker as the event loop sees it: attempts wait here while the destination is down.

``DestinationGate`` wraps the pure ``Breaker`` with a clock and an ``asyncio.Condition``-like
wake-up: ``admit`` returns at once while closed, waits while open, and lets exactly one waiter
through as the probe once the cool-down is over. Every transition is handed to
``on_transition`` (the worker pauses or resumes fetching, logs, counts and publishes it).

A waiter may also give a deadline: an unfinished event about to reach the events topic's
retention stops waiting and is parked instead (``Pass.EVACUATE``).
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Callable, Hashable

from dispatcher.breaker import Admission, Breaker, BreakerPolicy, State, Transition

__all__ = ["DestinationGate", "Pass"]


class Pass(enum.Enum):
    """What ``admit`` lets the caller do."""

    ATTEMPT = "attempt"
    PROBE = "probe"
    EVACUATE = "evacuate"
    """The deadline passed while the destination was down: park the event instead."""


class DestinationGate:
    """One destination's breaker, awaited by its deliveries."""

    def __init__(
        self,
        policy: BreakerPolicy,
        *,
        on_transition: Callable[[Transition], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._clock = clock
        self.breaker = Breaker(policy, now=clock())
        self._on_transition = on_transition
        self._changed = asyncio.Event()
        self.closed = self.breaker.state is State.CLOSED
        """Whether the breaker is closed, kept at each transition (read on every delivery).
        It holds as long as only this gate drives ``breaker``: read the breaker, never call
        its transitions directly."""

    async def admit(self, *, deadline: float | None = None) -> Pass:
        """Wait until an attempt may start (or ``deadline``, a wall-clock time, passes)."""
        while True:
            now = self._clock()
            admission, transition = self.breaker.admit(now)
            if transition is not None:
                self._apply(transition)
            if admission is Admission.ATTEMPT:
                return Pass.ATTEMPT
            if admission is Admission.PROBE:
                return Pass.PROBE
            if deadline is not None and now >= deadline:
                return Pass.EVACUATE
            wake = [t for t in (self.breaker.next_probe_at, deadline) if t is not None]
            timeout = max(0.0, min(wake) - now) if wake else None
            changed = self._changed
            try:
                async with asyncio.timeout(timeout):
                    await changed.wait()
            except TimeoutError:
                pass

    def record(self, *, ok: bool, probe: bool, key: Hashable = None) -> None:
        transition = self.breaker.record(ok=ok, now=self._clock(), probe=probe, key=key)
        if transition is not None:  # rarely: the breaker changed state
            self._apply(transition)

    def probe_abandoned(self) -> None:
        self._apply(self.breaker.probe_abandoned(now=self._clock()))

    def trip(self, reason: str) -> None:
        self._apply(self.breaker.trip(reason, now=self._clock()))

    def throttle(self, seconds: float, reason: str) -> None:
        self._apply(self.breaker.throttle(seconds, reason, now=self._clock()))

    def _apply(self, transition: Transition | None) -> None:
        if transition is None:
            return
        self.closed = transition.state is State.CLOSED
        # Wake every waiter: the new state may let one of them through (or none).
        self._changed.set()
        self._changed = asyncio.Event()
        self._on_transition(transition)
