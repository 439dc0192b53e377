"""Per-user ordering and commit bookkeeping, checked against simple models with hypothesis."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from dispatcher.ordering import KeyedScheduler, OffsetTracker

Key = tuple[int, int]
"""``(partition, user)``, as the consumer builds it."""
Item = tuple[Key, int]
"""The key again plus a sequence number unique over a test, so any mix-up shows."""

keys = st.tuples(st.integers(0, 2), st.integers(0, 3))


# --- OffsetTracker -----------------------------------------------------------------------------


class OffsetTrackerMachine(RuleBasedStateMachine):
    """Adds (with gaps) and completions in any interleaving, against a list-and-set model."""

    def __init__(self) -> None:
        super().__init__()
        self.tracker = OffsetTracker()
        self.added: list[int] = []
        self.finished: set[int] = set()

    @property
    def pending(self) -> list[int]:
        return [offset for offset in self.added if offset not in self.finished]

    @rule(gap=st.integers(1, 3))
    def add(self, gap: int) -> None:
        offset = self.added[-1] + gap if self.added else gap - 1
        self.tracker.add(offset)
        self.added.append(offset)

    @precondition(lambda self: self.added)
    @rule(back=st.integers(0, 3))
    def add_not_increasing(self, back: int) -> None:
        with pytest.raises(ValueError, match="strictly increasing"):
            self.tracker.add(self.added[-1] - back)

    @precondition(lambda self: self.pending)
    @rule(data=st.data())
    def done(self, data: st.DataObject) -> None:
        offset = data.draw(st.sampled_from(self.pending))
        self.tracker.done(offset)
        self.finished.add(offset)

    @rule(offset=st.integers(-1, 40))
    def done_not_pending(self, offset: int) -> None:
        if offset in self.pending:
            return
        with pytest.raises(ValueError, match="not pending"):
            self.tracker.done(offset)

    @invariant()
    def commits_only_finished_events(self) -> None:
        committable = self.tracker.committable()
        assert self.tracker.pending == len(self.pending)
        if not self.added:
            assert committable is None
            return
        assert committable is not None
        assert all(offset in self.finished for offset in self.added if offset < committable)
        assert committable == min(self.pending, default=self.added[-1] + 1)


TestOffsetTracker = OffsetTrackerMachine.TestCase
TestOffsetTracker.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


@given(
    offsets=st.sets(st.integers(0, 10_000), min_size=1, max_size=60).map(sorted),
    data=st.data(),
)
def test_committable_follows_lowest_unfinished_offset(
    offsets: list[int], data: st.DataObject
) -> None:
    tracker = OffsetTracker()
    for offset in offsets:
        tracker.add(offset)
    unfinished = set(offsets)
    for offset in data.draw(st.permutations(offsets)):
        tracker.done(offset)
        unfinished.discard(offset)
        assert tracker.committable() == min(unfinished, default=offsets[-1] + 1)
    assert tracker.pending == 0


def test_offset_tracker_examples() -> None:
    tracker = OffsetTracker()
    assert tracker.committable() is None
    for offset in (5, 6, 9):  # 7 and 8 were compacted away
        tracker.add(offset)
    assert tracker.committable() == 5
    tracker.done(6)
    assert tracker.committable() == 5  # 5 still unfinished: committing 7 would skip it
    tracker.done(5)
    assert tracker.committable() == 9
    tracker.done(9)
    assert (tracker.committable(), tracker.pending) == (10, 0)
    with pytest.raises(ValueError, match="not pending"):
        tracker.done(9)
    with pytest.raises(ValueError, match="strictly increasing"):
        tracker.add(9)


# --- KeyedScheduler ----------------------------------------------------------------------------


class KeyedSchedulerMachine(RuleBasedStateMachine):
    """Every operation against a model that states the contract directly.

    The model keeps each key's queued items, what is in flight, and the step at which each
    key became ready; ``pop_ready`` must serve the longest-ready key, and exactly when the
    contract says something may start.
    """

    def __init__(self) -> None:
        super().__init__()
        self.concurrency = 1
        self.scheduler = KeyedScheduler[Item, Key](1)
        self.queued: dict[Key, list[Item]] = {}
        self.in_flight: dict[Key, Item] = {}
        self.ready_since: dict[Key, int] = {}
        self.step = 0
        self.sequence = 0
        self.came_out: set[Item] = set()

    @initialize(concurrency=st.integers(1, 4))
    def start(self, concurrency: int) -> None:
        self.concurrency = concurrency
        self.scheduler = KeyedScheduler(concurrency)

    def _became_ready(self, key: Key) -> None:
        self.step += 1
        self.ready_since[key] = self.step

    @rule(key=keys)
    def push(self, key: Key) -> None:
        self.sequence += 1
        item = (key, self.sequence)
        self.scheduler.push(key, item)
        queue = self.queued.setdefault(key, [])
        queue.append(item)
        if len(queue) == 1 and key not in self.in_flight:
            self._became_ready(key)

    @rule()
    def pop_ready(self) -> None:
        popped = self.scheduler.pop_ready()
        if len(self.in_flight) >= self.concurrency or not self.ready_since:
            assert popped is None
            return
        expected = min(self.ready_since, key=self.ready_since.__getitem__)
        assert popped is not None
        key, item = popped
        assert key == expected, "keys are served in the order they became ready"
        assert item == self.queued[key][0], "a key's items come out in push order"
        assert item not in self.came_out
        self.came_out.add(item)
        del self.ready_since[key]
        self.queued[key].pop(0)
        if not self.queued[key]:
            del self.queued[key]
        self.in_flight[key] = item

    @precondition(lambda self: self.in_flight)
    @rule(data=st.data())
    def finish(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.in_flight)))
        self.scheduler.finish(key)
        del self.in_flight[key]
        if key in self.queued:
            self._became_ready(key)

    @rule(key=keys)
    def finish_not_in_flight(self, key: Key) -> None:
        if key in self.in_flight:
            return
        with pytest.raises(ValueError, match="nothing in flight"):
            self.scheduler.finish(key)
        with pytest.raises(ValueError, match="nothing in flight"):
            self.scheduler.forget(key)

    @rule(partition=st.integers(0, 2))
    def revoke(self, partition: int) -> None:
        """What the consumer does when ``partition`` is revoked: drop, then forget."""
        dropped = self.scheduler.drop(lambda key: key[0] == partition)
        revoked = [key for key in self.queued if key[0] == partition]
        assert len(dropped) == sum(len(self.queued[key]) for key in revoked)
        for key in revoked:
            assert [item for item in dropped if item[0] == key] == self.queued.pop(key)
            self.ready_since.pop(key, None)
        for key in self.scheduler.in_flight_keys():
            if key[0] == partition:
                assert self.scheduler.forget(key) == []
                del self.in_flight[key]

    @precondition(lambda self: self.in_flight)
    @rule(data=st.data())
    def forget_with_queue(self, data: st.DataObject) -> None:
        """``forget`` without ``drop`` first: the queued items come back, none is lost."""
        key = data.draw(st.sampled_from(sorted(self.in_flight)))
        assert self.scheduler.forget(key) == self.queued.pop(key, [])
        del self.in_flight[key]

    @invariant()
    def counts_match_the_model(self) -> None:
        assert self.scheduler.in_flight == len(self.in_flight) <= self.concurrency
        queued = sum(len(queue) for queue in self.queued.values())
        assert self.scheduler.buffered == queued + len(self.in_flight)
        assert set(self.scheduler.in_flight_keys()) == set(self.in_flight)


TestKeyedScheduler = KeyedSchedulerMachine.TestCase
TestKeyedScheduler.settings = settings(max_examples=150, stateful_step_count=50, deadline=None)


@given(
    concurrency=st.integers(1, 5),
    pushed_keys=st.lists(keys, max_size=60),
    data=st.data(),
)
def test_every_item_comes_out_once_in_key_order(
    concurrency: int, pushed_keys: list[Key], data: st.DataObject
) -> None:
    scheduler = KeyedScheduler[Item, Key](concurrency)
    items = [(key, sequence) for sequence, key in enumerate(pushed_keys)]
    for key, item in zip(pushed_keys, items, strict=True):
        scheduler.push(key, item)
    came_out: list[Item] = []
    in_flight: list[Key] = []
    while True:
        while (popped := scheduler.pop_ready()) is not None:
            key, item = popped
            assert key not in in_flight
            in_flight.append(key)
            came_out.append(item)
        assert len(in_flight) <= concurrency
        if not in_flight:
            break
        key = in_flight.pop(data.draw(st.integers(0, len(in_flight) - 1)))
        scheduler.finish(key)
    assert sorted(came_out) == sorted(items)
    for key in set(pushed_keys):
        of_key = [item for item in came_out if item[0] == key]
        assert of_key == sorted(of_key)
    assert scheduler.buffered == 0


def test_busy_key_does_not_starve_a_later_key() -> None:
    scheduler: KeyedScheduler[str] = KeyedScheduler(concurrency=1)
    for n in range(3):
        scheduler.push("busy", f"busy-{n}")
    scheduler.push("quiet", "quiet-0")
    assert scheduler.pop_ready() == ("busy", "busy-0")
    assert scheduler.pop_ready() is None  # concurrency 1: the slot is taken
    scheduler.finish("busy")
    assert scheduler.pop_ready() == ("quiet", "quiet-0")
    scheduler.finish("quiet")
    assert scheduler.pop_ready() == ("busy", "busy-1")


def test_one_key_waits_for_its_previous_item() -> None:
    scheduler: KeyedScheduler[int] = KeyedScheduler(concurrency=8)
    scheduler.push("user", 1)
    scheduler.push("user", 2)
    assert scheduler.pop_ready() == ("user", 1)
    assert scheduler.pop_ready() is None  # free slots, but 1 has not finished its retries
    scheduler.finish("user")
    assert scheduler.pop_ready() == ("user", 2)
    assert (scheduler.in_flight, scheduler.buffered) == (1, 1)


def test_revocation_leaves_other_keys_alone() -> None:
    scheduler = KeyedScheduler[str, Key](concurrency=2)
    for key, item in [((0, 1), "a1"), ((0, 1), "a2"), ((1, 1), "b1"), ((1, 2), "c1")]:
        scheduler.push(key, item)
    assert scheduler.pop_ready() == ((0, 1), "a1")
    assert scheduler.drop(lambda key: key[0] == 0) == ["a2"]
    assert scheduler.in_flight_keys() == [(0, 1)]
    assert scheduler.forget((0, 1)) == []
    assert (scheduler.in_flight, scheduler.buffered) == (0, 2)
    assert scheduler.pop_ready() == ((1, 1), "b1")
    assert scheduler.pop_ready() == ((1, 2), "c1")


def test_concurrency_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        KeyedScheduler[str](0)


@example(concurrency=2, pushed_keys=[(0, 1), (0, 1)])
@example(concurrency=3, pushed_keys=[(0, 1), (1, 1), (0, 1), (1, 1)])
@given(concurrency=st.integers(1, 5), pushed_keys=st.lists(keys, max_size=40))
def test_a_key_never_has_two_items_in_flight(concurrency: int, pushed_keys: list[Key]) -> None:
    scheduler = KeyedScheduler[Item, Key](concurrency)
    for sequence, key in enumerate(pushed_keys):
        scheduler.push(key, (key, sequence))
    started: list[Key] = []
    while (popped := scheduler.pop_ready()) is not None:
        started.append(popped[0])
    assert len(started) == len(set(started)) == min(concurrency, len(set(pushed_keys)))
