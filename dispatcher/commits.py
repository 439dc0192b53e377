"""Committing a destination's progress: never past an unfinished event, with the park's
checkpoint beside it.

Per partition the committed offset is the lowest unfinished one (Kafka's "next offset to
read"), so everything below it was delivered, dead-lettered or durably parked. The commit's
metadata carries ``park-from=<offset>``: where the next owner of the partition starts reading
the park topic to rebuild its parked users (``ParkBook.checkpoint``). A periodic commit is sent only
when either moved. Each traced event covered by a commit gets a commit span in its trace.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan

from dispatcher.partitions import Partitions
from eventlog import semconv

__all__ = ["CHECKPOINT_KEY", "Committer", "parse_checkpoint"]

log = logging.getLogger(__name__)
tracer = trace.get_tracer("dispatcher.commits")

CHECKPOINT_KEY = "park-from="


def parse_checkpoint(metadata: str | None) -> int | None:
    """The park offset a commit's metadata names, if it names one."""
    if not metadata or not metadata.startswith(CHECKPOINT_KEY):
        return None
    text = metadata[len(CHECKPOINT_KEY) :]
    return int(text) if text.isascii() and text.isdigit() and len(text) < 20 else None


class Committer:
    """Sends one worker's commits and follows their outcome."""

    def __init__(
        self,
        *,
        name: str,
        topic: str,
        group_id: str,
        partitions: Partitions,
        checkpoint: Callable[[int], int | None],
    ) -> None:
        self._name = name
        self._topic = topic
        self._group_id = group_id
        self._partitions = partitions
        self._checkpoint = checkpoint
        self.commits = 0

    def commit(
        self, consumer: Consumer, *, asynchronous: bool, only: set[int] | None = None
    ) -> None:
        """Commit what moved (of ``only``, if given; a synchronous commit sends every
        committable offset); failures are logged and retried by the next commit."""
        offsets = []
        for partition, state in self._partitions.items():
            if only is not None and partition not in only:
                continue
            target = state.offsets.committable()
            if target is None:
                continue
            checkpoint = self._checkpoint(partition)
            unmoved = target == state.committed and checkpoint == state.committed_checkpoint
            if unmoved and asynchronous:
                # A synchronous commit (on revoke, at shutdown) is the last word before the
                # partition goes: it resends, since an asynchronous one may still be unanswered.
                continue
            tp = TopicPartition(self._topic, partition, target)
            if checkpoint is not None:  # (TopicPartition refuses metadata=None)
                tp = TopicPartition(
                    self._topic, partition, target, metadata=f"{CHECKPOINT_KEY}{checkpoint}"
                )
            offsets.append(tp)
            state.committed = target
            state.committed_checkpoint = checkpoint
        if not offsets:
            return
        try:
            if asynchronous:  # the outcome arrives in on_commit
                consumer.commit(offsets=offsets, asynchronous=True)
            else:
                consumer.commit(offsets=offsets, asynchronous=False)
                self.trace_commits(offsets)
        except KafkaException as exc:
            self.on_commit(exc.args[0], offsets)
            return
        self.commits += 1
        log.debug(
            "committed destination=%s offsets=%s",
            self._name,
            ",".join(f"{tp.partition}:{tp.offset}" for tp in offsets),
        )

    def on_commit(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        """librdkafka's report of an asynchronous commit (served from ``consume``)."""
        if error is None:
            self.trace_commits(partitions)
            return
        if error.code() == KafkaError._NO_OFFSET:
            return
        log.warning("commit failed destination=%s error=%s", self._name, error.str())
        for tp in partitions:  # make the next periodic commit try again
            if (state := self._partitions.get(tp.partition)) is not None:
                state.committed = None

    def trace_commits(self, committed: list[TopicPartition]) -> None:
        """Give every traced event that a commit now covers a commit span in its trace."""
        for tp in committed:
            state = self._partitions.get(tp.partition)
            if state is None or not state.uncommitted_traces:
                continue
            covered = [t for t in state.uncommitted_traces if t[0] < tp.offset]
            state.uncommitted_traces = [t for t in state.uncommitted_traces if t[0] >= tp.offset]
            for offset, context in covered:
                tracer.start_span(
                    f"commit {self._topic}",
                    context=trace.set_span_in_context(NonRecordingSpan(context)),
                    kind=trace.SpanKind.CLIENT,
                    attributes={
                        semconv.MESSAGING_SYSTEM: semconv.KAFKA,
                        semconv.MESSAGING_DESTINATION: self._topic,
                        semconv.MESSAGING_OPERATION_TYPE: "settle",
                        semconv.MESSAGING_OPERATION_NAME: "commit",
                        semconv.MESSAGING_PARTITION: str(tp.partition),
                        semconv.MESSAGING_KAFKA_OFFSET: offset,
                        semconv.MESSAGING_CONSUMER_GROUP: self._group_id,
                        "messaging.kafka.committed_offset": tp.offset,
                    },
                ).end()
