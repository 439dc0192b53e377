"""The park topic's record format and the dead letter's headers, without Kafka."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from dispatcher import park_records
from dispatcher.deadletter import DeadLetter
from dispatcher.park_records import (
    ReadEvent,
    ReadRelease,
    ReadReplayDone,
    ReadReplayRequest,
    ReadReplayResult,
    ReadRetry,
    Unknown,
    parse,
)
from eventlog.record import Headers

ORIGINAL: Headers = [("event-format", b"1"), ("event-id", b"e-1"), ("received-at-ms", b"5")]


def test_a_parked_event_keeps_its_record_and_says_where_it_came_from() -> None:
    headers = park_records.event_headers(ORIGINAL, source_offset=42, reason="down", now_ms=7)
    assert [name for name, _ in headers] == [
        "event-format", "event-id", "received-at-ms",
        "park-kind", "park-source-offset", "park-reason", "park-at-ms",
    ]  # fmt: skip
    read = parse(b"ann", b"payload", headers, 9)
    assert read == ReadEvent("ann", 42, b"ann", b"payload", ORIGINAL, "down", 9)


def test_markers_and_replay_records_round_trip() -> None:
    assert parse(b"ann", b"", park_records.release_headers(17)) == ReadRelease("ann", 17)
    assert parse(b"ann", b"", park_records.retry_headers(2, 99, "HTTP 500")) == ReadRetry(
        "ann", 2, 99
    )
    assert parse(b"", b"", park_records.replay_request_headers("r1")) == ReadReplayRequest(
        "r1", None
    )
    result = park_records.replay_result_headers("r1", replayed=3, released=True, error="")
    assert parse(b"ann", b"", result) == ReadReplayResult("r1", "ann", 3, True, "")
    assert parse(b"", b"", park_records.replay_done_headers("r1", 4)) == ReadReplayDone("r1", 4)


@given(
    key=st.none() | st.binary(max_size=20),
    headers=st.lists(
        st.tuples(
            st.sampled_from(["park-kind", "park-up-to", "park-source-offset", "park-request", "x"]),
            st.none() | st.binary(max_size=30),
        ),
        max_size=6,
    ),
)
def test_parsing_never_raises(key: bytes | None, headers: Headers) -> None:
    assert parse(key, b"v", headers) is not None


def test_an_absurd_number_is_a_malformed_record_not_an_error() -> None:
    read = parse(b"ann", b"", [("park-kind", b"release"), ("park-up-to", b"9" * 400)])
    assert isinstance(read, Unknown)


def test_a_dead_letter_adds_its_headers_after_the_original_ones() -> None:
    letter = DeadLetter(
        destination="hook", error="HTTP 422", attempts=1, permanent=True, topic="events",
        partition=3, offset=8, key=b"ann", value=b"v",
        headers=[*ORIGINAL, ("dead-letter-x", b"old")],
    )  # fmt: skip
    headers = letter.record_headers(now_ms=1234)
    assert [name for name, _ in headers] == [
        "event-format", "event-id", "received-at-ms",
        "dead-letter-destination", "dead-letter-error", "dead-letter-attempts",
        "dead-letter-permanent", "dead-letter-topic", "dead-letter-partition",
        "dead-letter-offset", "dead-letter-at-ms",
    ]  # fmt: skip
    assert dict(headers)["dead-letter-partition"] == b"3"
