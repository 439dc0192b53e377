"""The topics a dispatcher needs, made (or checked) when they are needed.

At start-up, per manifest: the events topic (created if missing, else checked against the
spec), its dead-letter topic and the small compacted breaker-state topic. A destination's park
topic is made only when the destination first parks a user (``ParkTopic``): a thousand
destinations that never park cost the brokers no park partitions (each park topic has as many
partitions as the events topic), and a destination that did park finds it in place after a
restart. Dead-letter and park topics take records as large as the events topic takes, plus
room for our headers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from confluent_kafka.admin import AdminClient, NewTopic

from dispatcher.breaker_state import state_topic
from dispatcher.manifest import DestinationSpec, Manifest, retention_warnings
from dispatcher.park_records import park_topic
from eventlog.clients import admin_config
from eventlog.credentials import credentials_refused
from eventlog.exceptions import TopicError
from eventlog.topics import TopicSpec, TopicState, ensure_topic

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "RECORD_HEADROOM",
    "ParkTopic",
    "topics_ready",
]

log = logging.getLogger(__name__)

RECORD_HEADROOM = 64 * 1024
"""Bytes a dead letter or park record may add to the event it carries (its own headers)."""
DEFAULT_MAX_MESSAGE_BYTES = 1_048_588
"""Kafka's default ``max.message.bytes`` (what ingest's events topic keeps)."""
CREATE_TIMEOUT = 10.0
"""Seconds one attempt to create or describe a topic may take."""


async def topics_ready(
    manifests: Sequence[Manifest], *, partitions: int, retry_every: float, stop: asyncio.Event
) -> dict[object, TopicState] | None:
    """Ensure each manifest's events, dead-letter and breaker-state topics exist, waiting for
    Kafka as long as it takes (or until ``stop``: then ``None``); ``partitions`` for an events
    topic made here. Returns the events topic's state per manifest path."""
    events: dict[object, TopicState] = {}
    for manifest in manifests:
        config = admin_config(manifest.bootstrap_servers, security=manifest.security)
        # A refused login never fixes itself: one line and exit 1, not a retry loop.
        if manifest.security and (refused := await asyncio.to_thread(credentials_refused, config)):
            raise RuntimeError(refused)
        admin = AdminClient(config)
        spec = TopicSpec(
            name=manifest.topic, partitions=partitions,
            replication_factor=manifest.replication_factor,
            min_insync_replicas=manifest.min_insync_replicas,
        )  # fmt: skip
        state = await _ensure(admin, spec, manifest, retry_every=retry_every, stop=stop)
        if state is None:
            return None
        events[manifest.path] = state
        # --check assumed the default retention; now the topic's own is known.
        for warning in retention_warnings(manifest, retention_seconds=state.retention_ms / 1000):
            log.warning("%s", warning)
        letters = TopicSpec(
            name=manifest.dead_letter_topic, partitions=state.partitions,
            max_message_bytes=_carrying(state), replication_factor=manifest.replication_factor,
            min_insync_replicas=manifest.min_insync_replicas,
        )  # fmt: skip
        if await _ensure(admin, letters, manifest, retry_every=retry_every, stop=stop) is None:
            return None
        await asyncio.to_thread(_ensure_state_topic, admin, manifest)
    return events


@dataclass(frozen=True, slots=True)
class ParkTopic:
    """One destination's park topic, made on first use (``ParkWriter`` calls ``ensure``)."""

    manifest: Manifest
    destination: DestinationSpec
    events: TopicState
    """The events topic, whose partition count and record size the park topic follows."""
    retry_every: float = 1.0

    @property
    def name(self) -> str:
        return park_topic(self.manifest.topic, self.destination.name)

    async def ensure(self) -> None:
        """Create the park topic if missing (checking it otherwise), waiting for Kafka."""
        manifest = self.manifest
        spec = TopicSpec(
            name=self.name, partitions=self.events.partitions,
            retention_ms=int(self.destination.parking.retention * 1000),
            max_message_bytes=_carrying(self.events),
            replication_factor=manifest.replication_factor,
            min_insync_replicas=manifest.min_insync_replicas,
        )  # fmt: skip
        # An admin client of its own: this may run hours after start-up, and a long-lived
        # one can be left broken by a broker restart meanwhile.
        admin = AdminClient(admin_config(manifest.bootstrap_servers, security=manifest.security))
        await _ensure(admin, spec, manifest, retry_every=self.retry_every, stop=None)


def _carrying(events: TopicState) -> int:
    """``max.message.bytes`` of a topic carrying the events topic's records and our headers."""
    return (events.max_message_bytes or DEFAULT_MAX_MESSAGE_BYTES) + RECORD_HEADROOM


async def _ensure(
    admin: AdminClient,
    spec: TopicSpec,
    manifest: Manifest,
    *,
    retry_every: float,
    stop: asyncio.Event | None,
) -> TopicState | None:
    while True:
        try:
            return await asyncio.to_thread(ensure_topic, admin, spec, timeout=CREATE_TIMEOUT)
        except TopicError as exc:
            log.warning(
                "waiting for kafka bootstrap=%s topic=%s error=%s",
                manifest.bootstrap_servers, spec.name, exc,
            )  # fmt: skip
        if stop is None:
            await asyncio.sleep(retry_every)
            continue
        try:
            await asyncio.wait_for(stop.wait(), timeout=retry_every)
        except TimeoutError:
            continue
        return None


def _ensure_state_topic(admin: AdminClient, manifest: Manifest) -> None:
    """The small compacted topic of breaker states (best effort: status only reads it)."""
    topic = NewTopic(
        state_topic(manifest.topic),
        num_partitions=1,
        replication_factor=manifest.replication_factor,
        config={
            "cleanup.policy": "compact",
            "min.insync.replicas": str(manifest.min_insync_replicas),
        },
    )
    try:
        admin.create_topics([topic], operation_timeout=10)[topic.topic].result(timeout=10)
    except Exception as exc:  # already there, or not important enough to stop
        if "TOPIC_ALREADY_EXISTS" not in str(exc):
            log.warning("breaker-state topic not created topic=%s error=%s", topic.topic, exc)
