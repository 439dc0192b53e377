"""How far behind a destination is: lag per partition, and the age of its oldest unfinished
event against the events topic's retention (the retention guard's yardstick)."""

from __future__ import annotations

import asyncio
import contextlib
import time

from confluent_kafka import Consumer, KafkaException, TopicPartition

from dispatcher.lookups import Lookups, NoSuchTopic
from dispatcher.metrics import DeliveryMetrics
from dispatcher.partitions import Partitions

__all__ = ["Progress"]


class Progress:
    """Reports one worker's lag and oldest unfinished age (called from the periodic task)."""

    def __init__(
        self,
        *,
        name: str,
        topic: str,
        group_id: str,
        partitions: Partitions,
        lookups: Lookups,
        metrics: DeliveryMetrics,
        starts_at_earliest: bool,
        retention_ms: int | None,
    ) -> None:
        self._name = name
        self._topic = topic
        self._group_id = group_id
        self._partitions = partitions
        self._lookups = lookups
        self._metrics = metrics
        self._starts_at_earliest = starts_at_earliest
        self._retention_ms = retention_ms
        self.oldest_age = 0.0
        metrics.watch("oldest_unfinished_age", name, lambda: self.oldest_age)
        metrics.watch("retention_used", name, self.retention_used)

    def retention_used(self) -> float:
        if not self._retention_ms:
            return 0.0
        return self.oldest_age * 1000 / self._retention_ms

    async def report(self, consumer: Consumer) -> None:
        """Per partition: events on the topic not finished here yet (high watermark minus the
        first unfinished offset, or minus the group's committed offset before any fetch)."""
        await self._learn_committed()
        lags: dict[int, int] = {}
        oldest: int | None = None
        for partition, state in self._partitions.items():
            # Cached watermarks come with every fetch response: no extra request.
            low, high = consumer.get_watermark_offsets(
                TopicPartition(self._topic, partition), cached=True
            )
            unfinished = state.offsets.committable()
            if unfinished is None:
                unfinished = state.committed
            if unfinished is None:  # the group never committed here
                unfinished = low if self._starts_at_earliest else high
            if high >= 0 and unfinished >= 0:
                lags[partition] = max(0, high - unfinished)
            stamp = state.oldest_unfinished_ms()
            if stamp:
                oldest = stamp if oldest is None else min(oldest, stamp)
        self._metrics.set_lag(self._name, lags)
        self.oldest_age = max(0.0, time.time() - oldest / 1000) if oldest else 0.0

    async def _learn_committed(self) -> None:
        unknown = [
            p
            for p, state in self._partitions.items()
            if state.offsets.committable() is None
            and state.committed is None
            and not state.asked_committed
        ]
        for partition in unknown:
            if (state := self._partitions.get(partition)) is not None:
                state.asked_committed = True
        if not unknown:
            return
        lookups = [self._lookups.committed(self._topic, p) for p in unknown]
        with contextlib.suppress(TimeoutError, KafkaException, NoSuchTopic):
            async with asyncio.timeout(5):
                found = await asyncio.gather(*lookups)
            for partition, committed in zip(unknown, found, strict=True):
                state = self._partitions.get(partition)
                if state is not None and state.committed is None and committed.offset is not None:
                    state.committed = committed.offset
