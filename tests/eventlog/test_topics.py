from __future__ import annotations

from collections.abc import Callable

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from eventlog.topics import RETENTION_24H_MS, TopicSpec, ensure_topic

pytestmark = pytest.mark.kafka


def _retention(admin: AdminClient, topic: str) -> int:
    resource = ConfigResource(ResourceType.TOPIC, topic)
    return int(admin.describe_configs([resource])[resource].result(10)["retention.ms"].value)


def test_a_new_topic_keeps_events_24h_with_the_asked_partitions(
    kafka_admin: AdminClient, unique_name: Callable[[str], str]
) -> None:
    name = unique_name("events")
    state = ensure_topic(kafka_admin, TopicSpec(name=name))
    assert state.created
    assert len(kafka_admin.list_topics(name, timeout=10).topics[name].partitions) == 12
    assert _retention(kafka_admin, name) == RETENTION_24H_MS == 86_400_000


def test_an_existing_topic_with_other_settings_is_reported(
    kafka_admin: AdminClient, unique_name: Callable[[str], str]
) -> None:
    name = unique_name("events")
    ensure_topic(kafka_admin, TopicSpec(name=name, partitions=2, retention_ms=60_000))
    state = ensure_topic(kafka_admin, TopicSpec(name=name, partitions=4))
    assert not state.created
    assert state.retention_ms == 60_000
    assert any("retention.ms is 60000" in d for d in state.differences)
    assert any("2 partitions" in d for d in state.differences)
    # Saying so is all it does: the existing topic is not silently changed.
    assert _retention(kafka_admin, name) == 60_000


def test_ensuring_a_matching_topic_again_reports_nothing(
    kafka_admin: AdminClient, unique_name: Callable[[str], str]
) -> None:
    name = unique_name("events")
    ensure_topic(kafka_admin, TopicSpec(name=name, partitions=3))
    assert ensure_topic(kafka_admin, TopicSpec(name=name, partitions=3)).differences == ()
