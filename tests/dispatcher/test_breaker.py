"""The breaker as a state machine, checked against a model with hypothesis."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from dispatcher.breaker import Admission, Breaker, BreakerPolicy, State
from dispatcher.durations import Duration

POLICY = BreakerPolicy(
    consecutive_failures=3, failure_ratio=0.5, window=Duration(10), min_volume=6,
    cooldown=Duration(1), max_cooldown=Duration(8),
)  # fmt: skip


class BreakerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.breaker = Breaker(POLICY, now=0.0)
        self.probe_out = False
        self.in_a_row = 0
        self.throttled_until = 0.0

    @rule(seconds=st.floats(0, 5))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds

    @rule()
    def admit(self) -> None:
        before = self.breaker.state
        admission, _ = self.breaker.admit(self.now)
        if before is State.CLOSED:
            assert admission is Admission.ATTEMPT
        elif before is State.HALF_OPEN or self.probe_out:
            assert admission is Admission.WAIT, "one probe at a time"
        elif admission is Admission.PROBE:
            self.probe_out = True
            assert self.breaker.state is State.HALF_OPEN
        if admission is Admission.WAIT:
            assert before is not State.CLOSED

    @precondition(lambda self: self.breaker.state is State.CLOSED)
    @rule(ok=st.booleans())
    def attempt_ends(self, ok: bool) -> None:
        transition = self.breaker.record(ok=ok, now=self.now)
        self.in_a_row = 0 if ok else self.in_a_row + 1
        if self.in_a_row >= POLICY.consecutive_failures:
            assert transition is not None and transition.state is State.OPEN
        if transition is not None:
            self.in_a_row = 0
        if ok:
            assert transition is None, "a success never opens the breaker"

    @precondition(lambda self: self.probe_out)
    @rule(ok=st.booleans())
    def probe_ends(self, ok: bool) -> None:
        transition = self.breaker.record(ok=ok, now=self.now, probe=True)
        self.probe_out = False
        assert transition is not None
        assert transition.state is (State.CLOSED if ok else State.OPEN)
        self.in_a_row = 0

    @precondition(lambda self: self.probe_out)
    @rule()
    def probe_cancelled(self) -> None:
        transition = self.breaker.probe_abandoned(now=self.now)
        self.probe_out = False
        assert transition is not None and transition.state is State.OPEN
        assert transition.next_probe_at == self.now, "the next waiter may probe at once"

    @precondition(lambda self: not self.probe_out)
    @rule()
    def destination_level_error(self) -> None:
        self.breaker.trip("HTTP 401", now=self.now)
        assert self.breaker.state is State.OPEN
        self.in_a_row = 0

    @precondition(lambda self: not self.probe_out)
    @rule(seconds=st.floats(0, 30))
    def throttled(self, seconds: float) -> None:
        self.breaker.throttle(seconds, "429", now=self.now)
        assert self.breaker.state is State.OPEN
        probe_at = self.breaker.next_probe_at
        assert probe_at is not None and probe_at >= self.now + seconds - 1e-9
        self.in_a_row = 0

    @precondition(lambda self: not self.probe_out and self.breaker.state is not State.CLOSED)
    @rule()
    def late_outcome_is_ignored(self) -> None:
        state = self.breaker.state
        assert self.breaker.record(ok=True, now=self.now) is None
        assert self.breaker.record(ok=False, now=self.now) is None
        assert self.breaker.state is state

    @invariant()
    def open_means_a_probe_is_scheduled_within_bounds(self) -> None:
        if self.breaker.state is State.OPEN:
            probe_at = self.breaker.next_probe_at
            assert probe_at is not None
            assert probe_at - self.breaker.since <= max(POLICY.max_cooldown, 30.0) + 1e-9
        else:
            assert self.breaker.next_probe_at is None


TestBreaker = BreakerMachine.TestCase
TestBreaker.settings = settings(max_examples=200, stateful_step_count=60, deadline=None)


def test_failed_probes_lengthen_the_cool_down_up_to_its_cap() -> None:
    breaker = Breaker(POLICY, now=0.0)
    now = 0.0
    breaker.trip("down", now=now)
    waits = []
    for _ in range(6):
        probe_at = breaker.next_probe_at
        assert probe_at is not None
        waits.append(probe_at - now)
        now = probe_at
        assert breaker.admit(now)[0] is Admission.PROBE
        breaker.record(ok=False, now=now, probe=True)
    assert waits == [1, 2, 4, 8, 8, 8]
    breaker.admit(breaker.next_probe_at or 0.0)
    breaker.record(ok=True, now=100.0, probe=True)
    assert breaker.state is State.CLOSED
    breaker.trip("down again", now=100.0)
    assert breaker.next_probe_at == 101.0, "a success resets the cool-down"


@given(st.lists(st.booleans(), min_size=6, max_size=40))
def test_the_failure_ratio_opens_once_the_window_has_volume(outcomes: list[bool]) -> None:
    lenient = BreakerPolicy(consecutive_failures=1000, failure_ratio=0.5, min_volume=6)
    breaker = Breaker(lenient, now=0.0)
    for number, ok in enumerate(outcomes, start=1):
        breaker.record(ok=ok, now=number * 0.01)
        seen = outcomes[:number]
        if breaker.state is State.OPEN:
            assert number >= 6 and seen.count(False) >= 0.5 * number
            assert not ok
            return
        # Judged on each failure: still closed means not enough volume or failures yet.
        assert ok or number < 6 or seen.count(False) < 0.5 * number
