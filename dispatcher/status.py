"""``dispatcher status``: how far behind each destination of a manifest is.

Per destination: the consumer group's committed offsets summed over partitions, the topic's
end offsets, the lag (end - committed, a partition never committed counting from its start),
and how old the oldest undelivered event is, read from that event's record timestamp.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaException, TopicPartition

from dispatcher.manifest import Manifest
from eventlog.clients import consumer_config
from eventlog.exceptions import EventDeliveryError

__all__ = ["DestinationStatus", "collect_status", "format_table"]

OFFSET_UNSET = -1001  # librdkafka's OFFSET_INVALID: the group never committed this partition


@dataclass(frozen=True, slots=True)
class DestinationStatus:
    destination: str
    group: str
    committed: int
    end: int
    lag: int
    oldest_lag_seconds: float | None


def collect_status(manifest: Manifest, *, timeout: float = 10.0) -> list[DestinationStatus]:
    """Ask the cluster; ``EventDeliveryError`` if it cannot be reached within ``timeout``."""
    # librdkafka would print every refused connection; the one error below says it all.
    probe = Consumer(
        consumer_config(manifest.bootstrap_servers, f"status-{uuid.uuid4().hex}", log_level=0)
    )
    try:
        try:
            topic = probe.list_topics(manifest.topic, timeout=timeout).topics[manifest.topic]
        except KafkaException as exc:
            raise EventDeliveryError(
                f"cannot reach Kafka at {manifest.bootstrap_servers}: {exc.args[0].str()}"
            ) from exc
        if topic.error is not None:
            raise EventDeliveryError(f"topic {manifest.topic!r}: {topic.error.str()}")
        partitions = sorted(topic.partitions)
        ends = {
            p: probe.get_watermark_offsets(TopicPartition(manifest.topic, p), timeout=timeout)
            for p in partitions
        }
    finally:
        probe.close()
    return [
        _destination_status(manifest, spec.name, manifest.group_id(spec), ends, timeout)
        for spec in manifest.destinations
    ]


def _destination_status(
    manifest: Manifest,
    name: str,
    group: str,
    ends: dict[int, tuple[int, int]],
    timeout: float,
) -> DestinationStatus:
    consumer = Consumer(consumer_config(manifest.bootstrap_servers, group, log_level=0))
    try:
        asked = [TopicPartition(manifest.topic, p) for p in ends]
        committed = {tp.partition: tp.offset for tp in consumer.committed(asked, timeout=timeout)}
        lag = committed_sum = end_sum = 0
        oldest: float | None = None
        for partition, (low, high) in ends.items():
            position = committed.get(partition, OFFSET_UNSET)
            start = position if position >= 0 else low
            committed_sum += max(position, 0)
            end_sum += high
            behind = max(0, high - start)
            lag += behind
            if behind:
                age = _age_of(consumer, manifest.topic, partition, start, timeout)
                if age is not None:
                    oldest = age if oldest is None else max(oldest, age)
    finally:
        consumer.close()
    return DestinationStatus(name, group, committed_sum, end_sum, lag, oldest)


def _age_of(
    consumer: Consumer, topic: str, partition: int, offset: int, timeout: float
) -> float | None:
    """Seconds since the record at ``offset`` was written (None if it cannot be read)."""
    consumer.assign([TopicPartition(topic, partition, offset)])
    deadline = time.monotonic() + min(timeout, 3.0)
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is None or message.error() is not None:
                continue
            _kind, stamp_ms = message.timestamp()
            return max(0.0, time.time() - stamp_ms / 1000) if stamp_ms > 0 else None
        return None
    finally:
        consumer.unassign()


def format_table(rows: list[DestinationStatus]) -> str:
    """A plain-text table, widest cell per column."""
    header = ("DESTINATION", "GROUP", "COMMITTED", "END", "LAG", "OLDEST")
    cells = [header] + [
        (
            r.destination, r.group, str(r.committed), str(r.end), str(r.lag),
            "-" if r.oldest_lag_seconds is None else _human(r.oldest_lag_seconds),
        )
        for r in rows
    ]  # fmt: skip
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    )


def _human(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"
