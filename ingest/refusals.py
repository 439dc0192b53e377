"""Which of Kafka's refusals of a record are worth retrying: a pure decision on librdkafka's
error name.

librdkafka's own ``retriable()`` flag is no guide here: a delivery that timed out because the
brokers are away is "not retriable" to it (``_MSG_TIMED_OUT``), yet the client should simply
send the event again later. So only refusals that no retry can change are named; everything
else stays "retry later" (503 with ``Retry-After``).
"""

from __future__ import annotations

import enum

__all__ = ["Disposition", "disposition"]


class Disposition(enum.Enum):
    """What a client should be told about a record Kafka did not store."""

    RETRY_LATER = "retry-later"
    """503 with ``Retry-After``: the cluster may accept the same record in a moment."""
    TOO_LARGE = "too-large"
    """413: the record is larger than the topic takes; the client must send less."""
    REFUSED = "refused"
    """500: the cluster refuses every such write (permissions, configuration) until an
    operator changes it; retrying the same request cannot help."""


_TOO_LARGE = frozenset({"MSG_SIZE_TOO_LARGE", "RECORD_LIST_TOO_LARGE"})
_REFUSED = frozenset(
    {
        "TOPIC_AUTHORIZATION_FAILED",
        "CLUSTER_AUTHORIZATION_FAILED",
        "INVALID_RECORD",
        "CORRUPT_MESSAGE",
        "INVALID_REQUIRED_ACKS",
        "POLICY_VIOLATION",
        "UNSUPPORTED_VERSION",
        "UNSUPPORTED_COMPRESSION_TYPE",
        "UNSUPPORTED_FOR_MESSAGE_FORMAT",
        "_INVALID_ARG",
    }
)


def disposition(code: str) -> Disposition:
    """How to answer a record refused with librdkafka's error ``code`` (``KafkaError.name()``)."""
    if code in _TOO_LARGE:
        return Disposition.TOO_LARGE
    if code in _REFUSED:
        return Disposition.REFUSED
    return Disposition.RETRY_LATER
