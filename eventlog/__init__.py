"""What ingest and dispatchers share: the event record format on Kafka, Kafka client settings,
topic administration and the project's root exception."""

from eventlog.exceptions import EventDeliveryError, RecordFormatError, TopicError
from eventlog.record import Event

__all__ = ["Event", "EventDeliveryError", "RecordFormatError", "TopicError"]
