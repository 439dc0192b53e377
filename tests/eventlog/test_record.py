from __future__ import annotations

import pytest

from eventlog.exceptions import RecordFormatError
from eventlog.record import Event, decode, encode


def test_an_encoded_event_decodes_to_itself() -> None:
    event = Event(id="e-1", user_id="user-ü", payload='{"a": "ß"}', received_at_ms=1_700_000)
    key, value, headers = encode(event)
    assert key == "user-ü".encode()
    assert value == '{"a": "ß"}'.encode()
    assert decode(key, value, [*headers, ("traceparent", b"00-abc")]) == event


def test_a_newer_format_is_refused_not_guessed() -> None:
    key, value, headers = encode(Event("e", "u", "p", 1))
    newer = [(n, b"2" if n == "event-format" else v) for n, v in headers]
    with pytest.raises(RecordFormatError, match="format '2'"):
        decode(key, value, newer)


@pytest.mark.parametrize("missing", ["event-format", "event-id", "received-at-ms"])
def test_a_record_missing_a_header_is_refused(missing: str) -> None:
    key, value, headers = encode(Event("e", "u", "p", 1))
    with pytest.raises(RecordFormatError, match=missing):
        decode(key, value, [(n, v) for n, v in headers if n != missing])


def test_a_record_without_key_is_refused() -> None:
    _, value, headers = encode(Event("e", "u", "p", 1))
    with pytest.raises(RecordFormatError, match="no key"):
        decode(None, value, headers)
