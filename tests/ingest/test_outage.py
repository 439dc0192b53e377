"""Kafka going away and coming back, on a throwaway broker of this test's own (the shared one
must keep running): 503 with Retry-After within the configured bound while it is away, 202
again once it is back, without restarting ingest."""

from __future__ import annotations

import asyncio

import pytest

from eventlog.record import decode
from ingest import IngestSettings, create_app
from localkafka import NativeBroker
from tests.ingest.conftest import end_offsets, read_topic, running, wait_ready
from tests.ingest.waiting import until_async
from tests.kafka_fixtures import start_broker

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

ACK_TIMEOUT = 2.0
EVENT = {"user_id": "dora", "payload": "p"}


async def test_503_while_kafka_is_away_and_202_once_it_is_back(
    throwaway_broker: NativeBroker,
) -> None:
    broker = throwaway_broker
    settings = IngestSettings(
        bootstrap_servers=broker.bootstrap,
        topic="events",
        partitions=2,
        ack_timeout=ACK_TIMEOUT,
        retry_after=2,
        readiness_timeout=1.0,
    )
    async with running(create_app(settings)) as client:
        await wait_ready(client, within=60)
        before = await client.put("/events", json=EVENT)
        assert before.status_code == 202, before.text

        await asyncio.to_thread(broker.stop, timeout=30)
        loop = asyncio.get_running_loop()
        started = loop.time()
        away = await client.put("/events", json=EVENT)
        took = loop.time() - started
        assert away.status_code == 503, away.text
        assert away.headers["retry-after"] == "2"
        assert away.json()["type"] == "urn:event-delivery:problem:unavailable"
        assert took <= ACK_TIMEOUT + 1.5, f"503 took {took:.1f}s"
        assert (await client.get("/readyz")).status_code == 503
        assert (await client.get("/healthz")).status_code == 200

        await asyncio.to_thread(start_broker, broker)
        accepted: list[str] = []

        async def accepted_again() -> bool:
            response = await client.put("/events", json=EVENT)
            if response.status_code == 202:
                accepted.append(response.json()["id"])
                return True
            assert response.status_code == 503, response.text
            return False

        await until_async(accepted_again, within=60, interval=0.2, what="202 after restart")
        await wait_ready(client, within=30)

    # An event answered 503 may still have been stored late (that is what Idempotency-Key is
    # for); the acknowledged ones certainly were.
    stored = sum(end_offsets(broker.bootstrap, "events"))
    records = read_topic(broker.bootstrap, "events", stored)
    ids = {decode(r.key(), r.value(), r.headers()).id for r in records}
    assert {before.json()["id"], accepted[0]} <= ids
