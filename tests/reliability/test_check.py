"""The verdict of a scenario: lost, duplicated, out of order, from 202s and deliveries."""

from __future__ import annotations

import pytest

from reliability.check import Accepted, Delivery, judge, longest_gap

DESTINATIONS = ("a", "b")


def accepted(user: str, *seqs: int) -> list[Accepted]:
    return [Accepted(f"{user}-{s}", user, s) for s in seqs]


def got(destination: str, user: str, *seqs: int) -> list[Delivery]:
    return [Delivery(destination, f"{user}-{s}", user, s) for s in seqs]


def test_everything_delivered_once_in_order_passes() -> None:
    verdict = judge(
        accepted("u", 0, 1, 2), got("a", "u", 0, 1, 2) + got("b", "u", 0, 1, 2), DESTINATIONS
    )
    assert (verdict.accepted, verdict.delivered, verdict.lost) == (3, 3, 0)
    assert (verdict.duplicated, verdict.order_violations) == (0, 0)
    assert verdict.passed


def test_an_accepted_event_missing_at_one_destination_is_lost() -> None:
    verdict = judge(
        accepted("u", 0, 1, 2), got("a", "u", 0, 1, 2) + got("b", "u", 0, 2), DESTINATIONS
    )
    assert verdict.lost == 1
    assert verdict.missing == ("u-1",)
    assert verdict.delivered == 2
    assert not verdict.passed


def test_a_destination_that_got_nothing_loses_everything() -> None:
    verdict = judge(accepted("u", 0, 1), got("a", "u", 0, 1), DESTINATIONS)
    assert verdict.lost == 2


def test_a_prefix_delivered_again_after_a_crash_is_duplicates_not_disorder() -> None:
    deliveries = got("a", "u", 0, 1, 2, 1, 2, 3) + got("b", "u", 0, 1, 2, 3)
    verdict = judge(accepted("u", 0, 1, 2, 3), deliveries, DESTINATIONS)
    assert verdict.duplicated == 2
    assert verdict.order_violations == 0
    assert verdict.passed


def test_an_event_arriving_first_after_a_later_one_of_its_user_is_a_violation() -> None:
    deliveries = (
        got("a", "u", 0, 2, 1) + got("b", "u", 0, 1, 2) + got("a", "v", 0) + got("b", "v", 0)
    )
    verdict = judge(accepted("u", 0, 1, 2) + accepted("v", 0), deliveries, DESTINATIONS)
    assert verdict.order_violations == 1
    assert verdict.lost == 0
    assert not verdict.passed


def test_users_are_ordered_each_on_its_own() -> None:
    deliveries = got("a", "u", 5) + got("a", "v", 0) + got("b", "v", 0) + got("b", "u", 5)
    verdict = judge(accepted("u", 5) + accepted("v", 0), deliveries, DESTINATIONS)
    assert verdict.order_violations == 0


def test_events_stored_without_a_202_are_counted_apart_and_never_lost() -> None:
    # Seq 1 was answered 503 but stored anyway; seq 2 was answered 503 and never stored.
    deliveries = got("a", "u", 0, 1, 3) + got("b", "u", 0, 1, 3)
    verdict = judge(accepted("u", 0, 3), deliveries, DESTINATIONS)
    assert verdict.unacknowledged == 1
    assert (verdict.lost, verdict.accepted, verdict.order_violations) == (0, 2, 0)


@pytest.mark.parametrize(
    ("acks", "expected"),
    [
        ([], 10.0),
        ([1.0, 2.0, 3.0, 9.5], 6.5),
        ([4.0], 6.0),
        ([-5.0, 0.5, 20.0], 9.5),  # outside the window: not counted
    ],
)
def test_longest_gap_without_a_202(acks: list[float], expected: float) -> None:
    assert longest_gap(acks, start=0.0, end=10.0) == pytest.approx(expected)
