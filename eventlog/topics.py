"""Creating the events (and dead-letter) topics, saying how an existing one differs, and
warning when a topic is less durable than its cluster allows."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AdminClient,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)

from eventlog.exceptions import TopicError

__all__ = [
    "RETENTION_24H_MS",
    "TopicSpec",
    "TopicState",
    "default_min_insync_replicas",
    "durability_warnings",
    "ensure_topic",
]

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
    max_message_bytes: int | None = None
    """Topic config ``max.message.bytes`` (largest record batch); the broker default when
    ``None``. Topics that carry events plus headers of ours need more than the events topic."""


@dataclass(frozen=True, slots=True)
class TopicState:
    """What ``ensure_topic`` found or made."""

    created: bool
    partitions: int
    retention_ms: int
    differences: tuple[str, ...]
    """Human-readable ways an existing topic differs from the spec (empty when it matches)."""
    replication_factor: int = 0
    """Replicas of its least replicated partition."""
    min_insync_replicas: int | None = None
    """Its ``min.insync.replicas`` (the broker default included); ``None`` if not reported."""
    brokers: int = 0
    """Brokers in the cluster when it was looked at."""
    warnings: tuple[str, ...] = ()
    """``durability_warnings`` for it (logged at WARNING too)."""
    max_message_bytes: int | None = None
    """Its ``max.message.bytes`` (the broker default included); ``None`` if not reported."""


def default_min_insync_replicas(replication_factor: int) -> int:
    """``min.insync.replicas`` when none is configured: one less than the replication factor,
    at least 1 and at most 2 (2 with the production factor of 3), so an acknowledged event
    survives the loss of a broker while one broker may be down without stopping writes. Ingest
    and the dispatcher both use it: whichever creates a topic first, it is as durable."""
    return max(1, min(2, replication_factor - 1))


def durability_warnings(
    *, replication_factor: int, min_insync_replicas: int | None, brokers: int
) -> tuple[str, ...]:
    """How a topic is less durable than its cluster allows, one sentence per problem.

    Its replication factor should reach the broker count, capped at 3 (more copies add cost,
    not much safety); with 3 or more replicas, ``min.insync.replicas`` should be at least 2, or
    an ``acks=all`` write is acknowledged by a single broker and lost with it.
    """
    warnings: list[str] = []
    wanted = min(brokers, 3)
    if replication_factor < wanted:
        warnings.append(
            f"replication factor {replication_factor} is below {wanted} with {brokers} brokers:"
            " losing one broker can lose acknowledged events; set KAFKA_REPLICATION_FACTOR"
            f" (or the manifest's kafka.replication_factor) to {wanted} for new topics, and"
            " reassign this topic's partitions (kafka-reassign-partitions)"
        )
    if replication_factor >= 3 and min_insync_replicas is not None and min_insync_replicas < 2:
        warnings.append(
            f"min.insync.replicas is {min_insync_replicas} with {replication_factor} replicas:"
            " acks=all is satisfied by one broker; set it to 2 (kafka-configs --alter"
            " --add-config min.insync.replicas=2)"
        )
    return tuple(warnings)


def ensure_topic(admin: AdminClient, spec: TopicSpec, *, timeout: float = 30.0) -> TopicState:
    """Create ``spec.name`` if missing; otherwise report (and log) how it differs from ``spec``.

    Either way, log a WARNING for each of its ``durability_warnings``.
    """
    configs = {"retention.ms": str(spec.retention_ms)}
    if spec.min_insync_replicas is not None:
        configs["min.insync.replicas"] = str(spec.min_insync_replicas)
    if spec.max_message_bytes is not None:
        configs["max.message.bytes"] = str(spec.max_message_bytes)
    new = NewTopic(
        spec.name,
        num_partitions=spec.partitions,
        replication_factor=spec.replication_factor,
        config=configs,
    )
    future = admin.create_topics([new], operation_timeout=timeout, request_timeout=timeout)
    created = True
    try:
        future[spec.name].result(timeout=timeout)
    except TimeoutError as exc:
        raise TopicError(f"Kafka did not answer within {timeout:g}s") from exc
    except KafkaException as exc:
        if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
            raise TopicError(f"cannot create topic {spec.name!r}: {exc.args[0].str()}") from exc
        created = False
    else:
        log.info(
            "topic created topic=%s partitions=%d retention_ms=%d replication_factor=%d",
            spec.name,
            spec.partitions,
            spec.retention_ms,
            spec.replication_factor,
        )
    found = _describe(admin, spec.name, timeout)
    differences = () if created else _differences(spec, found)
    for difference in differences:
        log.warning("topic differs from spec topic=%s: %s", spec.name, difference)
    warnings = durability_warnings(
        replication_factor=found.replication_factor,
        min_insync_replicas=found.min_insync_replicas,
        brokers=found.brokers,
    )
    for warning in warnings:
        log.warning("topic less durable than the cluster allows topic=%s: %s", spec.name, warning)
    return TopicState(
        created=created,
        partitions=found.partitions,
        retention_ms=found.retention_ms,
        differences=differences,
        replication_factor=found.replication_factor,
        min_insync_replicas=found.min_insync_replicas,
        brokers=found.brokers,
        warnings=warnings,
        max_message_bytes=found.max_message_bytes,
    )


@dataclass(frozen=True, slots=True)
class _Found:
    partitions: int
    replication_factor: int
    brokers: int
    retention_ms: int
    min_insync_replicas: int | None
    max_message_bytes: int | None


def _describe(admin: AdminClient, name: str, timeout: float) -> _Found:
    resource = ConfigResource(ResourceType.TOPIC, name)
    deadline = time.monotonic() + timeout
    while True:
        try:
            cluster = admin.list_topics(name, timeout=timeout)
            metadata = cluster.topics[name]
            if metadata.error is not None and metadata.error.name() == "UNKNOWN_TOPIC_OR_PART":
                raise KafkaException(metadata.error)
            entries = admin.describe_configs([resource])[resource].result(timeout=timeout)
        except KafkaException as exc:
            # A topic created a moment ago may not have reached every metadata cache yet.
            if exc.args[0].name() == "UNKNOWN_TOPIC_OR_PART" and time.monotonic() < deadline:
                time.sleep(0.1)
                continue
            raise TopicError(f"cannot describe topic {name!r}: {exc.args[0].str()}") from exc
        # Another process (or we) may have just created it: its partitions appear a moment later.
        if metadata.partitions or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    replicas = [len(partition.replicas) for partition in metadata.partitions.values()]
    return _Found(
        partitions=len(metadata.partitions),
        replication_factor=min(replicas, default=0),
        brokers=len(cluster.brokers),
        retention_ms=int(entries["retention.ms"].value),
        min_insync_replicas=_int_config(entries, "min.insync.replicas"),
        max_message_bytes=_int_config(entries, "max.message.bytes"),
    )


def _int_config(entries: dict[str, ConfigEntry], key: str) -> int | None:
    entry = entries.get(key)
    return int(entry.value) if entry is not None and entry.value is not None else None


def _differences(spec: TopicSpec, found: _Found) -> tuple[str, ...]:
    differences: list[str] = []
    if found.retention_ms != spec.retention_ms:
        differences.append(
            f"retention.ms is {found.retention_ms}, expected {spec.retention_ms}; change it"
            f" with kafka-configs --alter --add-config retention.ms={spec.retention_ms}"
        )
    if found.partitions != spec.partitions:
        differences.append(f"it has {found.partitions} partitions, expected {spec.partitions}")
    if found.replication_factor < spec.replication_factor:
        differences.append(
            f"its replication factor is {found.replication_factor}, expected"
            f" {spec.replication_factor}; raise it with kafka-reassign-partitions"
        )
    wanted_isr = spec.min_insync_replicas
    if wanted_isr is not None and found.min_insync_replicas != wanted_isr:
        differences.append(
            f"min.insync.replicas is {found.min_insync_replicas}, expected {wanted_isr}; change"
            f" it with kafka-configs --alter --add-config min.insync.replicas={wanted_isr}"
        )
    wanted_size = spec.max_message_bytes
    if wanted_size is not None and (found.max_message_bytes or 0) < wanted_size:
        differences.append(
            f"max.message.bytes is {found.max_message_bytes}, expected at least {wanted_size};"
            " larger records would be refused; change it with kafka-configs --alter"
            f" --add-config max.message.bytes={wanted_size}"
        )
    return tuple(differences)
