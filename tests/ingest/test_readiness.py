"""``/readyz`` says whether a write can be acknowledged now, not only whether the cluster
describes the topic. The producer here is the real one behind a closed gate: the cluster
answers metadata requests while no write is acknowledged, as when a surviving broker serves
stale metadata for a cluster that lost its quorum."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import httpx
import pytest

from eventlog.clients import producer_config
from eventlog.producer import AsyncProducer
from ingest import IngestSettings, create_app
from tests.ingest.conftest import GatedProducer, running, serving, wait_ready
from tests.ingest.waiting import until, until_async

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


async def test_readyz_is_503_while_a_write_waits_unacknowledged_before_it_times_out(
    ingest_settings: IngestSettings,
) -> None:
    # A long ack_timeout: readiness must not wait for the write to fail to say so. A real
    # server, so that the write and the probes are under way at once.
    settings = replace(ingest_settings, ack_timeout=60.0, readiness_overdue=0.3)
    config = producer_config(settings.bootstrap_servers, **settings.producer_overrides())
    gated = GatedProducer(AsyncProducer(config))
    async with (
        serving(settings, gated) as server,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.config.port}", timeout=30) as client,
    ):
        waiting = asyncio.create_task(client.put("/events", json=EVENT))
        await until(lambda: gated.waiting == 1, within=10, what="the write is in flight")

        async def unready() -> bool:
            return (await client.get("/readyz")).status_code == 503

        await until_async(unready, within=5, interval=0.05, what="/readyz answers 503")
        reason = (await client.get("/readyz")).json()["reason"]
        assert "not acknowledged" in reason, reason

        gated.gate.set()
        assert (await waiting).status_code == 202
        assert (await client.get("/readyz")).status_code == 200
