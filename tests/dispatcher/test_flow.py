"""Which partitions fetch: the buffer's bound with hysteresis, each partition's fair share,
the breaker and recovery, as pure decisions."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from dispatcher.flow import Backpressure, Shares, paused_partitions

ALL = {0, 1, 2, 3}


def decide(**overrides: object) -> set[int]:
    arguments: dict[str, object] = {
        "assigned": ALL, "full": False, "crowded": set(), "breaker_holds": False,
        "buffered_in": set(), "recovering": set(),
    }  # fmt: skip
    arguments.update(overrides)
    return paused_partitions(**arguments)  # type: ignore[arg-type]


def test_a_full_buffer_pauses_every_partition_until_half_of_both_bounds() -> None:
    bound = Backpressure(max_events=10, max_bytes=1000)
    assert not bound.update(9, 999)
    assert bound.update(10, 0)
    assert bound.update(6, 0)  # still above half
    assert bound.update(5, 501)  # events at half, bytes not yet
    assert not bound.update(5, 500)
    assert bound.update(0, 1000)  # the byte bound alone


def test_a_partition_holding_its_share_pauses_until_half_of_it() -> None:
    shares = Shares(max_events=16)  # four partitions: four events each
    assert shares.update({0: 3, 1: 4}, ALL) == {1}
    assert shares.update({0: 3, 1: 3}, ALL) == {1}  # above half: still crowded
    assert shares.update({0: 3, 1: 2}, ALL) == set()
    assert shares.update({0: 8}, {0, 1}) == {0}  # two partitions: eight each
    assert shares.update({0: 8}, {1}) == set()  # no longer assigned


def test_each_reason_pauses_only_its_partitions() -> None:
    assert decide(full=True, recovering={1}) == ALL
    assert decide(crowded={0}, recovering={2}) == {0, 2}
    assert decide(breaker_holds=True, buffered_in={1, 3}) == {1, 3}
    assert decide(breaker_holds=False, buffered_in={1, 3}) == set()
    assert decide(crowded={7}, recovering={8}) == set()  # not assigned: nothing to pause


held_maps = st.dictionaries(st.integers(0, 5), st.integers(0, 40), max_size=6)
assignments = st.sets(st.integers(0, 5), max_size=6)


@given(max_events=st.integers(1, 64), steps=st.lists(st.tuples(held_maps, assignments)))
def test_no_partition_fetches_while_holding_its_share(
    max_events: int, steps: list[tuple[dict[int, int], set[int]]]
) -> None:
    shares = Shares(max_events)
    for held, assigned in steps:
        crowded = shares.update(held, assigned)
        share = shares.share(len(assigned))
        assert crowded <= assigned
        fetching = assigned - decide(assigned=assigned, crowded=crowded)
        assert all(held.get(p, 0) < share for p in fetching)
        assert all(held.get(p, 0) > 0 for p in crowded)  # an empty partition always fetches
