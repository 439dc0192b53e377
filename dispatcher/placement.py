"""Where a partition starts reading when its committed offset cannot be used.

The consumer runs with ``auto.offset.reset=error``, so librdkafka never picks a start on its
own: it reports the partition, and this module decides (``decide_start``, pure) and says so:

* a brand-new group (nothing committed, nothing fetched) starts where ``start_from`` says;
* a committed offset that fell out of retention resumes at the earliest retained event, with
  an ERROR line and a count of the events lost to retention (never a silent jump to the end);
* a committed offset beyond the end of the partition (the topic was deleted and created again)
  resumes at the earliest retained event too: they are all newer than what was delivered;
* a position still retained (librdkafka reported it out of range, and the broker disagrees by
  the time we ask) resumes right there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END

from dispatcher.lookups import Lookups, ask_until_answered
from dispatcher.metrics import DeliveryMetrics
from dispatcher.partitions import Partitions

__all__ = ["Placement", "Start", "decide_start"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Start:
    """Where to read from, and why."""

    offset: int
    """An offset, or librdkafka's ``OFFSET_BEGINNING`` / ``OFFSET_END``."""
    why: Literal["new group", "lost to retention", "beyond the end", "still retained"]
    lost: int = 0
    """Events deleted by retention before this group finished them."""


def decide_start(
    *,
    committed: int | None,
    fetched: int | None,
    low: int,
    high: int,
    start_from: Literal["earliest", "latest"],
) -> Start:
    """Where a partition reads from, given the group's ``committed`` offset, the first
    unfinished offset ``fetched`` under this assignment (if any), and the partition's
    ``low``/``high`` watermarks."""
    if committed is None and fetched is None:
        return Start(OFFSET_BEGINNING if start_from == "earliest" else OFFSET_END, "new group")
    position = max(committed or 0, fetched or 0)
    if position > high:
        return Start(OFFSET_BEGINNING, "beyond the end")
    if position >= low:
        return Start(position, "still retained")
    return Start(OFFSET_BEGINNING, "lost to retention", lost=low - position)


class Placement:
    """Decides, for one worker, where its partitions without a usable offset start."""

    def __init__(
        self,
        *,
        name: str,
        topic: str,
        group_id: str,
        start_from: Literal["earliest", "latest"],
        lookups: Lookups,
        partitions: Partitions,
        metrics: DeliveryMetrics,
    ) -> None:
        self._name = name
        self._topic = topic
        self._group_id = group_id
        self._start_from = start_from
        self._lookups = lookups
        self._partitions = partitions
        self._metrics = metrics

    async def start_of(self, partition: int, epoch: int) -> int | None:
        """The offset ``partition`` starts at under assignment ``epoch``; ``None`` once it
        is no longer assigned so."""

        async def lookup() -> tuple[int | None, tuple[int, int]]:
            committed = await self._lookups.committed(self._topic, partition)
            return committed.offset, await self._lookups.watermarks(self._topic, partition)

        found = await ask_until_answered(
            lookup,
            still_wanted=lambda: self._partitions.current(partition, epoch) is not None,
            what="start offset", name=self._name, partition=partition,
        )  # fmt: skip
        state = self._partitions.current(partition, epoch)
        if found is None or state is None:
            return None
        committed, (low, high) = found
        start = decide_start(
            committed=committed, fetched=state.offsets.committable(), low=low, high=high,
            start_from=self._start_from,
        )  # fmt: skip
        if start.why == "new group":
            log.debug(  # once per partition: the assignment line already said it
                "new consumer group starts destination=%s partition=%d start_from=%s",
                self._name, partition, self._start_from,
            )  # fmt: skip
        elif start.why == "still retained":
            log.warning(
                "offset reported out of range is retained destination=%s partition=%d "
                "position=%d earliest=%d end=%d; resuming there",
                self._name, partition, start.offset, low, high,
            )  # fmt: skip
        elif start.why == "beyond the end":
            log.error(
                "committed offset beyond the end destination=%s partition=%d committed=%s "
                "end=%d; the topic was created again? resuming at the earliest retained event",
                self._name, partition, committed, high,
            )  # fmt: skip
        else:
            log.error(
                "events lost to retention destination=%s partition=%d committed=%s "
                "earliest_retained=%d lost=%d; resuming at the earliest retained event",
                self._name, partition, committed, low, start.lost,
            )  # fmt: skip
            self._metrics.lost_to_retention(self._name, start.lost)
        return start.offset
