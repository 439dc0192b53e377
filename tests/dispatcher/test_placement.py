"""Where a partition without a usable committed offset starts: never past an event that is
still retained and unfinished, and a brand-new group only where ``start_from`` says."""

from __future__ import annotations

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END
from hypothesis import given
from hypothesis import strategies as st

from dispatcher.placement import decide_start


def test_a_brand_new_group_starts_where_start_from_says() -> None:
    for start_from, offset in (("earliest", OFFSET_BEGINNING), ("latest", OFFSET_END)):
        start = decide_start(committed=None, fetched=None, low=5, high=9, start_from=start_from)  # type: ignore[arg-type]
        assert (start.offset, start.why, start.lost) == (offset, "new group", 0)


def test_a_committed_offset_deleted_by_retention_counts_what_was_lost() -> None:
    start = decide_start(committed=3, fetched=None, low=10, high=20, start_from="latest")
    assert (start.offset, start.why, start.lost) == (OFFSET_BEGINNING, "lost to retention", 7)


def test_what_was_fetched_under_this_assignment_counts_as_the_position() -> None:
    start = decide_start(committed=3, fetched=8, low=10, high=20, start_from="earliest")
    assert start.lost == 2


def test_a_position_still_retained_is_resumed_where_it_is() -> None:
    start = decide_start(committed=12, fetched=None, low=10, high=20, start_from="earliest")
    assert (start.offset, start.why, start.lost) == (12, "still retained", 0)


def test_an_offset_beyond_the_end_means_the_topic_was_created_again() -> None:
    start = decide_start(committed=50, fetched=None, low=0, high=4, start_from="latest")
    assert (start.offset, start.why, start.lost) == (OFFSET_BEGINNING, "beyond the end", 0)


@given(
    committed=st.none() | st.integers(0, 100),
    fetched=st.none() | st.integers(0, 100),
    low=st.integers(0, 100),
    span=st.integers(0, 100),
    start_from=st.sampled_from(["earliest", "latest"]),
)
def test_a_group_that_ever_read_never_skips_a_retained_event(
    committed: int | None, fetched: int | None, low: int, span: int, start_from: str
) -> None:
    start = decide_start(
        committed=committed, fetched=fetched, low=low, high=low + span,
        start_from=start_from,  # type: ignore[arg-type]
    )  # fmt: skip
    if committed is None and fetched is None:
        assert start.why == "new group"
        return
    position = max(committed or 0, fetched or 0)
    if low <= position <= low + span:
        assert (start.offset, start.lost) == (position, 0)  # nothing retained is skipped
    else:
        assert start.offset == OFFSET_BEGINNING  # every retained event is read
        assert start.lost == (low - position if position < low else 0)
