"""A local single-node Kafka for development, tests and CI: Docker if an engine answers, else
native from Maven Central's jars. ``python -m localkafka up|down|status|clean|run|wait``;
``python -m localkafka stack`` runs the whole system around it (``just up``)."""

from localkafka.broker import NativeBroker, kafka_version
from localkafka.exceptions import BrokerError, MissingPrerequisiteError
from localkafka.readiness import broker_answers, wait_until_ready

__all__ = [
    "BrokerError",
    "MissingPrerequisiteError",
    "NativeBroker",
    "broker_answers",
    "kafka_version",
    "wait_until_ready",
]
