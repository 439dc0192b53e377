"""The event record on the Kafka topic: the one contract between ingest and dispatchers.

Format version 1 (header ``event-format: 1``):

- **key**: the ``user_id``, UTF-8. Producers partition it with murmur2 as Java clients do, so
  every event of a user is on one partition, in the order ingest accepted it.
- **value**: the ``payload``, UTF-8, exactly as the client sent it (no envelope, so the payload
  is never copied into JSON twice).
- **headers**: ``event-id`` (UTF-8; ingest's id or the client's Idempotency-Key),
  ``received-at-ms`` (ASCII decimal, milliseconds since the epoch when ingest received it),
  ``event-format`` (``1``), and W3C trace context (``traceparent``/``tracestate``) when tracing.

A dispatcher meeting a higher ``event-format`` refuses the record (``RecordFormatError``) rather
than guessing; a record without ``event-format`` is not ours.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec

from eventlog.exceptions import RecordFormatError

__all__ = ["FORMAT_VERSION", "Event", "Headers", "decode", "encode"]

FORMAT_VERSION = 1
HEADER_FORMAT = "event-format"
HEADER_ID = "event-id"
HEADER_RECEIVED_AT = "received-at-ms"

Headers = list[tuple[str, str | bytes | None]]
"""Record headers as confluent-kafka produces them."""
_FORMAT_BYTES = str(FORMAT_VERSION).encode()


class Event(msgspec.Struct, frozen=True, gc=False):
    """One user's event as ingest accepted it.

    A struct rather than a frozen dataclass: one is built for every event each destination
    fetches, and a frozen dataclass's ``__init__`` costs ten times as much. It holds only
    strings and an int, so the cycle collector need not track it (``gc=False``)."""

    id: str
    user_id: str
    payload: str
    received_at_ms: int


def encode(event: Event) -> tuple[bytes, bytes, Headers]:
    """Key, value and headers of ``event``'s Kafka record."""
    headers: Headers = [
        (HEADER_FORMAT, _FORMAT_BYTES),
        (HEADER_ID, event.id.encode()),
        (HEADER_RECEIVED_AT, str(event.received_at_ms).encode()),
    ]
    return event.user_id.encode(), event.payload.encode(), headers


def decode(
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, str | bytes | None]] | Mapping[str, str | bytes | None] | None,
) -> Event:
    """The event in a record read from the topic; ``RecordFormatError`` says why it is not one."""
    pairs = headers if type(headers) is list else _pairs(headers)
    version = event_id = received_at = None
    for name, raw in pairs:  # the last of a repeated header counts
        if raw is None:
            continue
        if name == HEADER_FORMAT:
            version = raw
        elif name == HEADER_ID:
            event_id = raw
        elif name == HEADER_RECEIVED_AT:
            received_at = raw
    if version is None:
        raise RecordFormatError(f"record has no {HEADER_FORMAT!r} header")
    if isinstance(version, str):
        version = version.encode()
    if version != _FORMAT_BYTES:
        raise RecordFormatError(
            f"record format {version.decode(errors='replace')!r} is not {FORMAT_VERSION}"
        )
    if key is None or value is None:
        raise RecordFormatError("record has no key (user_id) or no value (payload)")
    if event_id is None:
        raise RecordFormatError(f"record has no {HEADER_ID!r} header")
    if received_at is None:
        raise RecordFormatError(f"record has no {HEADER_RECEIVED_AT!r} header")
    try:
        return Event(
            event_id if isinstance(event_id, str) else event_id.decode(),
            key.decode(),
            value.decode(),
            _milliseconds(received_at.encode() if isinstance(received_at, str) else received_at),
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise RecordFormatError(f"record is not valid format {FORMAT_VERSION}: {exc}") from exc


def _pairs(
    headers: Sequence[tuple[str, str | bytes | None]] | Mapping[str, str | bytes | None] | None,
) -> Sequence[tuple[str, str | bytes | None]]:
    if headers is None:
        return ()
    return list(headers.items()) if isinstance(headers, Mapping) else headers


_MAX_MS_DIGITS = 15
"""Milliseconds since the epoch fit in 13 digits until the year 2286; more is not a time."""


def _milliseconds(raw: bytes) -> int:
    if not (raw.isdigit() and 0 < len(raw) <= _MAX_MS_DIGITS):  # bytes.isdigit is ASCII-only
        shown = raw[:20].decode("ascii", "replace") + ("..." if len(raw) > 20 else "")
        raise ValueError(f"{HEADER_RECEIVED_AT} {shown!r} is not milliseconds since the epoch")
    return int(raw)
