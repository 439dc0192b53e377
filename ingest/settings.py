"""Everything an ingest process can be told, validated as a whole before anything starts."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from typing import Any

from eventlog.topics import TopicSpec, default_min_insync_replicas
from ingest.connections import ConnectionLimits
from ingest.exceptions import SettingsError

__all__ = ["KAFKA_MESSAGE_LIMIT", "IngestSettings"]

KAFKA_MESSAGE_LIMIT = 1_000_000
"""The producer's default ``message.max.bytes``; the broker's default is a little above."""
_RECORD_HEADROOM = 100_000
"""Room kept below ``KAFKA_MESSAGE_LIMIT`` for the key, headers and record overhead."""
_LIBRDKAFKA_MAX = 2_147_483_647


@dataclass(frozen=True, slots=True)
class IngestSettings:
    """Settings of one ingest process (the CLI builds them from flags and environment)."""

    bootstrap_servers: str = "localhost:9092"
    """Kafka bootstrap servers, ``host:port[,host:port...]``."""
    topic: str = "events"
    """The events topic; created at start-up when missing."""
    partitions: int = 12
    """Partitions of the events topic when ingest creates it (an existing topic is kept)."""
    replication_factor: int = 1
    """Replication factor when ingest creates the topic (3 in production)."""
    min_insync_replicas: int | None = None
    """``min.insync.replicas`` set on the topic when ingest creates it: how many copies must
    have an event before Kafka acknowledges it (``acks=all``). ``None`` means one less than
    ``replication_factor``, at least 1 and at most 2 (so 2 with the production factor of 3)."""
    max_event_bytes: int = 512 * 1024
    """Largest ``PUT /events`` body, and largest payload (UTF-8 bytes) of one batch item."""
    max_batch_bytes: int = 4 * 1024 * 1024
    """Largest ``POST /events/batch`` body."""
    max_batch_events: int = 1000
    """Most events in one batch."""
    max_user_id_length: int = 256
    """Most characters in a ``user_id`` (it is the Kafka record key)."""
    max_concurrent_requests: int = 256
    """Event requests handled at once; more wait up to ``backpressure_wait`` for a slot, then
    get 503. Bounds memory: at most this many bodies are held, and librdkafka's queue is sized
    so that it can never fill up before this bound is reached."""
    backpressure_wait: float = 1.0
    """Seconds a request may wait for a free slot (or for room in the producer queue)."""
    ack_timeout: float = 10.0
    """Seconds to wait for Kafka's acknowledgement before answering 503; also the producer's
    ``delivery.timeout.ms``, so an unacknowledged record is given up at about the same time."""
    retry_after: int = 1
    """Seconds clients are told to wait (``Retry-After``) when answered 503."""
    readiness_timeout: float = 2.0
    """Seconds ``/readyz`` waits for the cluster to describe the topic."""
    readiness_hold: float = 10.0
    """Seconds ``/readyz`` answers 503 after Kafka failed to acknowledge a write, unless it
    acknowledges one sooner (``ingest.write_health``)."""
    readiness_overdue: float = 2.0
    """Seconds a write may wait for Kafka's acknowledgement before ``/readyz`` counts it as
    failing (503), without waiting for ``ack_timeout`` to give it up; an acknowledgement of
    another write since then says Kafka takes writes. Kafka acknowledges in milliseconds when
    well; at or above ``ack_timeout`` only failed writes count."""
    shutdown_timeout: float = 10.0
    """Seconds the producer may take at shutdown to deliver what is still queued."""
    max_header_bytes: int = 16 * 1024
    """Most bytes of a request's line and headers together (431 beyond)."""
    header_timeout: float = 10.0
    """Seconds from a connection's opening (or a kept-alive request's first byte) until the
    request's headers must be complete (408 beyond; a connection that sent nothing is closed)."""
    body_timeout: float = 30.0
    """Seconds from a request's headers until its body must be complete (408 beyond). The
    body is read before the request takes one of the ``max_concurrent_requests`` slots."""
    keep_alive_timeout: float = 5.0
    """Seconds an idle kept-alive connection stays open."""
    max_connections: int = 1000
    """Connections open at once (per worker); past it a new connection closes the longest-idle
    one, or, if none is idle, is served for health checks only. Lowered at start-up if the
    file descriptor limit cannot hold it. Bounds memory with ``max_batch_bytes``: each
    connection holds at most one body."""
    api_keys_file: str | None = None
    """File of ``name:sha256-hex`` lines (``ingest.api_keys``); when set, event requests need
    ``Authorization: Bearer <key>``. ``None``: ingest is open to anyone who can reach it."""
    key_rate: float = 0.0
    """Event requests per second each API key may send (its token bucket's refill); 0: no
    limit."""
    key_burst: int = 20
    """Event requests an API key may send at once after a quiet spell (its bucket's size)."""
    metrics_need_key: bool = False
    """Whether ``/metrics`` needs an API key too (``/healthz`` and ``/readyz`` never do)."""
    kafka_security: dict[str, str] = field(default_factory=dict, repr=False)
    """librdkafka TLS and SASL settings (``security.protocol`` ...) of every Kafka client
    ingest builds, from ``eventlog.kafka_security.security_settings``; empty: PLAINTEXT. Left
    out of ``repr()``: it may hold the SASL password."""

    def __post_init__(self) -> None:
        problems = list(self._problems())
        if problems:
            raise SettingsError("invalid ingest settings: " + "; ".join(problems))

    def _problems(self) -> Iterator[str]:
        if not self.bootstrap_servers.strip():
            yield "bootstrap_servers must not be empty"
        if not self.topic.strip():
            yield "topic must not be empty"
        for name in (
            "partitions",
            "replication_factor",
            "max_event_bytes",
            "max_batch_bytes",
            "max_batch_events",
            "max_user_id_length",
            "max_concurrent_requests",
            "max_header_bytes",
            "max_connections",
            "key_burst",
        ):
            if getattr(self, name) < 1:
                yield f"{name} must be at least 1, got {getattr(self, name)}"
        yield from self._duration_problems()
        if not (math.isfinite(self.ack_timeout) and self.ack_timeout >= 0.1):
            yield f"ack_timeout must be at least 0.1 s, got {self.ack_timeout}"
        if not (math.isfinite(self.key_rate) and self.key_rate >= 0):
            yield f"key_rate must be a number of requests per second >= 0, got {self.key_rate}"
        if self.metrics_need_key and self.api_keys_file is None:
            yield "metrics_need_key needs api_keys_file (there are no keys to ask for)"
        if self.retry_after < 0:
            yield f"retry_after must be >= 0, got {self.retry_after}"
        if self.max_event_bytes > KAFKA_MESSAGE_LIMIT - _RECORD_HEADROOM:
            yield (
                f"max_event_bytes is {self.max_event_bytes}; Kafka refuses records over "
                f"{KAFKA_MESSAGE_LIMIT} bytes, so keep it at most "
                f"{KAFKA_MESSAGE_LIMIT - _RECORD_HEADROOM}"
            )
        if self.min_insync_replicas is not None and not (
            1 <= self.min_insync_replicas <= self.replication_factor
        ):
            yield (
                f"min_insync_replicas must be between 1 and replication_factor "
                f"({self.replication_factor}), got {self.min_insync_replicas}"
            )
        if self.max_batch_bytes < self.max_event_bytes:
            yield "max_batch_bytes must be at least max_event_bytes (a batch of one event fits)"

    def _duration_problems(self) -> Iterator[str]:
        for name in (
            "backpressure_wait",
            "readiness_timeout",
            "readiness_hold",
            "shutdown_timeout",
        ):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                yield f"{name} must be a number of seconds >= 0, got {value}"
        for name in ("header_timeout", "body_timeout", "keep_alive_timeout", "readiness_overdue"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                yield f"{name} must be a number of seconds > 0, got {value}"

    @property
    def topic_spec(self) -> TopicSpec:
        """The topic ingest creates when it is missing (24 h retention)."""
        return TopicSpec(
            name=self.topic,
            partitions=self.partitions,
            replication_factor=self.replication_factor,
            min_insync_replicas=self.effective_min_insync_replicas,
        )

    @property
    def effective_min_insync_replicas(self) -> int:
        """``min_insync_replicas``, or its default for ``replication_factor``."""
        if self.min_insync_replicas is not None:
            return self.min_insync_replicas
        return default_min_insync_replicas(self.replication_factor)

    @property
    def connection_limits(self) -> ConnectionLimits:
        """What one HTTP connection may cost."""
        return ConnectionLimits(
            max_header_bytes=self.max_header_bytes,
            header_timeout=self.header_timeout,
            body_timeout=self.body_timeout,
            keep_alive_timeout=self.keep_alive_timeout,
            max_connections=self.max_connections,
        )

    @property
    def drain_seconds(self) -> int:
        """How long a request can take at most: what shutdown waits for in-flight requests."""
        return math.ceil(self.backpressure_wait + self.ack_timeout) + 1

    def producer_overrides(self) -> dict[str, Any]:
        """librdkafka settings ingest adds to ``eventlog.clients.producer_config``."""
        # Twice the most records the admitted requests can hold: a delivered record leaves
        # librdkafka's count a moment after its request is answered. The queue therefore never
        # fills before the request bound applies, so produce() never has to wait and retry, and
        # a batch's records are enqueued in order.
        most_records = self.max_concurrent_requests * self.max_batch_events
        most_kbytes = self.max_concurrent_requests * self.max_batch_bytes // 1024
        return {
            "delivery.timeout.ms": int(self.ack_timeout * 1000),
            "queue.buffering.max.messages": min(2 * most_records, _LIBRDKAFKA_MAX),
            "queue.buffering.max.kbytes": min(2 * most_kbytes, _LIBRDKAFKA_MAX),
            # Only ingest's own ensure_topic creates the topic, with the partition count that
            # decides which partition each user's events land on.
            "allow.auto.create.topics": False,
            # librdkafka would print a line per reconnect attempt (several a second while Kafka
            # is away); its error_cb reports the same errors and ingest logs one line per spell.
            "log_level": 0,
        }

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain values (for handing them to worker processes)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}
