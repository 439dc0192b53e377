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
        self.in_a_row: set[str] = set()

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
    @rule(ok=st.booleans(), user=st.sampled_from(["ann", "bob", "cyd", "dan"]))
    def attempt_ends(self, ok: bool, user: str) -> None:
        transition = self.breaker.record(ok=ok, now=self.now, key=user)
        if ok:
            self.in_a_row.clear()
            assert transition is None, "a success never opens the breaker"
        else:
            self.in_a_row.add(user)
        if len(self.in_a_row) >= POLICY.consecutive_failures:
            assert transition is not None and transition.state is State.OPEN
        if transition is not None:
            self.in_a_row.clear()

    @precondition(lambda self: self.probe_out)
    @rule(ok=st.booleans())
    def probe_ends(self, ok: bool) -> None:
        transition = self.breaker.record(ok=ok, now=self.now, probe=True)
        self.probe_out = False
        assert transition is not None
        assert transition.state is (State.CLOSED if ok else State.OPEN)
        self.in_a_row.clear()

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
        self.in_a_row.clear()

    @precondition(lambda self: not self.probe_out)
    @rule(seconds=st.floats(0, 30))
    def throttled(self, seconds: float) -> None:
        self.breaker.throttle(seconds, "429", now=self.now)
        assert self.breaker.state is State.OPEN
        probe_at = self.breaker.next_probe_at
        assert probe_at is not None and probe_at >= self.now + seconds - 1e-9
        self.in_a_row.clear()

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


@given(st.lists(st.tuples(st.integers(0, 9), st.booleans()), min_size=1, max_size=60))
def test_the_failure_ratio_counts_users_once_the_window_has_enough(
    outcomes: list[tuple[int, bool]],
) -> None:
    lenient = BreakerPolicy(consecutive_failures=1000, failure_ratio=0.5, min_volume=4)
    breaker = Breaker(lenient, now=0.0)
    latest: dict[int, bool] = {}
    for number, (user, ok) in enumerate(outcomes, start=1):
        breaker.record(ok=ok, now=number * 0.01, key=user)
        latest[user] = ok
        failing = sum(1 for good in latest.values() if not good)
        if breaker.state is State.OPEN:
            assert not ok and len(latest) >= 4 and failing >= 0.5 * len(latest)
            return
        # Judged on each failure: still closed means too few users, or too few failing.
        assert ok or len(latest) < 4 or failing < 0.5 * len(latest)


def test_one_user_failing_again_and_again_does_not_open_it() -> None:
    breaker = Breaker(POLICY, now=0.0)
    for n in range(100):
        assert breaker.record(ok=False, now=n * 0.01, key="ann") is None
    assert breaker.state is State.CLOSED
