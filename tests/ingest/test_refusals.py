"""Kafka refusing an event for good (not "try later"): a record larger than the topic's
``max.message.bytes`` is the client's to fix (413), never a 503 that invites retrying forever."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from dataclasses import replace

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from ingest import IngestSettings, create_app
from ingest.refusals import Disposition, disposition
from tests.ingest.conftest import TOPIC_PARTITIONS, end_offsets, running, wait_ready

SMALL_MESSAGES = 1000
"""The topic's ``max.message.bytes``: far below ingest's own limits."""


@pytest.fixture
def small_message_settings(
    ingest_settings: IngestSettings, kafka_admin: AdminClient, unique_name: Callable[[str], str]
) -> IngestSettings:
    topic = unique_name("events-small")
    new = NewTopic(
        topic,
        num_partitions=TOPIC_PARTITIONS,
        replication_factor=1,
        config={"max.message.bytes": str(SMALL_MESSAGES)},
    )
    kafka_admin.create_topics([new])[topic].result(timeout=30)
    return replace(ingest_settings, topic=topic)


def _incompressible(size: int) -> str:
    # The producer compresses (lz4): only random text stays larger than the limit.
    return base64.b64encode(os.urandom(size)).decode()


@pytest.mark.kafka
async def test_an_event_too_large_for_the_topic_is_413_with_the_cause_not_503(
    small_message_settings: IngestSettings,
) -> None:
    settings = small_message_settings
    async with running(create_app(settings)) as client:
        await wait_ready(client)
        event = {"user_id": "u", "payload": _incompressible(3 * SMALL_MESSAGES)}
        response = await client.put("/events", json=event)
        assert response.status_code == 413, response.text
        assert "retry-after" not in response.headers
        problem = response.json()
        assert problem["type"] == "urn:event-delivery:problem:event-too-large"
        assert "max.message.bytes" in problem["detail"]
        assert "Message size too large" in problem["detail"]

        batch = await client.post("/events/batch", json=[event, event])
        assert batch.status_code == 413, batch.text
        assert "retry-after" not in batch.headers

        # A small event still goes through, and the refusals did not make ingest unready.
        assert (await client.put("/events", json={"user_id": "u", "payload": "p"})).is_success
        assert (await client.get("/readyz")).status_code == 200
    assert sum(end_offsets(settings.bootstrap_servers, settings.topic)) == 1


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("MSG_SIZE_TOO_LARGE", Disposition.TOO_LARGE),
        ("RECORD_LIST_TOO_LARGE", Disposition.TOO_LARGE),
        ("TOPIC_AUTHORIZATION_FAILED", Disposition.REFUSED),
        ("INVALID_RECORD", Disposition.REFUSED),
        # Not retriable to librdkafka, but a broker that is away or short of replicas may be
        # back in a moment: the client should try again.
        ("_MSG_TIMED_OUT", Disposition.RETRY_LATER),
        ("NOT_ENOUGH_REPLICAS", Disposition.RETRY_LATER),
        ("_QUEUE_FULL", Disposition.RETRY_LATER),
        ("SOMETHING_NEW", Disposition.RETRY_LATER),
    ],
)
def test_which_refusals_are_worth_retrying(code: str, expected: Disposition) -> None:
    assert disposition(code) is expected
