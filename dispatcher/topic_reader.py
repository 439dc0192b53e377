"""Reading a topic from given offsets to its end as of now, for the operator commands.

A consumer in assign mode (no group membership, nothing committed), stopping at each
partition's high watermark taken when it starts: records written meanwhile are not waited for.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from eventlog.clients import consumer_config
from eventlog.exceptions import EventDeliveryError

__all__ = ["MissingTopic", "partitions_of", "read_to_end"]


class MissingTopic(EventDeliveryError):
    """The topic does not exist (a park topic is made only once something is parked)."""


def partitions_of(consumer: Consumer, topic: str, timeout: float) -> list[int]:
    """The partition numbers of ``topic``; ``MissingTopic`` if it does not exist,
    ``EventDeliveryError`` if it cannot be described."""
    try:
        metadata = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
    except KafkaException as exc:
        raise EventDeliveryError(f"cannot reach Kafka: {exc.args[0].str()}") from exc
    error = metadata.error if metadata is not None else None
    if error is not None and error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
        raise MissingTopic(f"topic {topic!r} does not exist")
    if metadata is None or metadata.error is not None:
        why = metadata.error.str() if metadata is not None and metadata.error else "missing"
        raise EventDeliveryError(f"topic {topic!r}: {why}")
    return sorted(metadata.partitions)


def read_to_end(
    bootstrap_servers: str,
    topic: str,
    starts: dict[int, int | None] | None = None,
    *,
    timeout: float = 30.0,
    security: Mapping[str, str] | None = None,
) -> Iterator[Message]:
    """Records of ``topic`` from ``starts`` (partition -> offset, ``None`` for the earliest;
    every partition from its start when ``starts`` is ``None``) up to the current end."""
    config = consumer_config(
        bootstrap_servers, f"reader-{uuid.uuid4().hex}", security=security, log_level=0
    )
    config["enable.partition.eof"] = True
    consumer = Consumer(config)
    try:
        if starts is None:
            starts = dict.fromkeys(partitions_of(consumer, topic, timeout))
        waiting: dict[int, int] = {}
        assignment = []
        for number, start in starts.items():
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, number), timeout=timeout
            )
            begin = max(low, start if start is not None else low)
            if begin < high:
                waiting[number] = high
                assignment.append(TopicPartition(topic, number, begin))
        if assignment:
            consumer.assign(assignment)
        yield from _until_ends(consumer, topic, waiting, time.monotonic() + timeout, timeout)
    finally:
        consumer.close()


def _until_ends(
    consumer: Consumer, topic: str, ends: dict[int, int], deadline: float, timeout: float
) -> Iterator[Message]:
    while ends:
        if time.monotonic() > deadline:
            raise EventDeliveryError(f"could not read {topic} to its end within {timeout:g}s")
        for message in consumer.consume(num_messages=500, timeout=0.2):
            number, offset, error = message.partition(), message.offset(), message.error()
            if number is None or number not in ends:
                continue
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    ends.pop(number, None)
                continue
            if offset is not None and offset < ends[number]:
                yield message
            if offset is not None and offset >= ends[number] - 1:
                ends.pop(number, None)
