"""``/readyz`` says whether a write can be acknowledged now, not only whether the cluster
describes the topic. The producer here is the real one behind a closed gate: the cluster
answers metadata requests while no write is acknowledged, as when a surviving broker serves
stale metadata for a cluster that lost its quorum."""

from __future__ import annotations

from dataclasses import replace

import pytest

from eventlog.clients import producer_config
from eventlog.producer import AsyncProducer
from ingest import IngestSettings, create_app
from tests.ingest.conftest import GatedProducer, running, wait_ready

pytestmark = pytest.mark.kafka

EVENT = {"user_id": "u", "payload": "p"}


async def test_readyz_is_503_while_writes_are_not_acknowledged_and_200_once_they_are(
    ingest_settings: IngestSettings,
) -> None:
    settings = replace(ingest_settings, ack_timeout=0.5, readiness_hold=60.0)
    config = producer_config(settings.bootstrap_servers, **settings.producer_overrides())
    gated = GatedProducer(AsyncProducer(config))
    async with running(create_app(settings, producer=gated)) as client:
        await wait_ready(client)  # the cluster describes the topic
        refused = await client.put("/events", json=EVENT)
        assert refused.status_code == 503, refused.text
        readiness = await client.get("/readyz")
        assert readiness.status_code == 503, readiness.text
        assert "did not acknowledge a write" in readiness.json()["reason"]
        assert (await client.get("/healthz")).status_code == 200

        gated.gate.set()  # writes are acknowledged again
        assert (await client.put("/events", json=EVENT)).status_code == 202
        assert (await client.get("/readyz")).status_code == 200
