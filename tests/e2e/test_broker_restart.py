"""A broker restart, then partitions moving between dispatcher processes: every partition is
placed and recovered again, and every event delivered (each assignment asks Kafka for the
group's offsets and the park's end, which a client kept across the restart failed to do)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from confluent_kafka import Producer

from eventlog.clients import producer_config
from eventlog.record import Event, encode
from localkafka import NativeBroker
from tests.kafka_fixtures import start_broker
from tests.support.http_sink import HttpSink
from tests.support.processes import Service, start_dispatcher, write_manifest

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(400)]

USERS = 24


def send_round(producer: Producer, topic: str, label: str) -> set[str]:
    ids = set()
    for user in range(USERS):
        event = Event(f"{label}-{user}", f"user-{user}", label, int(time.time() * 1000))
        key, value, headers = encode(event)
        producer.produce(topic, key=key, value=value, headers=headers)
        ids.add(event.id)
    assert producer.flush(60) == 0
    return ids


def test_partitions_assigned_after_a_broker_restart_are_delivered(
    throwaway_broker: NativeBroker, tmp_path: Path, sink: HttpSink
) -> None:
    hook = {"name": "hook", "type": "http", "url": sink.url("/ok")}
    manifest = write_manifest(
        tmp_path / "m.yaml", bootstrap=throwaway_broker.bootstrap, topic="events",
        group_prefix="restart", destinations=[hook],
    )  # fmt: skip
    env = {"KAFKA_BOOTSTRAP_SERVERS": throwaway_broker.bootstrap}

    def dispatcher() -> Service:
        service = start_dispatcher([manifest], tmp_path, env=env)
        assert service.wait_for_log("partitions assigned destination=hook", timeout=60)
        return service

    def delivered(ids: set[str], within: float = 90) -> bool:
        return sink.wait_for(lambda s: ids <= {r.event_id for r in s.accepted()}, timeout=within)

    first = dispatcher()
    producer = Producer(producer_config(throwaway_broker.bootstrap))
    assert delivered(send_round(producer, "events", "before"))

    throwaway_broker.stop(timeout=30)
    start_broker(throwaway_broker)
    assert delivered(send_round(producer, "events", "after-restart")), first.log()[-3000:]

    second = dispatcher()  # half the partitions move to it ...
    assert delivered(send_round(producer, "events", "shared")), second.log()[-3000:]
    assert second.stop(signal.SIGTERM) == 0  # ... and back
    assert delivered(send_round(producer, "events", "alone-again")), first.log()[-3000:]
    assert first.stop(signal.SIGTERM) == 0
