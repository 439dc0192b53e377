"""Which reads of the in-flight gauge the benchmark's starvation goal judges."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from benchmarks.dispatch.runs import InFlight


def test_reads_count_only_while_enough_users_are_waiting() -> None:
    # 600 events of 10 users: 60 each; 4 slots need 240 undelivered to be sure of 4 users.
    reads = InFlight.for_load(4, events=600, users=10)
    reads.add(4.0, undelivered=600)
    reads.add(4.0, undelivered=240)
    reads.add(2.0, undelivered=239)  # the drain: fewer than 4 users may be left
    reads.add(0.0, undelivered=0)  # read after the last delivery
    assert reads.busy == [4.0, 4.0]
    assert reads.whole == [4.0, 4.0, 2.0, 0.0]


def test_a_read_a_process_did_not_answer_counts_nowhere() -> None:
    reads = InFlight.for_load(1, events=10, users=10)
    reads.add(None, undelivered=10)
    assert reads.busy == [] and reads.whole == []


def test_uneven_loads_round_the_events_per_user_up() -> None:
    assert InFlight.for_load(2, events=601, users=10).events_per_user == 61


@given(
    users=st.integers(1, 50),
    per_user=st.integers(1, 20),
    slots=st.integers(1, 60),
    delivered=st.lists(st.integers(0, 20), min_size=1, max_size=50),
)
def test_a_counted_read_had_at_least_slots_users_waiting(
    users: int, per_user: int, slots: int, delivered: list[int]
) -> None:
    """Whatever each user got through, a read counted means ``slots`` users had events left."""
    left = [max(0, per_user - (delivered[u % len(delivered)])) for u in range(users)]
    reads = InFlight.for_load(slots, events=users * per_user, users=users)
    reads.add(1.0, undelivered=sum(left))
    if reads.busy:
        assert sum(1 for n in left if n > 0) >= slots
