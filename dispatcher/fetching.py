"""Fetching for one worker: which partitions fetch, and what becomes of each fetched record.

Every turn of the fetch loop recomputes the partitions that must not fetch (``flow``:
backpressure, the breaker, recovery) and pauses or resumes the difference, then takes what
the consumer has without waiting. A record becomes a job in the buffer (held while its
partition recovers). A partition librdkafka cannot place (no usable committed offset, since
the consumer runs with ``auto.offset.reset=error``) is placed here, where ``placement``
decides.
"""

from __future__ import annotations

import logging

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from dispatcher.buffer import Buffer
from dispatcher.chores import Chores
from dispatcher.flow import Backpressure, Shares, frees_fetching, paused_partitions
from dispatcher.gate import DestinationGate
from dispatcher.jobs import job_from_message
from dispatcher.manifest import DestinationSpec
from dispatcher.partitions import Partitions
from dispatcher.pipeline import Pipeline
from dispatcher.placement import Placement

__all__ = ["FETCH_BATCH", "Fetcher"]

log = logging.getLogger(__name__)

FETCH_BATCH = 500
"""Most records taken from the consumer in one turn of the fetch loop."""
SIZE_HINT = 64 * 1024
"""What a record is assumed to weigh until one was fetched (librdkafka's chunk per partition
here, ``max.partition.fetch.bytes``): the first turn takes few if the byte bound is small."""


class Fetcher:
    """One worker's fetching (see the module docstring)."""

    def __init__(
        self,
        *,
        name: str,
        topic: str,
        spec: DestinationSpec,
        partitions: Partitions,
        buffer: Buffer,
        gate: DestinationGate,
        pipeline: Pipeline,
        placement: Placement,
        chores: Chores,
    ) -> None:
        self._name = name
        self._topic = topic
        self._max_buffered = spec.max_buffered
        self._max_bytes = spec.max_buffered_bytes
        self._size_hint = SIZE_HINT
        self._backpressure = Backpressure(spec.max_buffered, spec.max_buffered_bytes)
        self._shares = Shares(spec.max_buffered)
        self._partitions = partitions
        self._buffer = buffer
        self._gate = gate
        self._pipeline = pipeline
        self._placement = placement
        self._chores = chores
        self.paused: set[int] = set()
        """The partitions paused on the consumer now."""

    def apply_flow(self, consumer: Consumer) -> None:
        """Pause and resume partitions so exactly those ``flow`` says fetch."""
        buffer, assigned = self._buffer, self._partitions.numbers()
        full = self._backpressure.update(buffer.count, buffer.bytes)
        wanted = paused_partitions(
            assigned=assigned, full=full,
            crowded=self._shares.update(buffer.per_partition, assigned),
            breaker_holds=self._breaker_holds, buffered_in=buffer.partitions_with_work(),
            recovering=self._partitions.recovering(),
        )  # fmt: skip
        if wanted == self.paused:
            return
        pause, resume = wanted - self.paused, self.paused - wanted
        if pause:
            consumer.pause([TopicPartition(self._topic, p) for p in pause])
        if resume:
            resumed = [TopicPartition(self._topic, p) for p in resume]
            consumer.resume(resumed)
            self._refetch(consumer, resumed)
        self.paused = wanted

    @property
    def _breaker_holds(self) -> bool:
        """The breaker stops fetching (not while the retention guard evacuates)."""
        return not self._gate.closed and not self._pipeline.evacuated

    def worth_a_turn(self, partition: int) -> bool:
        """Whether an event of ``partition`` leaving the buffer may let the fetch loop fetch
        more (``flow.frees_fetching``); always while the breaker holds partitions, which an
        emptied partition leaves."""
        if self._breaker_holds:
            return True
        buffer = self._buffer
        return frees_fetching(
            self._backpressure, self._shares, events=buffer.count, size=buffer.bytes,
            partition=partition, held=buffer.per_partition.get(partition, 0),
            partitions=len(self._partitions),
        )  # fmt: skip

    def _refetch(self, consumer: Consumer, resumed: list[TopicPartition]) -> None:
        """Fetch resumed partitions now. librdkafka wakes its fetcher for a resumed partition
        only on its next round, up to a second later once every partition was paused (seen
        with librdkafka 2.16: every resume after a 50 ms pause waited 0.95 s, starving the
        buffer); a seek to where the partition stands starts the fetch at once. Where
        nothing was consumed yet the position is unknown, and nothing is seeked."""
        for tp in consumer.position(resumed):
            if tp.offset >= 0:
                consumer.seek(tp)

    def fetch(self, consumer: Consumer) -> int:
        """Take what the consumer has fetched, without waiting; how many records."""
        # At most one partition's share at a time: records come a partition at a time. And
        # no more than the byte bound has room for, at the size of the largest recent record.
        share = self._shares.share(len(self._partitions))
        fits = (self._max_bytes - self._buffer.bytes) // self._size_hint
        room = min(self._max_buffered - self._buffer.count, share, FETCH_BATCH, fits)
        messages = consumer.consume(num_messages=max(1, room), timeout=0)
        largest = 0
        for message in messages:
            if (size := self._accept(consumer, message)) > largest:
                largest = size
        if largest:
            self._size_hint = largest
        return len(messages)

    def forget(self, partition: int) -> None:
        """The partition is no longer assigned."""
        self.paused.discard(partition)

    def _accept(self, consumer: Consumer, message: Message) -> int:
        """Buffer a fetched record; what it weighs (0 for none)."""
        error = message.error()
        if error is not None:
            self._on_error(consumer, error, message)
            return 0
        partition = message.partition()
        assert partition is not None
        state = self._partitions.get(partition)
        if state is None:  # fetched just before a revocation took the partition away
            return 0
        job = job_from_message(message, state.epoch)
        state.add(job)
        if state.recovering:
            self._buffer.hold(state, job)
        else:
            self._buffer.push(job)
        return job.size

    def _on_error(self, consumer: Consumer, error: KafkaError, message: Message) -> None:
        if error.fatal():
            raise KafkaException(error)
        partition = message.partition()
        if error.code() == KafkaError._AUTO_OFFSET_RESET and partition is not None:
            state = self._partitions.get(partition)
            if state is not None:
                self._chores.spawn(
                    self._place(consumer, partition, state.epoch), interruptible=True
                )
            return
        log.warning("consumer error destination=%s error=%s", self._name, error.str())

    async def _place(self, consumer: Consumer, partition: int, epoch: int) -> None:
        start = await self._placement.start_of(partition, epoch)
        if start is None or self._partitions.current(partition, epoch) is None:
            return
        tp = TopicPartition(self._topic, partition)
        consumer.incremental_unassign([tp])
        consumer.incremental_assign([TopicPartition(self._topic, partition, start)])
        # Whether librdkafka keeps a pause across the re-assignment is its business: pause it
        # explicitly, so the next turn of the fetch loop resumes it exactly when flow says.
        consumer.pause([tp])
        self.paused.add(partition)
