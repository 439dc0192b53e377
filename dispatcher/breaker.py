"""A destination's circuit breaker, as a pure state machine: no clock, no I/O of its own.

The worker tells it what happened (``record``, ``trip``, ``throttle``) with the time, and asks
it whether an attempt may start (``admit``); every change of state comes back as a
``Transition`` for the worker to apply (pause or resume fetching, log, count).

* **closed**: attempts flow. It opens once ``consecutive_failures`` different users failed in
  a row with no success in between, or when, of the users attempted within ``window`` (at
  least ``min_volume`` of them), the share whose latest attempt failed reaches
  ``failure_ratio``. Users, not attempts, are counted: one user's event failing again and
  again is that user's problem (parking deals with it), not the destination's. It also opens
  at once on a destination-level signal
  (``trip``: 401/403/404/410, a misconfiguration, the poison guard) or a throttle
  (``throttle``: 429/503 with ``Retry-After``).
* **open**: no attempt starts. After a cool-down (``cooldown``, doubling after each failed
  probe up to ``max_cooldown``; a throttle's own wait instead) the next ``admit`` is a probe.
* **half-open**: one probe is out; nothing else starts. Its success closes the breaker, its
  failure re-opens it with a longer cool-down.

Outcomes of attempts that started before the breaker opened and end while it is open are
ignored: the verdict that matters is the probe's.
"""

from __future__ import annotations

import enum
from collections.abc import Hashable
from dataclasses import dataclass

import msgspec

from dispatcher.durations import Duration

__all__ = ["Admission", "Breaker", "BreakerPolicy", "State", "Transition"]


class BreakerPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """When a destination counts as down (manifest key ``breaker``)."""

    consecutive_failures: int = 5
    """Different users failing in a row, with no success between, that open the breaker."""
    failure_ratio: float = 0.5
    """Share of the users attempted within ``window`` whose latest attempt failed that opens
    the breaker..."""
    window: Duration = Duration(30.0)
    """...over this sliding window of time..."""
    min_volume: int = 20
    """...once the window holds at least this many users."""
    cooldown: Duration = Duration(5.0)
    """Wait after opening before the first probe; doubles after each failed probe..."""
    max_cooldown: Duration = Duration(300.0)
    """...up to this."""

    def __post_init__(self) -> None:
        if self.consecutive_failures < 1:
            raise ValueError("consecutive_failures must be at least 1")
        if not 0 < self.failure_ratio <= 1:
            raise ValueError("failure_ratio must be more than 0 and at most 1")
        if self.min_volume < 1:
            raise ValueError("min_volume must be at least 1")
        if not self.window > 0:
            raise ValueError("window must be more than 0")
        if not self.cooldown > 0:
            raise ValueError("cooldown must be more than 0")
        if self.max_cooldown < self.cooldown:
            raise ValueError("max_cooldown must not be below cooldown")


class State(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Admission(enum.Enum):
    """What ``admit`` allows now."""

    ATTEMPT = "attempt"
    """Closed: go ahead."""
    PROBE = "probe"
    """The one probe of a half-open breaker: report its outcome with ``probe=True``."""
    WAIT = "wait"
    """Open, or a probe is out: wait (until ``next_probe_at`` or the next transition)."""


@dataclass(frozen=True, slots=True)
class Transition:
    """A change of state, for the worker to apply and report."""

    state: State
    reason: str
    at: float
    next_probe_at: float | None
    """When an open breaker lets its probe through (``None`` unless open)."""


class Breaker:
    """One destination's breaker (see the module docstring)."""

    __slots__ = (
        "_cooldown",
        "_failing",
        "_failing_in_a_row",
        "_latest",
        "_next_probe_at",
        "_policy",
        "_reason",
        "_since",
        "_state",
    )

    def __init__(self, policy: BreakerPolicy, *, now: float = 0.0) -> None:
        self._policy = policy
        self._state = State.CLOSED
        self._since = now
        self._reason = "started"
        self._next_probe_at: float | None = None
        self._cooldown = float(policy.cooldown)
        self._failing_in_a_row: set[Hashable] = set()
        self._latest: dict[Hashable, tuple[float, bool]] = {}
        """Each user's latest outcome within the window, oldest first."""
        self._failing = 0
        """Users in ``_latest`` whose latest outcome is a failure."""

    @property
    def state(self) -> State:
        return self._state

    @property
    def since(self) -> float:
        return self._since

    @property
    def reason(self) -> str:
        return self._reason

    @property
    def next_probe_at(self) -> float | None:
        return self._next_probe_at

    def admit(self, now: float) -> tuple[Admission, Transition | None]:
        """May an attempt start now? An open breaker past its cool-down turns half-open and
        admits exactly one probe."""
        if self._state is State.CLOSED:
            return Admission.ATTEMPT, None
        probe_at = self._next_probe_at
        if self._state is State.OPEN and probe_at is not None and now >= probe_at:
            return Admission.PROBE, self._enter(State.HALF_OPEN, "probing", now)
        return Admission.WAIT, None

    def record(
        self, *, ok: bool, now: float, probe: bool = False, key: Hashable = None
    ) -> Transition | None:
        """The outcome of an attempt (``probe``: the one ``admit`` answered ``PROBE``) for
        ``key``, the user: one user failing again and again is that user's problem, so only
        distinct users count towards opening."""
        if probe:
            return self._probed(ok=ok, now=now)
        if self._state is not State.CLOSED:
            return None  # started before the breaker opened: the probe decides
        return self._counted(ok=ok, now=now, key=key)

    def _probed(self, *, ok: bool, now: float) -> Transition | None:
        if self._state is not State.HALF_OPEN:
            return None
        if ok:
            self._cooldown = float(self._policy.cooldown)
            return self._enter(State.CLOSED, "probe succeeded", now)
        self._cooldown = min(self._cooldown * 2, float(self._policy.max_cooldown))
        return self._open("probe failed", now, self._cooldown)

    def _counted(self, *, ok: bool, now: float, key: Hashable) -> Transition | None:
        latest = self._latest
        previous = latest.pop(key, None)
        if previous is not None and not previous[1]:
            self._failing -= 1
        latest[key] = (now, ok)  # moves the key to the newest end
        self._failing += not ok
        horizon = now - self._policy.window
        while latest:
            oldest = next(iter(latest))
            stamp, good = latest[oldest]
            if stamp >= horizon:
                break
            del latest[oldest]
            self._failing -= not good
        if ok:
            self._failing_in_a_row.clear()
            return None
        self._failing_in_a_row.add(key)
        in_a_row = len(self._failing_in_a_row)
        if in_a_row >= self._policy.consecutive_failures:
            reason = f"{in_a_row} users failed in a row"
            return self._open(reason, now, self._cooldown)
        users = len(latest)
        if users >= self._policy.min_volume and self._failing >= self._policy.failure_ratio * users:
            reason = f"{self._failing} of {users} users failing in {self._policy.window:g}s"
            return self._open(reason, now, self._cooldown)
        return None

    def probe_abandoned(self, *, now: float) -> Transition | None:
        """The probe ended without an outcome (cancelled): let the next waiter probe."""
        if self._state is not State.HALF_OPEN:
            return None
        return self._open("probe abandoned", now, 0.0)

    def trip(self, reason: str, *, now: float) -> Transition | None:
        """A destination-level signal: open now (or stay open, probe later if half-open)."""
        if self._state is State.OPEN:
            return None
        if self._state is State.HALF_OPEN:
            self._cooldown = min(self._cooldown * 2, float(self._policy.max_cooldown))
        return self._open(reason, now, self._cooldown)

    def throttle(self, seconds: float, reason: str, *, now: float) -> Transition | None:
        """The destination asked for ``seconds`` of quiet: open until then, the cool-down
        unchanged (a throttle is not a failure)."""
        until = now + max(0.0, seconds)
        if self._state is State.OPEN and (self._next_probe_at or 0.0) >= until:
            return None
        return self._open(reason, now, until - now)

    def _open(self, reason: str, now: float, wait: float) -> Transition:
        self._next_probe_at = now + wait
        return self._enter(State.OPEN, reason, now)

    def _enter(self, state: State, reason: str, now: float) -> Transition:
        self._state = state
        self._since = now
        self._reason = reason
        if state is not State.OPEN:
            self._next_probe_at = None
        if state is State.CLOSED:
            self._failing_in_a_row.clear()
            self._latest.clear()
            self._failing = 0
        return Transition(state, reason, now, self._next_probe_at)
