"""A small in-memory stand-in for the Kafka a worker talks to: topics, one consumer, a producer.

Enough of confluent-kafka's behaviour for the worker's bookkeeping to be tested without a
broker: ``subscribe`` with assign/revoke/lost callbacks served from ``consume`` (as librdkafka
serves them), ``pause``/``resume``, incremental assign/unassign with explicit offsets, commits
with metadata (asynchronous ones reported on the next ``consume``), watermarks, and
``auto.offset.reset=error`` (a partition without a committed offset yields an
``_AUTO_OFFSET_RESET`` error until it is positioned). The test drives the group: ``assign``,
``revoke`` and ``lose`` schedule rebalances that the next ``consume`` delivers.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    OFFSET_INVALID,
    TIMESTAMP_CREATE_TIME,
    KafkaError,
    KafkaException,
    TopicPartition,
)

from dispatcher.lookups import Committed, NoSuchTopic
from eventlog.producer import Delivered, ProduceError
from eventlog.record import Event, Headers, encode

__all__ = [
    "FakeCluster", "FakeConsumer", "FakeLookups", "FakeMessage", "FakeProducer", "FakeReader",
]  # fmt: skip


@dataclass
class FakeMessage:
    _topic: str
    _partition: int | None
    _offset: int | None
    _key: bytes | None = None
    _value: bytes | None = None
    _headers: Headers = field(default_factory=list)
    _timestamp: int = 0
    _error: KafkaError | None = None

    def error(self) -> KafkaError | None:
        return self._error

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int | None:
        return self._partition

    def offset(self) -> int | None:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> Headers:
        return list(self._headers)

    def timestamp(self) -> tuple[int, int]:
        return TIMESTAMP_CREATE_TIME, self._timestamp


@dataclass
class FakeCluster:
    """Topics as lists of records per partition, and each group's committed offsets."""

    partitions: int = 4
    topics: dict[str, list[list[FakeMessage]]] = field(default_factory=dict)
    committed: dict[tuple[str, str, int], tuple[int, str | None]] = field(default_factory=dict)
    commit_log: list[tuple[str, int, int]] = field(default_factory=list)
    """Every commit sent: (group, partition, offset), in order."""
    clock_ms: Callable[[], int] = lambda: 1_000_000
    low: dict[tuple[str, int], int] = field(default_factory=dict)
    """Offsets below these were deleted by retention."""
    answering: threading.Event = field(default_factory=threading.Event)
    """Cleared by ``hold_answers``: questions about offsets (committed, watermarks) wait for
    the broker until ``release_answers``."""
    missing: set[str] = field(default_factory=set)
    """Topics that do not exist yet: lookups say so (``NoSuchTopic``) until ``make``."""

    def __post_init__(self) -> None:
        self.answering.set()

    def hold_answers(self) -> None:
        self.answering.clear()

    def release_answers(self) -> None:
        self.answering.set()

    def await_answer(self, timeout: float) -> None:
        """What a blocking lookup does while the broker takes its time."""
        if not self.answering.wait(timeout if timeout >= 0 else None):
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "lookup timed out (fake)"))

    def make(self, name: str) -> None:
        self.missing.discard(name)

    def topic(self, name: str) -> list[list[FakeMessage]]:
        return self.topics.setdefault(name, [[] for _ in range(self.partitions)])

    def append(
        self,
        topic: str,
        partition: int,
        *,
        key: bytes | None,
        value: bytes | None,
        headers: Headers,
        timestamp: int | None = None,
    ) -> int:
        log = self.topic(topic)[partition]
        offset = len(log)
        stamp = self.clock_ms() if timestamp is None else timestamp
        log.append(FakeMessage(topic, partition, offset, key, value, list(headers), stamp))
        return offset

    def send_event(self, topic: str, partition: int, user: str, payload: str) -> int:
        """An event as ingest writes it (its id is ``<user>/<payload>``)."""
        event = Event(id=f"{user}/{payload}", user_id=user, payload=payload,
                      received_at_ms=self.clock_ms())  # fmt: skip
        key, value, headers = encode(event)
        return self.append(topic, partition, key=key, value=value, headers=headers)


class FakeConsumer:
    """One group member (see the module docstring)."""

    def __init__(self, cluster: FakeCluster, config: dict[str, Any]) -> None:
        self.cluster = cluster
        self.group = str(config["group.id"])
        self._reset = str(config.get("auto.offset.reset", "earliest"))
        self._on_commit = config.get("on_commit")
        self._topic = ""
        self._callbacks: dict[str, Callable[..., None]] = {}
        self._positions: dict[int, int | None] = {}
        """Assigned partitions -> next offset to fetch (``None``: awaiting positioning)."""
        self._fresh: set[int] = set()
        self.paused: set[int] = set()
        self._pending: list[tuple[str, list[int]]] = []
        self._commit_reports: list[tuple[KafkaError | None, list[TopicPartition]]] = []
        self.closed = False
        self.calls = 0
        self.unanswered_async_commits = False
        """Asynchronous commits are sent but never reach the coordinator nor report back, as
        with one still in flight when the consumer closes."""
        self.unanswered_commits: list[list[TopicPartition]] = []
        self.seeks: list[tuple[int, int]] = []
        self.fetch_on_assign = False
        """A just-assigned partition's records come with the very call that assigned it, as
        librdkafka's may: before the worker had a turn to pause it."""
        self._handle = threading.Lock()
        """As with librdkafka (seen with confluent-kafka 2.16), a blocking lookup waiting for
        the broker holds up ``consume`` on the same handle, even with ``timeout=0``."""

    # -- what the test drives ----------------------------------------------------------

    def assign(self, partitions: list[int]) -> None:
        self._pending.append(("assign", partitions))

    def revoke(self, partitions: list[int]) -> None:
        self._pending.append(("revoke", partitions))

    def lose(self, partitions: list[int]) -> None:
        self._pending.append(("lost", partitions))

    @property
    def assigned(self) -> set[int]:
        return set(self._positions)

    # -- the confluent-kafka surface the worker uses -------------------------------------

    def subscribe(self, topics: list[str], **callbacks: Callable[..., None]) -> None:
        self._topic = topics[0]
        self._callbacks = callbacks

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[FakeMessage]:
        with self._handle:
            return self._consume(num_messages)

    def _consume(self, num_messages: int) -> list[FakeMessage]:
        for error, offsets in self._commit_reports:
            if self._on_commit is not None:
                self._on_commit(error, offsets)
        self._commit_reports.clear()
        self._fresh.clear()
        while self._pending:
            kind, partitions = self._pending.pop(0)
            self._rebalance(kind, partitions)
        out: list[FakeMessage] = []
        log = self.cluster.topic(self._topic)
        for partition in sorted(self._positions):
            if partition in self._fresh and not self.fetch_on_assign:
                continue  # a just-assigned partition fetches from the next call on
            position = self._positions[partition]
            if position is None:
                # librdkafka looks the start offset up even for a paused partition.
                if self._reset == "error":
                    out.append(self._reset_error(partition))
                    self._positions[partition] = -1  # reported once, until positioned
                continue
            if partition in self.paused:
                continue
            if position < 0:
                continue
            if position < self.cluster.low.get((self._topic, partition), 0):
                out.append(self._reset_error(partition, "offset out of range"))
                self._positions[partition] = -1
                continue
            while position < len(log[partition]) and len(out) < num_messages:
                out.append(log[partition][position])
                position += 1
            self._positions[partition] = position
        self.calls += 1
        return out

    def _reset_error(
        self, partition: int, why: str = "no previously committed offset"
    ) -> FakeMessage:
        error = KafkaError(KafkaError._AUTO_OFFSET_RESET, why)
        return FakeMessage(self._topic, partition, None, _error=error)

    def _rebalance(self, kind: str, partitions: list[int]) -> None:
        tps = [TopicPartition(self._topic, p) for p in partitions]
        if kind == "assign":
            for p in partitions:
                committed = self.cluster.committed.get((self.group, self._topic, p))
                self._positions[p] = committed[0] if committed else None
                self._fresh.add(p)
            self._callbacks["on_assign"](self, tps)
            return
        self._callbacks["on_revoke" if kind == "revoke" else "on_lost"](self, tps)
        for p in partitions:
            self._positions.pop(p, None)
            self.paused.discard(p)

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(self._topic, p) for p in sorted(self._positions)]

    def pause(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.paused.add(tp.partition)

    def resume(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.paused.discard(tp.partition)

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        """Where each partition fetches next (``OFFSET_INVALID`` before it is placed)."""
        out = []
        for tp in partitions:
            position = self._positions.get(tp.partition)
            offset = position if position is not None and position >= 0 else OFFSET_INVALID
            out.append(TopicPartition(tp.topic, tp.partition, offset))
        return out

    def seek(self, partition: TopicPartition) -> None:
        if partition.partition not in self._positions:
            raise KafkaException(KafkaError(KafkaError._STATE, "seek of an unassigned partition"))
        self.seeks.append((partition.partition, partition.offset))
        self._positions[partition.partition] = partition.offset

    def incremental_unassign(self, partitions: list[TopicPartition]) -> None:
        # Like librdkafka, a pause outlives an unassign/assign of the same partition: the
        # pause flag is on the partition's object, which the assignment does not replace.
        for tp in partitions:
            self._positions.pop(tp.partition, None)

    def incremental_assign(self, partitions: list[TopicPartition]) -> None:
        log = self.cluster.topic(self._topic)
        for tp in partitions:
            offset = tp.offset
            if offset == OFFSET_BEGINNING:
                offset = self.cluster.low.get((self._topic, tp.partition), 0)
            elif offset == OFFSET_END:
                offset = len(log[tp.partition])
            self._positions[tp.partition] = offset

    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool = True) -> None:
        if asynchronous and self.unanswered_async_commits:
            self.unanswered_commits.append(offsets)
            return
        for tp in offsets:
            if tp.partition not in self._positions:
                raise AssertionError(f"commit of partition {tp.partition}, which is not assigned")
            self.cluster.committed[self.group, self._topic, tp.partition] = (tp.offset, tp.metadata)
            self.cluster.commit_log.append((self.group, tp.partition, tp.offset))
        if asynchronous:
            self._commit_reports.append((None, offsets))

    def committed(
        self, partitions: list[TopicPartition], timeout: float = -1
    ) -> list[TopicPartition]:
        with self._handle:
            self.cluster.await_answer(timeout)
        out = []
        for tp in partitions:
            offset, metadata = self.cluster.committed.get(
                (self.group, tp.topic, tp.partition), (OFFSET_INVALID, None)
            )
            if metadata is None:
                out.append(TopicPartition(tp.topic, tp.partition, offset))
            else:
                out.append(TopicPartition(tp.topic, tp.partition, offset, metadata=metadata))
        return out

    def get_watermark_offsets(
        self, tp: TopicPartition, timeout: float = -1, cached: bool = False
    ) -> tuple[int, int]:
        if not cached:
            with self._handle:
                self.cluster.await_answer(timeout)
        low = self.cluster.low.get((tp.topic, tp.partition), 0)
        return low, len(self.cluster.topic(tp.topic)[tp.partition])

    def close(self) -> None:
        # librdkafka serves what the group coordinator sent meanwhile from close() too, on
        # the closing thread: an assignment may arrive just as the consumer leaves.
        while self._pending:
            kind, partitions = self._pending.pop(0)
            self._rebalance(kind, partitions)
        if self._positions:
            self._callbacks["on_revoke"](self, self.assignment())
        self._positions.clear()
        self.closed = True


class FakeLookups:
    """``dispatcher.lookups.Lookups`` of one group over the fake cluster: an answer waits while
    the cluster holds answers; the next ``failing`` lookups fail as with a broker restarting,
    and ``unknown`` more say the topic is unknown (as a restarting broker's stale metadata
    can: ``ConsumerLookups`` raises ``NoSuchTopic`` only once fresh metadata confirms it)."""

    def __init__(self, cluster: FakeCluster, group: str) -> None:
        self.cluster = cluster
        self.group = group
        self.failing = 0
        self.unknown = 0
        self.closed = False

    async def committed(self, topic: str, partition: int) -> Committed:
        await self._answer()
        found = self.cluster.committed.get((self.group, topic, partition))
        return Committed(None, None) if found is None else Committed(*found)

    async def watermarks(self, topic: str, partition: int) -> tuple[int, int]:
        await self._answer()
        if topic in self.cluster.missing:
            raise NoSuchTopic(topic)
        low = self.cluster.low.get((topic, partition), 0)
        return low, len(self.cluster.topic(topic)[partition])

    async def close(self) -> None:
        self.closed = True

    async def _answer(self) -> None:
        if self.failing > 0:
            self.failing -= 1
            raise KafkaException(KafkaError(KafkaError._TRANSPORT, "broker restarting (fake)"))
        if self.unknown > 0:
            self.unknown -= 1
            raise KafkaException(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART, "unknown (fake)"))
        if not self.cluster.answering.is_set():
            await asyncio.to_thread(self.cluster.answering.wait)


class FakeReader:
    """The park reader over a fake park topic (assign mode, end-of-partition events)."""

    def __init__(self, cluster: FakeCluster, topic: str) -> None:
        self.cluster = cluster
        self.topic = topic
        self._positions: dict[int, int] = {}
        self._eof_sent: set[int] = set()

    def assign(self, partition: int, offset: int | None) -> None:
        self._positions[partition] = offset or 0
        self._eof_sent.discard(partition)

    def unassign(self, partition: int) -> None:
        self._positions.pop(partition, None)

    def poll(self, limit: int = 500, timeout: float = 0) -> list[FakeMessage]:
        out: list[FakeMessage] = []
        log = self.cluster.topic(self.topic)
        for partition, start in list(self._positions.items()):
            position = start
            while position < len(log[partition]) and len(out) < limit:
                out.append(log[partition][position])
                position += 1
                self._eof_sent.discard(partition)
            self._positions[partition] = position
            if position >= len(log[partition]) and partition not in self._eof_sent:
                self._eof_sent.add(partition)
                eof = KafkaError(KafkaError._PARTITION_EOF)
                out.append(FakeMessage(self.topic, partition, position, _error=eof))
        return out

    def close(self) -> None:
        self._positions.clear()


class FakeProducer:
    """``AsyncProducer.produce`` into the fake cluster; ``refuse`` makes a topic fail."""

    def __init__(self, cluster: FakeCluster) -> None:
        self.cluster = cluster
        self.refuse: dict[str, ProduceError] = {}
        self.failures_left: dict[str, int] = {}

    async def produce(
        self,
        topic: str,
        *,
        key: bytes,
        value: bytes | None,
        headers: Headers | None = None,
        partition: int | None = None,
    ) -> Delivered:
        if topic in self.refuse:
            raise self.refuse[topic]
        if self.failures_left.get(topic, 0) > 0:
            self.failures_left[topic] -= 1
            raise ProduceError("broker not available (fake)", retriable=True)
        number = partition if partition is not None else 0
        offset = self.cluster.append(topic, number, key=key, value=value, headers=headers or [])
        return Delivered(topic, number, offset)
