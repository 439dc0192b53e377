"""A worker's side of its consumer group's rebalances (cooperative-sticky).

The callbacks run inside ``consume()``, on the loop thread:

* **assigned**: each new partition gets a fresh epoch and starts recovering its parked users
  before any of its live events may be delivered;
* **revoked**: its finished offsets are committed synchronously (later, the commit would be
  refused), then everything about it is dropped, deliveries in flight cancelled;
* **lost** (the group moved on without us): dropped *without* a commit, since another member
  may own it already and a commit could move its offsets back.

Abandoned events are redelivered by the partition's next owner: at-least-once, in order.
"""

from __future__ import annotations

import logging

from confluent_kafka import Consumer, TopicPartition

from dispatcher.buffer import Buffer
from dispatcher.chores import Chores
from dispatcher.commits import Committer
from dispatcher.deliveries import Deliveries
from dispatcher.fetching import Fetcher
from dispatcher.parking import ParkBook
from dispatcher.partitions import Partitions
from dispatcher.recovery import ParkRecovery
from dispatcher.replayer import Replayer

__all__ = ["Rebalance"]

log = logging.getLogger(__name__)


class Rebalance:
    """The rebalance callbacks of one worker's consumer, and dropping a partition."""

    def __init__(
        self,
        *,
        name: str,
        committer: Committer,
        partitions: Partitions,
        buffer: Buffer,
        deliveries: Deliveries,
        fetcher: Fetcher,
        recovery: ParkRecovery,
        book: ParkBook,
        replayer: Replayer,
        chores: Chores,
    ) -> None:
        self._name = name
        self._committer = committer
        self._partitions = partitions
        self._buffer = buffer
        self._deliveries = deliveries
        self._fetcher = fetcher
        self._recovery = recovery
        self._book = book
        self._replayer = replayer
        self._chores = chores
        self.closing = False
        """Set when shutdown begins: from then on the callbacks find nothing to do, including
        those ``close()`` serves on its own thread (shutdown settles every partition itself)."""

    def on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self.closing:
            return
        for tp in partitions:
            state = self._partitions.assign(tp.partition)
            self._chores.spawn(
                self._recovery.recover(tp.partition, state.epoch), interruptible=True
            )
        log.info(
            "partitions assigned destination=%s partitions=%s",
            self._name, ",".join(str(tp.partition) for tp in partitions) or "-",
        )  # fmt: skip

    def on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self.closing:
            return
        revoked = {tp.partition for tp in partitions}
        self._committer.commit(consumer, asynchronous=False, only=revoked)
        self.abandon(revoked)
        log.info(
            "partitions revoked destination=%s partitions=%s",
            self._name, ",".join(str(p) for p in sorted(revoked)) or "-",
        )  # fmt: skip

    def on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self.closing:
            return
        lost = {tp.partition for tp in partitions}
        self.abandon(lost)
        log.warning(
            "partitions lost destination=%s partitions=%s",
            self._name, ",".join(str(p) for p in sorted(lost)) or "-",
        )  # fmt: skip

    def abandon(self, partitions: set[int]) -> None:
        """Forget everything about ``partitions``: queued, held and in-flight events, their
        offsets, parked users and replays. Their next owner starts from the commit."""
        states = [s for p in partitions if (s := self._partitions.get(p)) is not None]
        self._buffer.drop(partitions, states)
        self._deliveries.abandon(partitions)
        for partition in partitions:
            self._partitions.drop(partition)
            self._book.drop_partition(partition)
            self._replayer.drop(partition)
            self._fetcher.forget(partition)
            self._recovery.forget(partition)
