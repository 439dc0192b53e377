"""Reading the park partitions the workers of one process own, through one consumer.

Each worker reads its park partitions first from the checkpoint to the end (recovery), then
on (replay requests from ``dispatcher replay``). One consumer per worker would be simplest, but
confluent-kafka gives every client a thread-local key of its own, and a process has about
1,000 of them (``PTHREAD_KEYS_MAX``): hundreds of destinations, each with its group's consumer,
leave no room for a second client each (``dispatcher.manifest.MAX_DESTINATIONS``). So one
consumer *without* group membership (``assign``, never ``subscribe``) reads every park topic of
the process; what it fetches is sorted into one inbox per topic, and each worker's
``ParkReader`` takes from its own.

The consumer is made on the first ``assign`` (a shard that never parked anyone has none) and
closed when the last reader is. A topic whose inbox grows past ``INBOX_HIGH`` (its worker
lagging behind what others' polls fetched) is paused until its worker drained it to
``INBOX_LOW``.
"""

from __future__ import annotations

import threading
import uuid
from collections import deque
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from eventlog.clients import consumer_config

__all__ = ["ParkReader", "ParkReaders"]

INBOX_HIGH = 5000
"""Messages waiting for one topic's worker above which its partitions are paused."""
INBOX_LOW = 1000
"""...and at or below which they are resumed."""


class ParkReaders:
    """The process's park consumer, shared by every worker's ``ParkReader``."""

    def __init__(self, bootstrap_servers: str, **overrides: Any) -> None:
        config = consumer_config(bootstrap_servers, f"park-reader-{uuid.uuid4().hex}")
        config.update({"auto.offset.reset": "earliest", "enable.partition.eof": True})
        config.update(overrides)
        self._config = config
        self._lock = threading.Lock()
        self._consumer: Consumer | None = None
        self._inboxes: dict[str, deque[Message]] = {}
        self._assigned: dict[str, set[int]] = {}
        self._paused: set[str] = set()

    def reader(self, topic: str) -> ParkReader:
        """A reader of ``topic`` (one per topic at a time)."""
        with self._lock:
            if topic in self._inboxes:
                raise ValueError(f"{topic} already has a reader")
            self._inboxes[topic] = deque()
            self._assigned[topic] = set()
        return ParkReader(self, topic)

    @property
    def open(self) -> bool:
        """Whether the shared consumer exists now."""
        return self._consumer is not None

    def assign(self, topic: str, partition: int, offset: int | None) -> None:
        """Read ``topic``'s ``partition`` from ``offset`` (``None``: its beginning)."""
        start = OFFSET_BEGINNING if offset is None else offset
        with self._lock:
            if self._consumer is None:
                self._consumer = Consumer(self._config)
            self._consumer.incremental_assign([TopicPartition(topic, partition, start)])
            self._assigned[topic].add(partition)
            if topic in self._paused:
                self._consumer.pause([TopicPartition(topic, partition)])

    def unassign(self, topic: str, partition: int) -> None:
        """Stop reading ``topic``'s ``partition``; what was fetched of it is dropped."""
        with self._lock:
            assigned = self._assigned.get(topic)
            if assigned is None or partition not in assigned or self._consumer is None:
                return
            assigned.discard(partition)
            self._consumer.incremental_unassign([TopicPartition(topic, partition)])
            inbox = self._inboxes[topic]
            kept = [m for m in inbox if m.partition() != partition]
            inbox.clear()
            inbox.extend(kept)

    def poll(self, topic: str, limit: int) -> list[Message]:
        """Up to ``limit`` messages of ``topic`` fetched so far, fetching more (without
        waiting) when none are left."""
        with self._lock:
            inbox = self._inboxes.get(topic)
            if inbox is None or self._consumer is None:
                return []
            if not inbox and self._assigned[topic]:
                self._fetch(limit)
            taken = [inbox.popleft() for _ in range(min(limit, len(inbox)))]
            if topic in self._paused and len(inbox) <= INBOX_LOW:
                self._paused.discard(topic)
                self._consumer.resume(self._partitions(topic))
            return taken

    def _fetch(self, limit: int) -> None:
        """Whatever the consumer has now, each message into its topic's inbox."""
        assert self._consumer is not None
        for message in self._consumer.consume(num_messages=limit, timeout=0):
            inbox = self._inboxes.get(message.topic() or "")
            if inbox is None:
                continue  # a client-wide error, or a topic released meanwhile
            inbox.append(message)
        for topic, inbox in self._inboxes.items():
            if len(inbox) > INBOX_HIGH and topic not in self._paused:
                self._paused.add(topic)
                self._consumer.pause(self._partitions(topic))

    def _partitions(self, topic: str) -> list[TopicPartition]:
        return [TopicPartition(topic, p) for p in sorted(self._assigned.get(topic, ()))]

    def release(self, topic: str) -> None:
        """``topic``'s reader is done; the consumer closes with the last one (blocking, but
        outside the lock: the other readers' releases need not wait for it)."""
        with self._lock:
            partitions = self._partitions(topic)
            self._inboxes.pop(topic, None)
            self._assigned.pop(topic, None)
            self._paused.discard(topic)
            consumer = self._consumer
            if consumer is None:
                return
            if self._inboxes:
                if partitions:
                    consumer.incremental_unassign(partitions)
                return
            self._consumer = None
        consumer.close()


class ParkReader:
    """One worker's view of the shared park consumer: its own park topic only."""

    def __init__(self, readers: ParkReaders, topic: str) -> None:
        self.topic = topic
        self._readers = readers

    def assign(self, partition: int, offset: int | None) -> None:
        """Read ``partition`` from ``offset`` (``None``: from its beginning)."""
        self._readers.assign(self.topic, partition, offset)

    def unassign(self, partition: int) -> None:
        self._readers.unassign(self.topic, partition)

    def poll(self, limit: int = 500) -> list[Message]:
        """What arrived, without waiting (safe to call from the event loop)."""
        return self._readers.poll(self.topic, limit)

    def close(self) -> None:
        self._readers.release(self.topic)
