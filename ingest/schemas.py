"""Response bodies of the ingest API (request bodies are in ``ingest.validation``), as msgspec
structs so Litestar serialises them fast and documents them in the OpenAPI schema."""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = ["Accepted", "BatchAccepted", "BatchItemResult", "Health", "Problem", "ProblemField"]


class Accepted(msgspec.Struct, frozen=True):
    """Kafka acknowledged the event (``acks=all``) at this position."""

    id: str
    """The event's id: the ``Idempotency-Key`` sent, or a new UUID."""
    partition: int
    offset: int


class BatchItemResult(msgspec.Struct, frozen=True, omit_defaults=True):
    """What became of one event of a batch, at the same index as in the request."""

    index: int
    id: str
    status: Literal["accepted", "failed"]
    partition: int | None = None
    """Set when accepted."""
    offset: int | None = None
    """Set when accepted."""
    error: str | None = None
    """Set when failed: Kafka did not acknowledge this event; sending it again is safe."""


class BatchAccepted(msgspec.Struct, frozen=True):
    """Per-event results of a batch; at least one event was acknowledged."""

    accepted: int
    failed: int
    results: list[BatchItemResult]


class Health(msgspec.Struct, frozen=True, omit_defaults=True):
    """Answer of ``/healthz`` and ``/readyz``."""

    status: Literal["ok", "ready", "not ready", "failed"]
    reason: str | None = None


class ProblemField(msgspec.Struct, frozen=True, omit_defaults=True):
    """One offending value in a request."""

    detail: str
    pointer: str
    """JSON pointer to the value as a URI fragment, e.g. ``#/3/user_id``."""
    field: str | None = None
    """The field name (or header name), when the problem is one field."""
    index: int | None = None
    """Position in the batch, for batch items."""


class Problem(msgspec.Struct, frozen=True, omit_defaults=True):
    """An RFC 9457 problem-details body (``application/problem+json``)."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[ProblemField] | None = None
    """Every offending field found, for validation problems."""
    reason: str | None = None
    """For 503: ``busy``, ``kafka-timeout``, ``kafka-error`` or ``stopping``."""
