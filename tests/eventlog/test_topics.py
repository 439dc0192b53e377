from __future__ import annotations

from collections.abc import Callable

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from eventlog.topics import RETENTION_24H_MS, TopicSpec, durability_warnings, ensure_topic


def _retention(admin: AdminClient, topic: str) -> int:
    resource = ConfigResource(ResourceType.TOPIC, topic)
    return int(admin.describe_configs([resource])[resource].result(10)["retention.ms"].value)


@pytest.mark.kafka
def test_a_new_topic_keeps_events_24h_with_the_asked_partitions(
    kafka_admin: AdminClient, unique_name: Callable[[str], str]
) -> None:
    name = unique_name("events")
    state = ensure_topic(kafka_admin, TopicSpec(name=name))
    assert state.created
    assert len(kafka_admin.list_topics(name, timeout=10).topics[name].partitions) == 12
    assert _retention(kafka_admin, name) == RETENTION_24H_MS == 86_400_000


@pytest.mark.kafka
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


@pytest.mark.kafka
def test_ensuring_a_matching_topic_again_reports_nothing(
    kafka_admin: AdminClient, unique_name: Callable[[str], str]
) -> None:
    name = unique_name("events")
    ensure_topic(kafka_admin, TopicSpec(name=name, partitions=3))
    assert ensure_topic(kafka_admin, TopicSpec(name=name, partitions=3)).differences == ()


def _config(admin: AdminClient, topic: str, key: str) -> str:
    resource = ConfigResource(ResourceType.TOPIC, topic)
    return str(admin.describe_configs([resource])[resource].result(10)[key].value)


@pytest.mark.kafka
def test_max_message_bytes_is_set_on_a_new_topic(
    kafka_admin: AdminClient, unique_name: Callable[[str], str]
) -> None:
    name = unique_name("dead-letter")
    ensure_topic(kafka_admin, TopicSpec(name=name, partitions=1, max_message_bytes=2_000_000))
    assert _config(kafka_admin, name, "max.message.bytes") == "2000000"


@pytest.mark.kafka
def test_an_existing_topic_that_takes_smaller_records_is_reported(
    kafka_admin: AdminClient, unique_name: Callable[[str], str]
) -> None:
    name = unique_name("dead-letter")
    ensure_topic(kafka_admin, TopicSpec(name=name, partitions=1, max_message_bytes=100_000))
    state = ensure_topic(kafka_admin, TopicSpec(name=name, partitions=1, max_message_bytes=200_000))
    assert any(
        "max.message.bytes is 100000, expected at least 200000" in d for d in state.differences
    )


@pytest.mark.kafka
def test_replication_as_found_in_the_cluster(
    kafka_admin: AdminClient, unique_name: Callable[[str], str], caplog: pytest.LogCaptureFixture
) -> None:
    name = unique_name("events")
    created = ensure_topic(kafka_admin, TopicSpec(name=name, partitions=2, min_insync_replicas=1))
    found = ensure_topic(kafka_admin, TopicSpec(name=name, partitions=2, min_insync_replicas=1))
    for state in (created, found):
        # The test broker is a single node: one replica is all it can hold, so no warning.
        assert (state.replication_factor, state.min_insync_replicas, state.brokers) == (1, 1, 1)
        assert state.warnings == ()
    assert found.differences == ()
    assert "less durable" not in caplog.text


@pytest.mark.kafka
def test_an_existing_topic_with_other_min_insync_replicas_is_reported(
    kafka_admin: AdminClient, unique_name: Callable[[str], str]
) -> None:
    name = unique_name("events")
    ensure_topic(kafka_admin, TopicSpec(name=name, partitions=1))
    state = ensure_topic(kafka_admin, TopicSpec(name=name, partitions=1, min_insync_replicas=2))
    assert any("min.insync.replicas is 1, expected 2" in d for d in state.differences)


@pytest.mark.parametrize(
    ("replication_factor", "min_insync_replicas", "brokers", "says"),
    [
        (1, None, 1, []),
        (1, 1, 3, ["replication factor 1 is below 3 with 3 brokers"]),
        (2, 1, 2, []),
        (1, None, 2, ["replication factor 1 is below 2 with 2 brokers"]),
        (3, 2, 3, []),
        (3, 2, 9, []),  # capped at 3: more copies are not required
        (2, 1, 5, ["replication factor 2 is below 3 with 5 brokers"]),
        (3, 1, 3, ["min.insync.replicas is 1 with 3 replicas"]),
        (3, None, 3, []),  # not reported: nothing to judge
        (5, 1, 5, ["min.insync.replicas is 1 with 5 replicas"]),
        (
            2,
            1,
            3,
            ["replication factor 2 is below 3 with 3 brokers"],
        ),
    ],
)
def test_durability_warnings(
    replication_factor: int, min_insync_replicas: int | None, brokers: int, says: list[str]
) -> None:
    warnings = durability_warnings(
        replication_factor=replication_factor,
        min_insync_replicas=min_insync_replicas,
        brokers=brokers,
    )
    assert len(warnings) == len(says)
    for warning, start in zip(warnings, says, strict=True):
        assert warning.startswith(start)
