"""The park writer makes its topic once, before the first record, however many write at once."""

from __future__ import annotations

import asyncio
from typing import cast

from dispatcher.park_store import ParkWriter
from eventlog.producer import AsyncProducer
from tests.dispatcher.fake_kafka import FakeCluster, FakeProducer


async def test_the_topic_is_made_once_before_the_first_record() -> None:
    cluster = FakeCluster(partitions=2)
    made: list[int] = []

    async def make_topic() -> None:
        await asyncio.sleep(0.01)  # Kafka taking its time: the other writers must wait
        made.append(len(cluster.topic("park")[0]) + len(cluster.topic("park")[1]))

    writer = ParkWriter(cast(AsyncProducer, FakeProducer(cluster)), "park", prepare=make_topic)
    await asyncio.gather(*(writer.release(n % 2, f"u{n}", n) for n in range(5)))
    await writer.release(0, "late", 9)
    assert made == [0]  # once, and before any record was written
    assert sum(len(log) for log in cluster.topic("park")) == 6
