"""``dispatcher replay``: ask the running owners of a destination to replay parked users now.

The command never delivers by itself: only the owner of an events partition may release its
users (it alone sees their live events). It reads the park to learn who is parked, writes a
``replay-request`` record on each park partition concerned, and waits for the owners'
``replay-result`` and ``replay-done`` records, printing them as they come.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from dispatcher import park_records
from dispatcher.manifest import DestinationSpec, Manifest
from dispatcher.park_records import ReadReplayDone, ReadReplayResult
from dispatcher.park_store import decode_message, load_book
from dispatcher.parking import ParkedUser
from eventlog.clients import consumer_config, producer_config
from eventlog.exceptions import EventDeliveryError

__all__ = ["ReplayReport", "find_destination", "parked_users", "request_replay"]


def find_destination(manifest: Manifest, name: str) -> DestinationSpec:
    for spec in manifest.destinations:
        if spec.name == name:
            return spec
    known = ", ".join(spec.name for spec in manifest.destinations)
    raise EventDeliveryError(f"{manifest.path}: no destination {name!r}; it has: {known}")


def parked_users(
    manifest: Manifest, spec: DestinationSpec, *, user: str | None, timeout: float
) -> list[ParkedUser]:
    """Who is parked at ``spec`` now (optionally only ``user``), by partition then user."""
    book = load_book(
        manifest.bootstrap_servers, events_topic=manifest.topic,
        park=park_records.park_topic(manifest.topic, spec.name), group=manifest.group_id(spec),
        policy=spec.parking, timeout=timeout, security=manifest.security,
    )  # fmt: skip
    found = [u for u in book.users() if user is None or u.user == user]
    return sorted(found, key=lambda u: (u.partition, u.user))


@dataclass(frozen=True, slots=True)
class ReplayReport:
    results: list[ReadReplayResult]
    answered: set[int]
    """Partitions whose owner said it was done."""
    asked: set[int]


def request_replay(
    manifest: Manifest,
    spec: DestinationSpec,
    users: list[ParkedUser],
    *,
    user: str | None,
    timeout: float,
    on_result: Callable[[ReadReplayResult], None],
) -> ReplayReport:
    """Write one request per park partition with parked users; wait for the answers."""
    topic = park_records.park_topic(manifest.topic, spec.name)
    request = uuid.uuid4().hex[:12]
    asked = {u.partition for u in users}
    producer = Producer(producer_config(manifest.bootstrap_servers, security=manifest.security))
    starts: dict[int, int] = {}

    def stored(error: KafkaError | None, message: object) -> None:
        if error is not None:
            raise EventDeliveryError(f"could not write the replay request: {error.str()}")
        starts[message.partition()] = message.offset()  # type: ignore[attr-defined]

    key = user.encode() if user is not None else b""
    for partition in sorted(asked):
        producer.produce(
            topic, key=key, value=b"", partition=partition, on_delivery=stored,
            headers=park_records.replay_request_headers(request),
        )  # fmt: skip
    if producer.flush(timeout) or len(starts) != len(asked):
        raise EventDeliveryError(f"could not write the replay request to {topic} in time")
    return _await_answers(
        manifest.bootstrap_servers, topic, request=request, starts=starts, timeout=timeout,
        on_result=on_result, security=manifest.security,
    )  # fmt: skip


def _await_answers(
    bootstrap: str,
    topic: str,
    *,
    request: str,
    starts: dict[int, int],
    timeout: float,
    on_result: Callable[[ReadReplayResult], None],
    security: Mapping[str, str],
) -> ReplayReport:
    consumer = Consumer(
        consumer_config(bootstrap, f"replay-{request}", security=security, log_level=0)
    )
    consumer.assign([TopicPartition(topic, p, offset) for p, offset in starts.items()])
    results: list[ReadReplayResult] = []
    answered: set[int] = set()
    deadline = time.monotonic() + timeout
    try:
        while answered != set(starts) and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=100, timeout=0.2):
                record = decode_message(message)
                if record is None:
                    continue
                read = record.read
                if isinstance(read, ReadReplayResult) and read.request == request:
                    results.append(read)
                    on_result(read)
                elif isinstance(read, ReadReplayDone) and read.request == request:
                    answered.add(record.partition)
    finally:
        consumer.close()
    return ReplayReport(results, answered, set(starts))
