"""Outages delay delivery and never lose or reorder it: the breaker, ordered parking, replay
and the retention guard, with real processes, a real broker and a loopback HTTP sink."""

from __future__ import annotations

import subprocess
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from dispatcher.park_records import park_topic
from eventlog.clients import admin_config, producer_config
from eventlog.record import Event, encode
from eventlog.topics import TopicSpec, ensure_topic
from tests.e2e.conftest import Stack
from tests.support.http_sink import HttpSink, Received
from tests.support.processes import BIN

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

FAST_RETRIES = {"max_retries": 2, "initial_backoff": "20ms", "max_backoff": "50ms"}
QUICK_BREAKER = {"cooldown": "500ms", "max_cooldown": "2s"}


def arrivals(records: list[Received]) -> dict[str, list[str]]:
    by_user: dict[str, list[str]] = defaultdict(list)
    for record in records:
        by_user[record.user_id].append(record.event_id)
    return dict(by_user)


def assert_in_order(records: list[Received], sent: dict[str, list[str]]) -> None:
    """Every sent event arrived, and each user's first arrivals follow its send order
    (a repeat of an already delivered prefix is allowed: at-least-once)."""
    got = arrivals(records)
    for user, ids in sent.items():
        first_seen = list(dict.fromkeys(got.get(user, [])))
        assert first_seen == ids, f"{user}: {first_seen} != {ids}"
        position = {event_id: n for n, event_id in enumerate(ids)}
        high = -1
        for event_id in got[user]:
            assert position[event_id] <= high + 1, f"{user}: {event_id} overtook an earlier one"
            high = max(high, position[event_id])


def parked_records(stack: Stack, destination: str, expected: int) -> list[object]:
    records = stack.read_topic(park_topic(stack.topic, destination), expected, timeout=20)
    return [r for r in records if dict(r.headers() or []).get("park-kind") == b"event"]


def switched_hook(
    stack: Stack, sink: HttpSink, *, failing_for: set[str], **defaults: object
) -> Path:
    """Ingest running, and a manifest of one destination ``hook`` on the sink's ``/switch/p``,
    which fails for ``failing_for`` (``"*"``: everyone) until the test says otherwise."""
    sink.failing["p"] = failing_for
    stack.start_ingest()
    hook = {"name": "hook", "type": "http", "url": sink.url("/switch/p")}
    return stack.manifest("shard", [hook], retry=FAST_RETRIES, **defaults)


def test_a_destination_refusing_connections_delays_delivery_and_loses_nothing(
    stack: Stack, sink: HttpSink
) -> None:
    healthy = HttpSink()
    healthy.start()
    try:
        stack.start_ingest()
        manifest = stack.manifest(
            "shard",
            [
                {"name": "down", "type": "http", "url": sink.url("/ok")},
                {"name": "up", "type": "http", "url": healthy.url("/ok")},
            ],
            retry=FAST_RETRIES, breaker=QUICK_BREAKER, concurrency=32,
        )  # fmt: skip
        dispatcher = stack.start_dispatcher(manifest)
        sink.refuse_connections()
        started = time.monotonic()
        sent = stack.send_per_user(users=100, per_user=10)
        assert dispatcher.wait_for_log("breaker opened destination=down")
        # Half the events are sent while "down" is down: "up" delivers them meanwhile.
        later = stack.send_per_user(users=100, per_user=10, first_user=100)
        sent.update(later)
        assert healthy.wait_for(lambda s: len(s.accepted()) >= 2000, timeout=50)
        assert time.monotonic() - started < 60, "the healthy destination waited for the outage"
        # Down for 60 s in all; meanwhile nothing is dead-lettered or parked.
        time.sleep(max(0.0, 60 - (time.monotonic() - started)))  # the outage itself, not a sync
        sink.accept_connections()
        assert sink.wait_for(lambda s: len({r.event_id for r in s.accepted()}) >= 2000, timeout=90)
    finally:
        healthy.stop()
    assert_in_order(sink.accepted(), sent)
    assert_in_order(healthy.accepted(), sent)
    assert stack.read_topic(stack.dead_letter_topic, 1, timeout=3) == []
    assert stack.read_topic(park_topic(stack.topic, "down"), 1, timeout=3) == []
    assert "breaker closed destination=down" in dispatcher.log()


def test_one_failing_user_is_parked_in_order_and_replayed_automatically(
    stack: Stack, sink: HttpSink
) -> None:
    manifest = switched_hook(
        stack, sink, failing_for={"user-0"}, parking={"retry_schedule": ["2s"]}
    )
    dispatcher = stack.start_dispatcher(manifest)
    stuck = [stack.send("user-0", f"stuck {i}") for i in range(5)]
    others = stack.send_per_user(users=20, per_user=3)
    middle = others.pop("user-0")  # parked behind the stuck ones
    assert sink.wait_for(
        lambda s: all(arrivals(s.accepted()).get(u) == ids for u, ids in others.items())
    )
    assert dispatcher.wait_for_log("user parked destination=hook")
    assert len(parked_records(stack, "hook", 5)) >= 5
    tried = {r.event_id for r in sink.received() if r.user_id == "user-0"}
    assert tried == {stuck[0]}  # only the head was tried; the rest went behind it unattempted
    sink.failing["p"] = set()
    later = [stack.send("user-0", f"later {i}") for i in range(3)]
    assert sink.wait_for(
        lambda s: arrivals(s.accepted()).get("user-0", [])[-3:] == later, timeout=30
    )
    assert_in_order(sink.accepted(), {"user-0": stuck + middle + later, **others})
    assert dispatcher.wait_for_log("user released destination=hook")


def test_dispatcher_replay_releases_a_parked_user_in_order(stack: Stack, sink: HttpSink) -> None:
    manifest = switched_hook(
        stack, sink, failing_for={"user-0"}, parking={"retry_schedule": ["1h"]}
    )
    dispatcher = stack.start_dispatcher(manifest)
    stuck = [stack.send("user-0", f"stuck {i}") for i in range(4)]
    assert dispatcher.wait_for_log("user parked destination=hook")
    assert len(parked_records(stack, "hook", 4)) == 4
    dry = _replay(manifest, "--dry-run")
    assert dry.returncode == 0 and "user=user-0 events=4" in dry.stdout, dry.stdout + dry.stderr
    sink.failing["p"] = set()
    result = _replay(manifest, "--user", "user-0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "replayed: user=user-0 events=4 released" in result.stdout
    assert [r.event_id for r in sink.accepted()] == stuck
    later = stack.send("user-0", "live")
    assert sink.wait_for(lambda s: [r.event_id for r in s.accepted()] == [*stuck, later])
    assert _replay(manifest).stdout.strip() == "nothing parked at hook"


def _replay(manifest: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "dispatcher"), "replay", "--manifest", str(manifest), "--destination", "hook",
         "--timeout", "60", *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_kill_9_while_parked_and_during_replay_loses_nothing_and_keeps_order(
    stack: Stack, sink: HttpSink
) -> None:
    manifest = switched_hook(
        stack, sink, failing_for={"user-0"}, parking={"retry_schedule": ["1s"]}
    )
    first = stack.start_dispatcher(manifest)
    sent = [stack.send("user-0", f"e{i}") for i in range(20)]
    assert first.wait_for_log("user parked destination=hook")
    assert len(parked_records(stack, "hook", 20)) >= 20
    first.kill()  # SIGKILL while the user is parked
    second = stack.start_dispatcher(manifest)
    assert second.wait_for_log("parked users recovered destination=hook")
    more = [stack.send("user-0", f"e{i}") for i in range(20, 25)]
    sink.delay["p"] = 0.2  # a replay of 25 takes seconds: time to kill it in the middle
    sink.failing["p"] = set()
    assert sink.wait_for(lambda s: len(s.accepted()) >= 3, timeout=30)
    second.kill()  # SIGKILL in the middle of the replay
    assert len({r.event_id for r in sink.accepted()}) < len(sent) + len(more), "replay ended"
    sink.delay["p"] = 0
    third = stack.start_dispatcher(manifest)
    everything = sent + more
    delivered = sink.wait_for(
        lambda s: set(everything) <= {r.event_id for r in s.accepted()}, timeout=60
    )
    missing = [everything.index(i) for i in set(everything) - {r.event_id for r in sink.accepted()}]
    assert delivered, f"missing {sorted(missing)}\n{second.log()[-4000:]}\n{third.log()[-4000:]}"
    assert_in_order(sink.accepted(), {"user-0": everything})


def test_the_poison_guard_opens_the_breaker_instead_of_parking_everyone(
    stack: Stack, sink: HttpSink
) -> None:
    manifest = switched_hook(
        stack,
        sink,
        failing_for={"*"},
        breaker={"consecutive_failures": 1000, "min_volume": 1000, **QUICK_BREAKER},
        parking={"poison_users": 3},
    )
    dispatcher = stack.start_dispatcher(manifest)
    sent = stack.send_per_user(users=30, per_user=2)
    assert dispatcher.wait_for_log("breaker opened destination=hook reason='poison guard")
    sink.failing["p"] = set()
    assert sink.wait_for(lambda s: len({r.event_id for r in s.accepted()}) >= 60, timeout=60)
    assert_in_order(sink.accepted(), sent)
    parked = Counter(line.split("user=")[1].split()[0] for line in dispatcher.log().splitlines()
                     if "user parked" in line)  # fmt: skip
    assert len(parked) <= 2, parked


def test_events_near_retention_are_parked_while_a_destination_is_down(
    stack: Stack, sink: HttpSink
) -> None:
    # A topic keeping events 30 s, in 3 s segments, so the broker really deletes them.
    admin = AdminClient(admin_config(stack.bootstrap))
    ensure_topic(admin, TopicSpec(stack.topic, partitions=stack.partitions, retention_ms=30_000))
    _set_topic_config(admin, stack.topic, {"segment.ms": "3000", "retention.ms": "30000"})
    manifest = switched_hook(
        stack, sink, failing_for={"*"}, breaker={"cooldown": "1s", "max_cooldown": "2s"}
    )
    dispatcher = stack.start_dispatcher(manifest)
    sent = stack.send_per_user(users=10, per_user=3)
    assert dispatcher.wait_for_log("breaker opened destination=hook")
    # 75 % of 30 s: the waiting events are parked from about 22 s on, before deletion at 30 s.
    assert dispatcher.wait_for_log("retention guard", timeout=60)
    # The outage goes on until the broker has deleted the originals.
    assert _deleted_below(admin, stack.bootstrap, stack.topic, stack.partitions, within=90)
    sink.failing["p"] = set()
    every = {event_id for ids in sent.values() for event_id in ids}
    assert sink.wait_for(lambda s: every <= {r.event_id for r in s.accepted()}, timeout=60)
    assert_in_order(sink.accepted(), sent)
    assert stack.read_topic(stack.dead_letter_topic, 1, timeout=3) == []


def _deleted_below(
    admin: AdminClient, bootstrap: str, topic: str, partitions: int, *, within: float
) -> bool:
    """Whether retention deleted the first records of every non-empty partition of ``topic``.
    A broker deletes whole segments and rolls one only when a record arrives after
    ``segment.ms``: a filler event per partition (a user of its own) rolls them."""
    from confluent_kafka import TopicPartition  # noqa: PLC0415
    from confluent_kafka.admin import OffsetSpec  # noqa: PLC0415

    producer = Producer(producer_config(bootstrap))
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        low = admin.list_offsets({tp: OffsetSpec.earliest() for tp in tps})  # type: ignore[no-untyped-call]
        firsts = {tp.partition: low[tp].result(10).offset for tp in tps}
        if all(first > 0 for first in firsts.values()):
            return True
        for partition, first in firsts.items():
            if first == 0:
                filler = Event(f"filler-{partition}-{time.monotonic_ns()}", f"filler-{partition}",
                               "", int(time.time() * 1000))  # fmt: skip
                key, value, headers = encode(filler)
                producer.produce(topic, key=key, value=value, headers=headers, partition=partition)
        producer.flush(10)
        time.sleep(1)
    return False


def _set_topic_config(admin: AdminClient, topic: str, values: dict[str, str]) -> None:
    from confluent_kafka.admin import (  # noqa: PLC0415
        AlterConfigOpType,
        ConfigEntry,
        ConfigResource,
        ResourceType,
    )

    entries = [
        ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in values.items()
    ]
    resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=entries)
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(timeout=10)


def test_records_that_used_to_freeze_a_partition_end_in_an_outcome(
    stack: Stack, sink: HttpSink
) -> None:
    stack.start_ingest()
    manifest = stack.manifest(
        "shard",
        [
            {"name": "hook", "type": "http", "url": sink.url("/ok")},
            # Each event fails 1,100 times first: backoffs past 2**1024 used to freeze it.
            {"name": "patient", "type": "http", "url": sink.url("/fail-times/1100"),
             "retry": {"max_retries": 2000, "initial_backoff": "1ms", "max_backoff": "2ms"}},
        ],
    )  # fmt: skip
    dispatcher = stack.start_dispatcher(
        manifest, env={"OTEL_TRACES_EXPORTER": "console", "OTEL_TRACES_SAMPLER": "always_off"}
    )
    producer = Producer(producer_config(stack.bootstrap))
    for user in ("odd-time", "odd-trace"):
        stack.send(user, "warm-up")  # the topic exists and the user's partition is known
    event = Event(id="bad-time", user_id="odd-time", payload="x", received_at_ms=0)
    key, value, headers = encode(event)
    headers = [h for h in headers if h[0] != "received-at-ms"] + [("received-at-ms", b"9" * 400)]
    assert sink.wait_for(lambda s: {"odd-time", "odd-trace"} <= {r.user_id for r in s.accepted()})
    producer.produce(
        stack.topic, key=key, value=value, headers=headers, partition=_partition(stack, "odd-time")
    )
    traced = Event(
        id="bad-trace", user_id="odd-trace", payload="y", received_at_ms=int(time.time() * 1000)
    )
    key, value, headers = encode(traced)
    odd_trace = [*headers, ("traceparent", b"\xff\xfe00")]
    producer.produce(
        stack.topic,
        key=key,
        value=value,
        headers=odd_trace,
        partition=_partition(stack, "odd-trace"),
    )
    assert producer.flush(10) == 0
    after = {user: stack.send(user, "next") for user in ("odd-time", "odd-trace")}
    assert sink.wait_for(
        lambda s: set(after.values()) <= {r.event_id for r in s.accepted("/ok")}, timeout=30
    ), dispatcher.log()[-3000:]
    assert sink.wait_for(
        lambda s: set(after.values()) <= {r.event_id for r in s.accepted("/fail-times/1100")},
        timeout=120,
    ), dispatcher.log()[-3000:]
    letters = stack.read_topic(stack.dead_letter_topic, 2, timeout=20)
    destinations = {dict(r.headers() or [])["dead-letter-destination"] for r in letters}
    assert destinations >= {b"hook", b"patient"}
    delivered_ids = {r.event_id for r in sink.accepted()}
    assert "bad-trace" in delivered_ids  # an unreadable traceparent is ignored, not fatal


def _partition(stack: Stack, user: str) -> int:
    from confluent_kafka import murmur2  # noqa: PLC0415

    return int(murmur2(user.encode(), stack.partitions))
