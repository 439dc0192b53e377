"""Errors of the ingest service. HTTP handlers turn each into a problem-details response in one
place (``ingest.problems``)."""

from __future__ import annotations

from dataclasses import dataclass

from eventlog.exceptions import EventDeliveryError

__all__ = [
    "FieldError",
    "IngestError",
    "InvalidRequest",
    "RateLimited",
    "Refused",
    "SettingsError",
    "Unauthorized",
    "Unavailable",
    "UnsupportedMediaType",
]


class IngestError(EventDeliveryError):
    """Root of the ingest service's errors."""


class SettingsError(IngestError):
    """The settings contradict each other or a limit; the message says which and why."""


@dataclass(frozen=True, slots=True)
class FieldError:
    """One thing wrong with a request body, and where."""

    detail: str
    """What is wrong, e.g. ``must be a string, got number``."""
    field: str | None = None
    """The offending field, or ``None`` when the problem is the value as a whole."""
    index: int | None = None
    """Position of the offending event in a batch; ``None`` for a single event."""

    @property
    def pointer(self) -> str:
        """JSON pointer (as a URI fragment, like RFC 9457's examples) to the offending value."""
        parts = [str(p) for p in (self.index, self.field) if p is not None]
        return "#/" + "/".join(parts) if parts else "#"


class InvalidRequest(IngestError):
    """The client sent something ingest will not write; nothing reached Kafka.

    ``kind`` names the problem type (``malformed-json``, ``invalid-event``, ``invalid-batch``);
    ``errors`` lists every offending field found, not just the first.
    """

    def __init__(self, kind: str, detail: str, errors: tuple[FieldError, ...] = ()) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.errors = errors


class UnsupportedMediaType(IngestError):
    """The request body is not declared as ``application/json``."""


class Unavailable(IngestError):
    """Ingest cannot accept the event now (Kafka unreachable or slow, or ingest saturated or
    stopping); the client should retry after ``retry_after`` seconds. Nothing was acknowledged,
    though a record may still reach Kafka late: clients retry with the same Idempotency-Key."""

    def __init__(self, detail: str, *, reason: str, retry_after: int) -> None:
        super().__init__(detail)
        self.detail = detail
        self.reason = reason
        self.retry_after = retry_after


class Refused(IngestError):
    """Kafka refused the event for good: sending the same request again cannot help.

    ``kind`` is ``event-too-large`` (413: the record is over the topic's
    ``max.message.bytes``) or ``kafka-refused`` (500: e.g. ingest may not write to the topic);
    ``detail`` names Kafka's cause.
    """

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


class Unauthorized(IngestError):
    """The request carries no API key, or one that is not in the key file (401)."""


class RateLimited(IngestError):
    """The request's API key used up its rate limit; nothing was read or written (429)."""

    def __init__(self, key: str, *, retry_after: int) -> None:
        super().__init__(f"API key {key!r} is over its rate limit; retry after {retry_after} s")
        self.key = key
        self.retry_after = retry_after
