"""Span and metric attribute names, in one place.

Messaging names follow OpenTelemetry's messaging semantic conventions as of 1.27-1.44 (1.45
renames several; change them here only). ``delivery.*`` names are this project's own.
"""

from __future__ import annotations

MESSAGING_SYSTEM = "messaging.system"
MESSAGING_DESTINATION = "messaging.destination.name"
MESSAGING_OPERATION_TYPE = "messaging.operation.type"
MESSAGING_OPERATION_NAME = "messaging.operation.name"
MESSAGING_PARTITION = "messaging.destination.partition.id"
MESSAGING_MESSAGE_ID = "messaging.message.id"
MESSAGING_KAFKA_KEY = "messaging.kafka.message.key"
MESSAGING_KAFKA_OFFSET = "messaging.kafka.offset"
MESSAGING_CONSUMER_GROUP = "messaging.consumer.group.name"
HTTP_RESPONSE_STATUS = "http.response.status_code"
ERROR_TYPE = "error.type"

KAFKA = "kafka"

DELIVERY_DESTINATION = "delivery.destination"
DELIVERY_ATTEMPT = "delivery.attempt"
DELIVERY_OUTCOME = "delivery.outcome"
DELIVERY_ERROR = "delivery.error"
DELIVERY_NEXT_BACKOFF = "delivery.next_backoff_s"
DELIVERY_ATTEMPTS = "delivery.attempts"
