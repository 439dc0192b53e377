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
from dataclasses import dataclass

from eventlog.exceptions import RecordFormatError

__all__ = ["FORMAT_VERSION", "Event", "Headers", "decode", "encode"]

FORMAT_VERSION = 1
HEADER_FORMAT = "event-format"
HEADER_ID = "event-id"
HEADER_RECEIVED_AT = "received-at-ms"

Headers = list[tuple[str, str | bytes | None]]
"""Record headers as confluent-kafka produces them."""
_FORMAT_BYTES = str(FORMAT_VERSION).encode()


@dataclass(frozen=True, slots=True)
class Event:
    """One user's event as ingest accepted it."""

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
    pairs = headers.items() if isinstance(headers, Mapping) else headers or ()
    found: dict[str, bytes] = {}
    for name, raw in pairs:
        if name in (HEADER_FORMAT, HEADER_ID, HEADER_RECEIVED_AT) and raw is not None:
            found[name] = raw.encode() if isinstance(raw, str) else raw
    version = found.get(HEADER_FORMAT)
    if version is None:
        raise RecordFormatError(f"record has no {HEADER_FORMAT!r} header")
    if version != _FORMAT_BYTES:
        raise RecordFormatError(
            f"record format {version.decode(errors='replace')!r} is not {FORMAT_VERSION}"
        )
    if key is None or value is None:
        raise RecordFormatError("record has no key (user_id) or no value (payload)")
    try:
        return Event(
            id=found[HEADER_ID].decode(),
            user_id=key.decode(),
            payload=value.decode(),
            received_at_ms=_milliseconds(found[HEADER_RECEIVED_AT]),
        )
    except KeyError as exc:
        raise RecordFormatError(f"record has no {exc.args[0]!r} header") from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise RecordFormatError(f"record is not valid format {FORMAT_VERSION}: {exc}") from exc


_MAX_MS_DIGITS = 15
"""Milliseconds since the epoch fit in 13 digits until the year 2286; more is not a time."""


def _milliseconds(raw: bytes) -> int:
    if not (raw.isdigit() and 0 < len(raw) <= _MAX_MS_DIGITS):  # bytes.isdigit is ASCII-only
        shown = raw[:20].decode("ascii", "replace") + ("..." if len(raw) > 20 else "")
        raise ValueError(f"{HEADER_RECEIVED_AT} {shown!r} is not milliseconds since the epoch")
    return int(raw)
