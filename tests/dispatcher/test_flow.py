"""Which partitions fetch: the buffer's bound with hysteresis, each partition's fair share,
the breaker and recovery, as pure decisions."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from dispatcher.flow import Backpressure, Shares, frees_fetching, paused_partitions

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


def test_a_finished_event_is_worth_a_turn_only_at_the_lower_edges() -> None:
    bound, shares = Backpressure(max_events=10, max_bytes=1000), Shares(max_events=16)
    assert bound.update(10, 100)
    frees = {"size": 100, "partition": 0, "held": 0, "partitions": 4}
    assert not frees_fetching(bound, shares, events=6, **frees)
    assert frees_fetching(bound, shares, events=5, **frees)
    assert not frees_fetching(bound, shares, events=5, **(frees | {"size": 501}))
    bound.update(5, 100)
    shares.update({1: 4}, ALL)  # partition 1 holds its share of four
    assert not frees_fetching(bound, shares, events=3, **(frees | {"partition": 1, "held": 3}))
    assert frees_fetching(bound, shares, events=2, **(frees | {"partition": 1, "held": 2}))
    assert frees_fetching(bound, shares, events=3, **(frees | {"partition": 2, "held": 0}))


counts = st.tuples(st.integers(0, 40), st.integers(0, 4000))


@given(
    max_events=st.integers(1, 32),
    max_bytes=st.integers(1, 2000),
    before=st.lists(counts, min_size=1, max_size=5),
    held=held_maps,
    assigned=assignments,
    partition=st.integers(0, 5),
    left=st.integers(0, 40),
    after=counts,
)
# The edges: a crowded partition at exactly half its share; a full buffer at exactly half.
@example(
    max_events=16, max_bytes=1000, before=[(0, 0)], held={1: 4}, assigned=ALL, partition=1,
    left=2, after=(2, 0),
)  # fmt: skip
@example(
    max_events=16, max_bytes=1000, before=[(16, 0)], held={1: 4}, assigned=ALL, partition=1,
    left=4, after=(8, 500),
)  # fmt: skip
def test_no_finished_event_that_could_resume_fetching_goes_unannounced(
    *,
    max_events: int,
    max_bytes: int,
    before: list[tuple[int, int]],
    held: dict[int, int],
    assigned: set[int],
    partition: int,
    left: int,
    after: tuple[int, int],
) -> None:
    """Whatever state the last turn left, if ``frees_fetching`` says no, the next turn would
    pause exactly what the last one paused."""
    bound, shares = Backpressure(max_events, max_bytes), Shares(max_events)
    for events, size in before:
        bound.update(events, size)
    crowded = shares.update(held, assigned)
    paused = decide(assigned=assigned, full=bound.full, crowded=crowded)
    # Since that turn some of the partition's events left (this one last).
    held_after = dict(held)
    held_after[partition] = min(left, held.get(partition, 0))
    events, size = after
    if frees_fetching(
        bound, shares, events=events, size=size, partition=partition,
        held=held_after[partition], partitions=len(assigned),
    ):  # fmt: skip
        return
    next_bound, next_shares = (
        Backpressure(max_events, max_bytes, bound.full),
        Shares(max_events, set(shares.crowded)),
    )
    full = next_bound.update(events, size)
    unchanged = {p: n for p, n in held.items() if p != partition}
    crowded_after = next_shares.update(unchanged | {partition: held_after[partition]}, assigned)
    assert decide(assigned=assigned, full=full, crowded=crowded_after) >= paused
