"""A group whose committed offset retention deleted meanwhile: the dispatcher resumes at the
earliest retained event and says how many were lost (a line and a counter), against a real
broker, instead of librdkafka's silent jump to the end of the log."""

from __future__ import annotations

import time

import pytest
import yaml
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from eventlog.clients import admin_config, consumer_config, producer_config
from eventlog.record import Event, encode
from eventlog.topics import TopicSpec, ensure_topic
from tests.e2e.conftest import Stack
from tests.e2e.test_observability import metric, scrape
from tests.kafka_fixtures import free_port
from tests.support.http_sink import HttpSink

pytestmark = [pytest.mark.kafka]


def test_a_committed_offset_deleted_by_retention_resumes_at_the_earliest_and_says_so(
    stack: Stack, sink: HttpSink
) -> None:
    admin = AdminClient(admin_config(stack.bootstrap))
    ensure_topic(admin, TopicSpec(stack.topic, partitions=1))
    producer = Producer(producer_config(stack.bootstrap))
    for n in range(10):
        key, value, headers = encode(
            Event(id=f"e{n}", user_id="ann", payload=str(n), received_at_ms=int(time.time() * 1000))
        )
        producer.produce(stack.topic, key=key, value=value, headers=headers, partition=0)
    assert producer.flush(10) == 0
    group = f"{stack.group_prefix}.hook"
    # The group read up to offset 2 long ago ...
    committer = Consumer(consumer_config(stack.bootstrap, group))
    committer.commit(offsets=[TopicPartition(stack.topic, 0, 2)], asynchronous=False)
    committer.close()
    # ... and retention has deleted everything below 6 since.
    deleted = admin.delete_records([TopicPartition(stack.topic, 0, 6)])
    for future in deleted.values():
        future.result(timeout=10)

    manifest = stack.manifest("shard", [{"name": "hook", "type": "http", "url": sink.url("/ok")}])
    document = yaml.safe_load(manifest.read_text())
    document["start_from"] = "latest"  # not a new group: it must not jump to the end
    manifest.write_text(yaml.safe_dump(document))
    port = free_port()
    dispatcher = stack.start_dispatcher(manifest, args=["--metrics-port", str(port)])

    assert sink.wait_for(lambda s: [r.payload for r in s.accepted()] == ["6", "7", "8", "9"])
    assert dispatcher.wait_for_log("events lost to retention destination=hook")
    assert "lost=4" in dispatcher.log()
    lost = metric(
        scrape(f"http://127.0.0.1:{port}/metrics"),
        "events_lost_to_retention_total",
        destination="hook",
    )
    assert lost == 4
