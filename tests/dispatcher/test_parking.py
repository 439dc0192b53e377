"""Parking bookkeeping, driven the way the worker drives it, against an order-checking model:
for any sequence of live events, failures, replays, releases, restarts (recovery from the park
log) and late duplicate park writes, no event of a user reaches the destination before an
earlier one, and every event is delivered or still parked."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from dispatcher.durations import Duration
from dispatcher.park_records import ReadEvent, ReadRelease, ReadRetry
from dispatcher.parking import ParkBook, ParkedEvent, ParkingPolicy, PoisonGuard, recover

POLICY = ParkingPolicy(retry_schedule=(Duration(1), Duration(5)))
USERS = ("ann", "bob", "cyd")
P = 0  # one partition: the book's keys are (partition, user)


class ParkingMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.book = ParkBook(POLICY, uniform=lambda: 0.5)
        self.log: list[ReadEvent | ReadRelease | ReadRetry] = []
        """The park partition, as written."""
        self.checkpoint: int | None = None
        self.sent = dict.fromkeys(USERS, 0)
        self.delivered: dict[str, list[int]] = {u: [] for u in USERS}
        self.source_of: dict[tuple[str, int], int] = {}
        self.offset = 0
        self.now = 0.0
        self.replaying: dict[str, ParkedEvent] = {}

    def _park(self, user: str, number: int, source: int) -> None:
        self.book.begin_park(P, user, self.now)
        self.log.append(ReadEvent(user, source, user.encode(), str(number).encode(), [], ""))
        park_offset = len(self.log) - 1
        event = ParkedEvent(park_offset, source, user.encode(), str(number).encode(), [], 0)
        self.book.parked(P, user, event)

    @rule(user=st.sampled_from(USERS), ok=st.booleans())
    def live_event(self, user: str, ok: bool) -> None:
        number = self.sent[user]
        self.sent[user] += 1
        source = self.offset
        self.offset += 1
        self.source_of[user, number] = source
        if self.book.is_parked(P, user) or not ok:
            self._park(user, number, source)  # behind the user's parked events, or newly parked
        else:
            self.delivered[user].append(number)

    @rule(user=st.sampled_from(USERS), successes=st.integers(0, 4), then_fail=st.booleans())
    def replay(self, user: str, successes: int, then_fail: bool) -> None:
        key = (P, user)
        if not self.book.is_parked(*key) or user in self.replaying:
            return
        head = self.book.start_replay(key)
        delivered = 0
        last = -1
        while head is not None and delivered < successes:
            self.delivered[user].append(int(head.value or b"0"))
            last = head.park_offset
            delivered += 1
            head = self.book.replay_delivered(key)
        if self.book.can_release(key):
            self.log.append(ReadRelease(user, last))
            self.book.release(key)
        elif then_fail or head is None:
            parked = self.book.replay_failed(key, self.now, "still failing")
            self.log.append(ReadRetry(user, parked.retries, int(parked.next_retry_at * 1000)))
        else:
            self.book.replay_failed(key, self.now, "stopped here")

    @rule(user=st.sampled_from(USERS))
    def live_event_races_the_release_marker(self, user: str) -> None:
        """The user's last parked event was replayed; while its release marker is on its way,
        a live event of the user is parked (and lands in the park before the marker)."""
        key = (P, user)
        if not self.book.is_parked(*key) or user in self.replaying:
            return
        head = self.book.start_replay(key)
        last = -1
        while head is not None:
            self.delivered[user].append(int(head.value or b"0"))
            last = head.park_offset
            head = self.book.replay_delivered(key)
        if not self.book.can_release(key):
            return
        number = self.sent[user]
        self.sent[user] += 1
        self._park(user, number, self.offset)
        self.offset += 1
        self.log.append(ReadRelease(user, last))
        assert not self.book.can_release(key), "the new event keeps the user parked"
        self.book.replay_failed(key, self.now, "replay goes on later")

    @rule()
    def commit(self) -> None:
        self.checkpoint = self.book.checkpoint(P)

    @rule(data=st.data())
    def late_duplicate_write(self, data: st.DataObject) -> None:
        """A previous owner's park write that landed late: the same event parked twice."""
        events = [r for r in self.log if isinstance(r, ReadEvent)]
        if events:
            self.log.append(data.draw(st.sampled_from(events)))

    @rule()
    def restart(self) -> None:
        """kill -9 and a new owner: the book is rebuilt from the park, from the checkpoint."""
        self.book = ParkBook(POLICY, uniform=lambda: 0.5)
        start = self.checkpoint or 0
        for offset, read in enumerate(self.log):
            if offset >= start:
                recover(self.book, P, offset, read, now=self.now)

    @invariant()
    def no_event_overtakes_an_earlier_one(self) -> None:
        for user, numbers in self.delivered.items():
            high = -1
            for number in numbers:
                assert number <= high + 1, f"{user}: {number} before {high + 1}"
                high = max(high, number)

    @invariant()
    def every_event_is_delivered_or_parked(self) -> None:
        for user in USERS:
            delivered = set(self.delivered[user])
            parked = self.book.get(P, user)
            held = {int(e.value or b"0") for e in parked.events} if parked else set()
            for number in range(self.sent[user]):
                assert number in delivered or number in held, f"{user}: {number} lost"

    @invariant()
    def a_parked_users_live_events_wait_behind_its_parked_ones(self) -> None:
        for user in USERS:
            parked = self.book.get(P, user)
            delivered = set(self.delivered[user])
            waiting = [int(e.value or b"0") for e in parked.events] if parked else []
            waiting = [n for n in waiting if n not in delivered]
            if waiting:
                assert max(delivered, default=-1) < min(waiting), f"{user} overtook its park"


TestParking = ParkingMachine.TestCase
TestParking.settings = settings(max_examples=200, stateful_step_count=60, deadline=None)


def test_a_restart_spreads_recovered_users_over_the_first_wait() -> None:
    book = ParkBook(POLICY, uniform=lambda: 0.25)
    event = ParkedEvent(0, 0, b"ann", b"0", [], 0)
    book.recover_event(P, "ann", event, now=100.0)
    assert book.due(100.0) == []
    assert book.due(100.25) == [(P, "ann")]


def test_the_poison_guard_refuses_a_run_of_parked_users() -> None:
    guard = PoisonGuard(ParkingPolicy(poison_users=3, poison_min_volume=1000), window=30)
    assert guard.refusal(0) is None
    guard.record(parked=True, now=0)
    guard.record(parked=True, now=0)
    assert guard.refusal(0) is not None
    guard.record(parked=False, now=1)
    assert guard.refusal(1) is None


def test_the_poison_guard_refuses_a_high_parking_share() -> None:
    guard = PoisonGuard(ParkingPolicy(poison_users=1000, poison_ratio=0.5, poison_min_volume=4), 30)
    for parked in (True, False, True):
        guard.record(parked=parked, now=0)
    assert guard.refusal(0) is not None  # 3 of 4 would be parked
    assert guard.refusal(31) is None  # the window moved on
