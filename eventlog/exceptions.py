"""The project's root exception and the errors of the shared event-log layer."""

from __future__ import annotations

__all__ = ["EventDeliveryError", "RecordFormatError", "TopicError"]


class EventDeliveryError(Exception):
    """Root of every error this project raises on purpose (ingest and dispatcher included)."""


class RecordFormatError(EventDeliveryError):
    """A Kafka record is not an event in a format this version understands."""


class TopicError(EventDeliveryError):
    """A topic could not be created or inspected."""
