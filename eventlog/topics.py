"""Creating the events (and dead-letter) topics and saying how an existing one differs."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

from eventlog.exceptions import TopicError

__all__ = ["RETENTION_24H_MS", "TopicSpec", "TopicState", "ensure_topic"]

log = logging.getLogger(__name__)

RETENTION_24H_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """What a topic should look like.

    Production clusters use ``replication_factor=3`` with ``min_insync_replicas=2`` so an
    ``acks=all`` write survives the loss of any one broker; a local single broker uses 1.
    """

    name: str
    """Topic name."""
    partitions: int = 12
    """Partition count: the upper bound on consumers sharing one destination's work."""
    replication_factor: int = 1
    """Copies of each partition."""
    retention_ms: int = RETENTION_24H_MS
    """How long events are kept (topic config ``retention.ms``)."""
    min_insync_replicas: int | None = None
    """Topic config ``min.insync.replicas``; the broker default when ``None``."""


@dataclass(frozen=True, slots=True)
class TopicState:
    """What ``ensure_topic`` found or made."""

    created: bool
    partitions: int
    retention_ms: int
    differences: tuple[str, ...]
    """Human-readable ways an existing topic differs from the spec (empty when it matches)."""


def ensure_topic(admin: AdminClient, spec: TopicSpec, *, timeout: float = 30.0) -> TopicState:
    """Create ``spec.name`` if missing; otherwise report (and log) how it differs from ``spec``."""
    configs = {"retention.ms": str(spec.retention_ms)}
    if spec.min_insync_replicas is not None:
        configs["min.insync.replicas"] = str(spec.min_insync_replicas)
    new = NewTopic(
        spec.name,
        num_partitions=spec.partitions,
        replication_factor=spec.replication_factor,
        config=configs,
    )
    future = admin.create_topics([new], operation_timeout=timeout, request_timeout=timeout)
    try:
        future[spec.name].result(timeout=timeout)
    except TimeoutError as exc:
        raise TopicError(f"Kafka did not answer within {timeout:g}s") from exc
    except KafkaException as exc:
        if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
            raise TopicError(f"cannot create topic {spec.name!r}: {exc.args[0].str()}") from exc
    else:
        log.info(
            "topic created topic=%s partitions=%d retention_ms=%d",
            spec.name,
            spec.partitions,
            spec.retention_ms,
        )
        return TopicState(True, spec.partitions, spec.retention_ms, ())
    return _compare(admin, spec, timeout)


def _compare(admin: AdminClient, spec: TopicSpec, timeout: float) -> TopicState:
    resource = ConfigResource(ResourceType.TOPIC, spec.name)
    deadline = time.monotonic() + timeout
    while True:
        try:
            metadata = admin.list_topics(spec.name, timeout=timeout).topics[spec.name]
            entries = admin.describe_configs([resource])[resource].result(timeout=timeout)
        except KafkaException as exc:
            # A topic created a moment ago may not have reached every metadata cache yet.
            if exc.args[0].name() == "UNKNOWN_TOPIC_OR_PART" and time.monotonic() < deadline:
                time.sleep(0.1)
                continue
            raise TopicError(f"cannot describe topic {spec.name!r}: {exc.args[0].str()}") from exc
        # Another process may have just created it: its partitions appear a moment later.
        if metadata.partitions or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    partitions = len(metadata.partitions)
    retention = int(entries["retention.ms"].value)
    differences: list[str] = []
    if retention != spec.retention_ms:
        differences.append(
            f"retention.ms is {retention}, expected {spec.retention_ms}; "
            f"change it with kafka-configs --alter --add-config retention.ms={spec.retention_ms}"
        )
    if partitions != spec.partitions:
        differences.append(f"it has {partitions} partitions, expected {spec.partitions}")
    for difference in differences:
        log.warning("topic differs from spec topic=%s: %s", spec.name, difference)
    return TopicState(False, partitions, retention, tuple(differences))
