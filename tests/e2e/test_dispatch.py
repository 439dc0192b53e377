"""Issue 4's end-to-end cases: ingest and dispatchers as real processes, a real broker, and a
loopback HTTP sink standing in for each destination."""

from __future__ import annotations

import itertools
import signal
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from dispatcher.manifest import load_manifest
from dispatcher.status import collect_status
from eventlog.clients import consumer_config
from tests.e2e.conftest import Stack
from tests.support.http_sink import HttpSink
from tests.support.processes import Service

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def hook(name: str, sink: HttpSink, route: str, **extra: object) -> dict[str, object]:
    return {"name": name, "type": "http", "url": sink.url(route), **extra}


def attempts_per_event(sink: HttpSink, route: str) -> Counter[str]:
    return Counter(r.event_id for r in sink.received(route))


def headers_of(record: object) -> dict[str, bytes]:
    return {k: v for k, v in (record.headers() or [])}  # type: ignore[attr-defined]


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def _lag(manifest: Path) -> int:
    """Events of the manifest's topic that its destinations have not committed yet."""
    return sum(row.lag for row in collect_status(load_manifest(manifest, environ={})))


def _records_ever_written(bootstrap: str, topic: str) -> int:
    consumer = Consumer(consumer_config(bootstrap, f"e2e-probe-{time.monotonic_ns()}"))
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in partitions
        )
    finally:
        consumer.close()


def test_a_refusing_destination_dead_letters_each_event_at_once(
    stack: Stack, sink: HttpSink
) -> None:
    stack.start_ingest()
    stack.start_dispatcher(stack.manifest("shard", [hook("strict", sink, "/status/422")]))
    ids = [stack.send("alice", f"p{i}") for i in range(3)]

    letters = stack.read_topic(stack.dead_letter_topic, expected=3)
    assert [headers_of(r)["event-id"].decode() for r in letters] == ids
    for record in letters:
        headers = headers_of(record)
        assert headers["dead-letter-destination"] == b"strict"
        assert headers["dead-letter-error"] == b"HTTP 422"
        assert headers["dead-letter-attempts"] == b"1"
        assert headers["dead-letter-permanent"] == b"true"
        assert headers["dead-letter-topic"] == stack.topic.encode()
        assert record.key() == b"alice"
    # A refusal for good is not retried, and the user's next event follows it.
    assert [r.event_id for r in sink.received("/status/422")] == ids


def test_an_always_failing_destination_opens_its_breaker_instead_of_dead_lettering(
    stack: Stack, sink: HttpSink
) -> None:
    stack.start_ingest()
    sent = stack.send_per_user(users=8, per_user=3)  # waiting in Kafka: fetched at once
    manifest = stack.manifest(
        "shard", [hook("broken", sink, "/fail")], retry={"max_retries": 3, "initial_backoff": "1s"}
    )
    dispatcher = stack.start_dispatcher(manifest)

    assert dispatcher.wait_for_log("breaker opened destination=broken")
    # Five failures in a row across users open it, before any user runs out of retries: only
    # each user's first event was tried, nothing is given up on while the destination is down.
    firsts = {ids[0] for ids in sent.values()}
    assert {r.event_id for r in sink.received("/fail")} <= firsts
    assert _records_ever_written(stack.bootstrap, stack.dead_letter_topic) == 0
    assert _records_ever_written(stack.bootstrap, f"{stack.topic}.park.broken") == 0


def test_a_failing_destination_in_one_shard_does_not_touch_a_good_one_in_another(
    stack: Stack, sink: HttpSink
) -> None:
    stack.start_ingest()
    stack.start_dispatcher(stack.manifest("shard-a", [hook("good", sink, "/ok")]))
    stack.start_dispatcher(
        stack.manifest(
            "shard-b",
            [hook("bad", sink, "/fail")],
            timeout="1s",
            retry={"max_retries": 50, "initial_backoff": "1s", "max_backoff": "1s"},
        )
    )
    ids = [stack.send(f"user-{i % 4}", f"p{i}") for i in range(40)]

    assert sink.wait_for(lambda s: len(s.received("/ok")) >= len(ids), timeout=30)
    assert Counter(r.event_id for r in sink.received("/ok")) == dict.fromkeys(ids, 1)
    # The bad destination is still retrying its first events meanwhile.
    assert len(sink.received("/fail")) < len(ids) * 5


def test_a_hanging_destination_is_bounded_by_the_attempt_timeout(
    stack: Stack, sink: HttpSink
) -> None:
    stack.start_ingest()
    stack.start_dispatcher(
        stack.manifest(
            "shard",
            [hook("slow", sink, "/hang")],
            timeout="300ms",
            retry={"max_retries": 2, "initial_backoff": "10ms", "jitter": False},
        )
    )
    event_id = stack.send("bob", "x")

    # Three timed-out attempts, fewer than the breaker's five: the user is parked.
    parked = stack.read_topic(f"{stack.topic}.park.slow", expected=1)
    assert headers_of(parked[0])["park-reason"] == b"retries exhausted: timed out after 0.3s"
    arrivals = [r.arrived for r in sink.received("/hang") if r.event_id == event_id]
    assert len(arrivals) == 3
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert all(0.3 <= gap < 1.5 for gap in gaps), gaps


def test_fail_first_delivers_every_event_on_the_second_attempt(
    stack: Stack, sink: HttpSink
) -> None:
    stack.start_ingest()
    # Every event's first attempt fails: five in a row across users would open the breaker;
    # here only the retries are under test.
    manifest = stack.manifest(
        "shard",
        [hook("flaky", sink, "/fail-first")],
        breaker={"consecutive_failures": 1000, "min_volume": 1000},
    )
    stack.start_dispatcher(manifest)
    ids = [stack.send(f"user-{i % 3}", f"p{i}") for i in range(12)]

    assert sink.wait_for(lambda s: len(s.received("/fail-first")) >= 2 * len(ids), timeout=30)
    assert attempts_per_event(sink, "/fail-first") == dict.fromkeys(ids, 2)
    # A dead letter is written before its offset is committed: once everything is committed,
    # any dead letter would be on the topic already.
    assert wait_until(lambda: _lag(manifest) == 0, timeout=30), "offsets never committed"
    assert _records_ever_written(stack.bootstrap, stack.dead_letter_topic) == 0


def test_each_users_events_arrive_in_send_order_at_every_destination(
    stack: Stack, sink: HttpSink
) -> None:
    stack.start_ingest()
    stack.start_dispatcher(
        stack.manifest("shard", [hook("fast", sink, "/ok"), hook("slowish", sink, "/latency/5")])
    )
    sent = stack.send_per_user(users=20, per_user=50)
    total = sum(len(ids) for ids in sent.values())

    for route in ("/ok", "/latency/5"):

        def all_arrived(s: HttpSink, route: str = route) -> bool:
            return len(s.received(route)) >= total

        assert sink.wait_for(all_arrived, timeout=60), route
        arrived: dict[str, list[str]] = defaultdict(list)
        for request in sink.received(route):
            arrived[request.user_id].append(request.event_id)
        assert arrived == sent, route


def test_a_dispatcher_killed_mid_stream_loses_nothing_after_restart(
    stack: Stack, sink: HttpSink
) -> None:
    stack.start_ingest()
    manifest = stack.manifest("shard", [hook("webhook", sink, "/latency/100")], concurrency=64)
    sent = stack.send_per_user(users=60, per_user=10)
    ids = {i for user_ids in sent.values() for i in user_ids}
    first = stack.start_dispatcher(manifest)
    assert sink.wait_for(lambda s: len(s.received()) >= 100, timeout=30)
    first.kill()
    assert len({r.event_id for r in sink.received()}) < len(ids), "killed too late to matter"

    stack.start_dispatcher(manifest)
    assert sink.wait_for(lambda s: {r.event_id for r in s.received()} >= ids, timeout=60)
    # At-least-once, and each user's first deliveries still came in send order.
    first_seen: dict[str, list[str]] = defaultdict(list)
    for request in sink.received():
        if request.event_id not in first_seen[request.user_id]:
            first_seen[request.user_id].append(request.event_id)
    assert first_seen == sent


def assignment(service: Service, destination: str) -> set[int]:
    """The partitions a dispatcher holds now, replayed from its assigned/revoked log lines."""
    held: set[int] = set()
    for line in service.log().splitlines():
        for verb in ("assigned", "revoked", "lost"):
            marker = f"partitions {verb} destination={destination} partitions="
            if marker in line:
                listed = line.split(marker, 1)[1].split()[0]
                parts = {int(p) for p in listed.split(",") if p != "-"}
                held = held | parts if verb == "assigned" else held - parts
    return held


def settled(condition: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_two_processes_with_one_shard_split_partitions_and_hand_over_on_stop(
    stack: Stack, sink: HttpSink
) -> None:
    stack.start_ingest()
    manifest = stack.manifest("shard", [hook("webhook", sink, "/ok")])
    one = stack.start_dispatcher(manifest)
    two = stack.start_dispatcher(manifest)
    everything = set(range(stack.partitions))

    def split() -> bool:
        a, b = assignment(one, "webhook"), assignment(two, "webhook")
        return bool(a) and bool(b) and not a & b and a | b == everything

    assert settled(split), (one.log()[-2000:], two.log()[-2000:])
    before = [stack.send(f"user-{i}", "before") for i in range(60)]
    assert sink.wait_for(lambda s: {r.event_id for r in s.received()} >= set(before))

    assert two.stop(signal.SIGTERM) == 0
    assert "closed destination=webhook" in two.log()
    assert settled(lambda: assignment(one, "webhook") == everything)

    after = [stack.send(f"user-{i}", "after") for i in range(60)]
    assert sink.wait_for(lambda s: {r.event_id for r in s.received()} >= set(after))
    counts = Counter(r.event_id for r in sink.received())
    repeated = [
        (r.user_id, r.payload, r.arrived) for r in sink.received() if counts[r.event_id] > 1
    ]
    assert not repeated, ("a clean hand-over redelivers nothing", repeated, one.log(), two.log())
