"""Kafka client settings shared by ingest and dispatchers, in one place.

Values are librdkafka configuration properties; callers add their own overrides. ``security``
(``eventlog.kafka_security``: TLS and SASL settings of the cluster) is merged into each. ``logger``
(see ``eventlog.kafka_logs``) routes librdkafka's own log lines through Python logging instead
of raw lines on stderr; they are then served from the client's ``poll()``/``consume()``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Literal

__all__ = ["admin_config", "consumer_config", "producer_config"]

ClientConfig = dict[str, Any]


def producer_config(
    bootstrap_servers: str,
    *,
    security: Mapping[str, str] | None = None,
    logger: logging.Logger | None = None,
    **overrides: Any,
) -> ClientConfig:
    """An idempotent producer that places keys exactly as Java clients do."""
    config: ClientConfig = {
        "bootstrap.servers": bootstrap_servers,
        # Idempotence implies acks=all, bounded in-flight requests and safe retries; acks is
        # spelled out so nobody has to know that.
        "enable.idempotence": True,
        "acks": "all",
        # librdkafka's default (consistent_random, CRC32) disagrees with the Java clients.
        "partitioner": "murmur2_random",
        # A short linger still batches concurrent requests without adding visible latency
        # to a lone request.
        "linger.ms": 2,
        "compression.type": "lz4",
        # Bound how long an event may wait to be acknowledged before the producer gives up.
        "delivery.timeout.ms": 30_000,
        "log_level": 3,
    }
    return _finish(config, security, logger, overrides)


def consumer_config(
    bootstrap_servers: str,
    group_id: str,
    *,
    start_from: Literal["earliest", "latest"] = "earliest",
    security: Mapping[str, str] | None = None,
    logger: logging.Logger | None = None,
    **overrides: Any,
) -> ClientConfig:
    """A consumer that commits only what the caller says is done, sized to share a process."""
    config: ClientConfig = {
        "bootstrap.servers": bootstrap_servers,
        "group.id": group_id,
        "auto.offset.reset": start_from,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "partition.assignment.strategy": "cooperative-sticky",
        # A crashed dispatcher's partitions move to the survivors after this long (the
        # default, 45 s, is a long time for a destination to receive nothing).
        "session.timeout.ms": 10_000,
        "heartbeat.interval.ms": 2_000,
        # librdkafka pre-fetches up to 64 MiB per consumer by default; a process hosting
        # hundreds of destinations needs far less each.
        "queued.max.messages.kbytes": 2048,
        "fetch.max.bytes": 1_048_576,
        # Small per-partition chunks mix many partitions (so many users) into a destination's
        # buffer; big ones fill it with a few partitions' users and starve its concurrency.
        "max.partition.fetch.bytes": 65_536,
        # The broker answers a fetch as soon as data arrives, so a lone event is not held up
        # either way; but a partition resumed after a pause is fetched again only once the
        # fetch in flight returns, and when everything fetchable was read to the end of the
        # log that fetch is a long poll held for all of this (its offset validation after
        # the seek waits behind it too). What a resumed partition still holds must last that
        # long: see docs/processes.md, "What starves the pipeline". Idle, a consumer asks
        # ten times a second, which is what a process of hundreds of destinations pays.
        "fetch.wait.max.ms": 100,
        # After a pause/resume, fetch again soon (librdkafka's default waits a second).
        "fetch.queue.backoff.ms": 50,
        "log_level": 3,
    }
    return _finish(config, security, logger, overrides)


def admin_config(
    bootstrap_servers: str,
    *,
    security: Mapping[str, str] | None = None,
    logger: logging.Logger | None = None,
    **overrides: Any,
) -> ClientConfig:
    """An admin client's settings."""
    config: ClientConfig = {"bootstrap.servers": bootstrap_servers, "log_level": 3}
    return _finish(config, security, logger, overrides)


def _finish(
    config: ClientConfig,
    security: Mapping[str, str] | None,
    logger: logging.Logger | None,
    overrides: dict[str, Any],
) -> ClientConfig:
    config.update(security or {})
    if logger is not None:
        config["logger"] = logger
    config.update(overrides)
    return config
