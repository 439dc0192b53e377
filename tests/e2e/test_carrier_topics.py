"""The dead-letter and park topics carry whole events plus our headers: they are made to take
the largest record the events topic takes, whatever that topic was configured with; a park
topic only once its destination parks a user."""

from __future__ import annotations

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from dispatcher.park_records import park_topic
from dispatcher.provisioning import RECORD_HEADROOM
from eventlog.clients import admin_config
from eventlog.topics import TopicSpec, ensure_topic
from tests.e2e.conftest import Stack
from tests.support.http_sink import HttpSink

pytestmark = [pytest.mark.kafka]

LARGE = 3_000_000
"""The events topic's max.message.bytes: three times Kafka's default."""


def max_message_bytes(admin: AdminClient, topic: str) -> int:
    resource = ConfigResource(ResourceType.TOPIC, topic)
    entries = admin.describe_configs([resource])[resource].result(timeout=10)
    return int(entries["max.message.bytes"].value)


def test_dead_letter_and_park_topics_take_what_the_events_topic_takes(
    stack: Stack, sink: HttpSink
) -> None:
    admin = AdminClient(admin_config(stack.bootstrap))
    ensure_topic(admin, TopicSpec(stack.topic, partitions=2, max_message_bytes=LARGE))
    sink.failing["p"] = {"stuck"}
    stack.start_ingest()
    manifest = stack.manifest(
        "shard",
        [{"name": "hook", "type": "http", "url": sink.url("/switch/p")}],
        retry={"max_retries": 1, "initial_backoff": "10ms", "max_backoff": "20ms"},
    )
    dispatcher = stack.start_dispatcher(manifest)
    assert dispatcher.wait_for_log("dispatcher running")
    park = park_topic(stack.topic, "hook")
    assert max_message_bytes(admin, stack.dead_letter_topic) == LARGE + RECORD_HEADROOM
    # A park topic is made when its destination first parks a user.
    assert park not in admin.list_topics(timeout=10).topics
    stack.send("stuck", "x")
    assert dispatcher.wait_for_log("user parked destination=hook")
    assert max_message_bytes(admin, park) == LARGE + RECORD_HEADROOM
