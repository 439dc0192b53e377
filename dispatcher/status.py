"""``dispatcher status``: how far behind each destination of a manifest is, and why.

Per destination: the consumer group's committed offsets summed over partitions, the topic's
end offsets, the lag (end - committed, a partition never committed counting from its start),
how old the oldest undelivered event is (read from that event's record timestamp) as a share
of the events topic's ``retention.ms``, the breaker of each running dispatcher (from the
breaker-state topic) and the users and events parked (read from the park topic).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TypeVar

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from dispatcher import tables
from dispatcher.breaker_state import BreakerRecord, read_breakers, state_topic
from dispatcher.manifest import DestinationSpec, Manifest
from dispatcher.park_records import park_topic
from dispatcher.park_store import load_book
from eventlog.clients import admin_config, consumer_config
from eventlog.exceptions import EventDeliveryError

T = TypeVar("T")

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
    retention_seconds: float | None = None
    breaker: str = "-"
    """The worst breaker state among the running dispatchers ("-": none publishes one)."""
    breaker_since_seconds: float | None = None
    next_probe_seconds: float | None = None
    parked_users: int | None = None
    parked_events: int | None = None


def collect_status(manifest: Manifest, *, timeout: float = 10.0) -> list[DestinationStatus]:
    """Ask the cluster; ``EventDeliveryError`` if it cannot be reached within ``timeout``."""
    # librdkafka would print every refused connection; the one error below says it all.
    probe = Consumer(
        consumer_config(
            manifest.bootstrap_servers,
            f"status-{uuid.uuid4().hex}",
            security=manifest.security,
            log_level=0,
        )
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
    retention = _retention_seconds(manifest, timeout)
    breakers = read_breakers(
        manifest.bootstrap_servers,
        state_topic(manifest.topic),
        timeout=3.0,
        security=manifest.security,
    )
    rows = []
    for spec in manifest.destinations:
        row = _destination_status(manifest, spec.name, manifest.group_id(spec), ends, timeout)
        state, since, next_probe = _breaker_cells(breakers.get(spec.name, []))
        users, events = _parked_cells(manifest, spec, timeout)
        rows.append(
            replace(
                row,
                retention_seconds=retention,
                breaker=state,
                breaker_since_seconds=since,
                next_probe_seconds=next_probe,
                parked_users=users,
                parked_events=events,
            )
        )
    return rows


def _retention_seconds(manifest: Manifest, timeout: float) -> float | None:
    admin = AdminClient(admin_config(manifest.bootstrap_servers, security=manifest.security))
    resource = ConfigResource(ResourceType.TOPIC, manifest.topic)
    try:
        entries = admin.describe_configs([resource])[resource].result(timeout=timeout)
        return int(entries["retention.ms"].value) / 1000
    except (KafkaException, KeyError, ValueError, TimeoutError):
        return None


_SEVERITY = {"open": 2, "half_open": 1, "closed": 0}


def _breaker_cells(records: list[BreakerRecord]) -> tuple[str, float | None, float | None]:
    """State, seconds since, seconds to the next probe, of the worst breaker reported."""
    if not records:
        return "-", None, None
    worst = max(records, key=lambda r: _SEVERITY.get(r.state, 0))
    now_ms = time.time() * 1000
    probe = None if worst.next_probe_ms is None else max(0.0, (worst.next_probe_ms - now_ms) / 1000)
    return worst.state, max(0.0, (now_ms - worst.since_ms) / 1000), probe


def _parked_cells(
    manifest: Manifest, spec: DestinationSpec, timeout: float
) -> tuple[int | None, int | None]:
    try:
        book = load_book(
            manifest.bootstrap_servers, events_topic=manifest.topic,
            park=park_topic(manifest.topic, spec.name), group=manifest.group_id(spec),
            policy=spec.parking, timeout=timeout, security=manifest.security,
        )  # fmt: skip
    except EventDeliveryError:
        return None, None  # Kafka could not be read: unknown, not zero
    return book.user_count, book.event_count


def _destination_status(
    manifest: Manifest,
    name: str,
    group: str,
    ends: dict[int, tuple[int, int]],
    timeout: float,
) -> DestinationStatus:
    consumer = Consumer(
        consumer_config(manifest.bootstrap_servers, group, security=manifest.security, log_level=0)
    )
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
    header = (
        "DESTINATION", "GROUP", "COMMITTED", "END", "LAG", "OLDEST", "OF-RETENTION", "BREAKER",
        "SINCE", "PROBE-IN", "PARKED-USERS", "PARKED-EVENTS",
    )  # fmt: skip
    cells = [
        (
            r.destination, r.group, str(r.committed), str(r.end), str(r.lag),
            _maybe(r.oldest_lag_seconds, _human), _share(r.oldest_lag_seconds, r.retention_seconds),
            r.breaker, _maybe(r.breaker_since_seconds, _human),
            _maybe(r.next_probe_seconds, _human), _maybe(r.parked_users, str),
            _maybe(r.parked_events, str),
        )
        for r in rows
    ]  # fmt: skip
    return tables.format_table(header, cells)


def _maybe(value: T | None, show: Callable[[T], str]) -> str:
    return "-" if value is None else show(value)


def _share(oldest: float | None, retention: float | None) -> str:
    if oldest is None or not retention:
        return "-"
    return f"{100 * oldest / retention:.0f}%"


def _human(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"
