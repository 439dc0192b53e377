"""What a worker delivers: a record fetched from the events topic, or replayed from the park.

Turning a Kafka message into a ``Job`` never raises: a record this version cannot read becomes
a job without an event, carrying why, and goes to the dead letters like any refused event.
"""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Message
from opentelemetry.trace import SpanContext

from dispatcher.parking import ParkedEvent
from eventlog.exceptions import RecordFormatError
from eventlog.record import Event, Headers, decode

__all__ = ["Job", "job_from_message", "job_from_parked"]

_OVERHEAD = 200
"""Bytes a buffered job costs beyond its key, value and headers (objects, bookkeeping)."""


@dataclass(slots=True)
class Job:
    """One event on its way to one destination."""

    partition: int
    offset: int
    """Its offset on the events topic."""
    epoch: int
    """The assignment of ``partition`` it was fetched under (stale once revoked)."""
    key: bytes | None
    value: bytes | None
    headers: Headers
    timestamp_ms: int
    """The record's timestamp (ingest's CreateTime), 0 when the record has none."""
    event: Event | None
    """``None`` when the record could not be decoded: it goes straight to the dead letters."""
    decode_error: str | None = None
    park_offset: int | None = None
    """Where it sits in the park, for a replayed job; ``None`` for a live one."""
    trace: SpanContext | None = None
    """The event's (sampled) processing span, parent of its commit span."""
    size: int = 0
    user: str | None = None
    """The event's user; ``None`` when it could not be decoded."""
    replay: bool = False
    """Whether it is a replayed event (``park_offset`` is set).

    ``user`` and ``replay`` repeat ``event`` and ``park_offset`` as fields (read several times
    on every event's way, where a property would be a call each time): build jobs with
    ``job_from_message`` and ``job_from_parked``, which keep them in agreement."""


def job_from_message(message: Message, epoch: int) -> Job:
    """The job for a message fetched from the events topic (not an error message)."""
    partition, offset = message.partition(), message.offset()
    assert partition is not None and offset is not None
    raw_headers = message.headers()  # the message's own list of pairs (never changed), or None
    headers: Headers
    if type(raw_headers) is list:
        headers = raw_headers
    else:
        headers = list(raw_headers.items() if isinstance(raw_headers, dict) else raw_headers or [])
    kind, stamp = message.timestamp()
    job = Job(
        partition, offset, epoch, message.key(), message.value(), headers,
        stamp if kind != TIMESTAMP_NOT_AVAILABLE and stamp > 0 else 0, event=None,
    )  # fmt: skip
    return _decoded(job)


def job_from_parked(partition: int, parked: ParkedEvent, epoch: int) -> Job:
    """The job replaying a parked event."""
    job = Job(
        partition, parked.source_offset, epoch, parked.key, parked.value, parked.headers,
        parked.timestamp_ms, event=None, park_offset=parked.park_offset, replay=True,
    )  # fmt: skip
    return _decoded(job)


def _decoded(job: Job) -> Job:
    try:
        job.event = event = decode(job.key, job.value, job.headers)
    except RecordFormatError as exc:
        job.decode_error = str(exc)
    else:
        job.user = event.user_id
    size = _OVERHEAD + len(job.key or b"") + len(job.value or b"")
    for name, value in job.headers:
        size += len(name) + len(value or b"")
    job.size = size
    return job
