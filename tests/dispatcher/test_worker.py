"""The worker's bookkeeping against an in-memory Kafka: ordering, commits, rebalances,
backpressure, dead letters, the breaker, parking, replay and recovery."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import replace
from typing import Any

import pytest
from confluent_kafka import TopicPartition

from dispatcher.breaker import BreakerPolicy, State
from dispatcher.deliveries import YIELD_EVERY
from dispatcher.durations import Duration
from dispatcher.metrics import DeliveryMetrics
from dispatcher.park_records import replay_request_headers
from dispatcher.parking import ParkingPolicy
from dispatcher.worker import IDLE_SLEEP_MAX
from eventlog.producer import ProduceError
from eventlog.record import Event, Headers
from tests.dispatcher.fake_kafka import FakeCluster
from tests.dispatcher.worker_harness import (
    DEAD_LETTERS,
    TOPIC,
    Harness,
    Receiver,
    parking_spec,
    spec,
    wait_until,
)


async def test_every_event_is_delivered_in_user_order_and_committed() -> None:
    async with Harness() as h:
        for n in range(10):
            for user, partition in (("ann", 0), ("bob", 1), ("cyd", 1)):
                h.send(partition, user, f"{n}")
        h.consumer.assign([0, 1, 2, 3])
        await wait_until(lambda: len(h.receiver.received) == 30)
        await wait_until(lambda: h.committed(0) == 10 and h.committed(1) == 20)
        assert (h.worker.buffered, h.worker.buffered_bytes) == (0, 0)  # all accounted for
    for user in ("ann", "bob", "cyd"):
        assert h.receiver.payloads(user) == [str(n) for n in range(10)]


async def test_no_live_event_goes_out_before_its_partition_s_park_was_read() -> None:
    async with Harness() as h:
        h.cluster.hold_answers()  # the park's end cannot be learned yet
        try:
            h.cluster.committed["test.dest", TOPIC, 0] = (0, None)
            h.consumer.fetch_on_assign = True  # its record arrives before any pause
            h.send(0, "ann", "0")
            h.consumer.assign([0])
            await h.settle(10)
            assert h.receiver.attempts == []
            assert h.worker.buffered == 1  # held, counted
        finally:
            h.cluster.release_answers()
        await wait_until(lambda: h.receiver.payloads("ann") == ["0"])
        await wait_until(lambda: (h.worker.buffered, h.worker.buffered_bytes) == (0, 0))


class Slow(Receiver):
    """Answers once ``answer`` is set (the harness's own ``hold`` is let go when it stops)."""

    def __init__(self) -> None:
        super().__init__()
        self.answer = asyncio.Event()

    async def send(self, event: Event) -> None:
        self.in_flight += 1
        try:
            await self.answer.wait()
        finally:
            self.in_flight -= 1
        await super().send(event)


async def test_shutdown_lets_deliveries_in_flight_finish_and_commits_them() -> None:
    receiver = Slow()
    async with Harness(receiver=receiver, commit_interval=3600, drain_timeout=5) as h:
        h.send(0, "ann", "0")
        h.consumer.assign([0])
        await wait_until(lambda: receiver.in_flight == 1)
        # The worker stops fetching and drains; the answer comes while it does.
        asyncio.get_running_loop().call_later(0.3, receiver.answer.set)
    assert receiver.payloads("ann") == ["0"]
    assert h.committed(0) == 1


async def test_a_partition_lost_is_never_committed() -> None:
    async with Harness(commit_interval=3600) as h:
        for n in range(3):
            h.send(0, "ann", str(n))
        h.consumer.assign([0])
        await wait_until(lambda: len(h.receiver.received) == 3)
        h.consumer.lose([0])
        await h.settle()
        assert not [c for c in h.cluster.commit_log if c[1] == 0]


async def test_a_revoked_partition_is_committed_before_it_goes() -> None:
    async with Harness(commit_interval=3600) as h:
        for n in range(3):
            h.send(0, "ann", str(n))
        h.consumer.assign([0])
        await wait_until(lambda: len(h.receiver.received) == 3)
        h.consumer.revoke([0])
        await h.settle()
        assert ("test.dest", 0, 3) in h.cluster.commit_log


async def test_the_final_commit_does_not_trust_an_unanswered_asynchronous_one() -> None:
    async with Harness(commit_interval=0.02) as h:
        h.consumer.unanswered_async_commits = True
        for n in range(3):
            h.send(0, "ann", str(n))
        h.consumer.assign([0])
        await wait_until(lambda: len(h.receiver.received) == 3)
        await wait_until(
            lambda: any(
                tp.partition == 0 and tp.offset == 3
                for offsets in h.consumer.unanswered_commits
                for tp in offsets
            ),
            what="a periodic commit of all three",
        )
    # Stopped: the periodic commit of offset 3 was still unanswered, so the final one sends it.
    assert h.committed(0) == 3


async def test_a_slow_answer_about_one_partition_never_holds_up_the_others() -> None:
    async with Harness() as h:
        h.send(0, "ann", "0")
        h.consumer.assign([0])
        await wait_until(lambda: h.receiver.payloads("ann") == ["0"])
        h.cluster.hold_answers()  # placing partition 1 now waits for the broker
        h.send(1, "bob", "0")
        h.consumer.assign([1])
        await h.settle()
        h.send(0, "ann", "1")
        delivered_while_waiting: list[str] = []

        def answer() -> None:  # the broker answers at last; until then the loop was free
            delivered_while_waiting.extend(h.receiver.payloads("ann"))
            h.cluster.release_answers()

        timer = threading.Timer(3.0, answer)
        timer.start()
        try:
            await wait_until(lambda: h.receiver.payloads("bob") == ["0"], within=15)
        finally:
            timer.cancel()
            h.cluster.release_answers()
        assert delivered_while_waiting == ["0", "1"]


async def test_the_buffer_is_shared_by_the_partitions_so_the_concurrency_is_used() -> None:
    # The fake hands records over a partition at a time, as librdkafka does. Ten users per
    # partition: a buffer filled from one partition could keep only ten in flight.
    receiver = Receiver()
    receiver.hold = asyncio.Event()  # deliveries stay in flight until the end
    async with Harness(
        receiver=receiver, destination_spec=spec(max_buffered=16, concurrency=16)
    ) as h:
        for n in range(5):
            for partition in range(4):
                for user in range(10):
                    h.send(partition, f"u{partition}-{user}", str(n))
        h.consumer.assign([0, 1, 2, 3])
        await wait_until(lambda: receiver.in_flight == 16, what="every slot in flight")
        assert {e.user_id.split("-")[0] for e in receiver.attempts} == {"u0", "u1", "u2", "u3"}
        assert h.worker.buffered <= 16


async def test_deliveries_do_not_start_a_task_per_event() -> None:
    # A lane delivers event after event in one task (issue 14: a task per event cost the
    # loop its creation, scheduling and teardown each time).
    loop = asyncio.get_running_loop()
    created = 0

    def counting(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> Any:
        nonlocal created
        created += 1
        return asyncio.Task(coro, loop=loop, **kwargs)

    async with Harness(destination_spec=spec(concurrency=4, max_buffered=400)) as h:
        for n in range(50):
            for partition, user in enumerate(("ann", "bob", "cyd", "dan")):
                h.send(partition, user, str(n))
        loop.set_task_factory(counting)
        try:
            h.consumer.assign([0, 1, 2, 3])
            await wait_until(lambda: len(h.receiver.received) == 200)
        finally:
            loop.set_task_factory(None)
    assert created < 50, f"{created} tasks for 200 events"
    for user in ("ann", "bob", "cyd", "dan"):
        assert h.receiver.payloads(user) == [str(n) for n in range(50)]


async def test_a_destination_answering_at_once_does_not_keep_the_loop_from_others() -> None:
    # The test's receiver never waits, like a mock: a lane could deliver its whole buffer
    # without the loop taking a turn. Another task must still run every so often.
    gaps: list[int] = []

    async with Harness(destination_spec=spec(concurrency=1, max_buffered=2000)) as h:
        for n in range(1500):
            h.send(0, "ann", str(n))

        async def ticker() -> None:
            seen = 0
            while len(h.receiver.received) < 1500:
                await asyncio.sleep(0)
                gaps.append(len(h.receiver.received) - seen)
                seen = len(h.receiver.received)

        ticking = asyncio.create_task(ticker())
        h.consumer.assign([0])
        await wait_until(lambda: len(h.receiver.received) == 1500)
        await ticking
    assert max(gaps) <= YIELD_EVERY, f"{max(gaps)} deliveries without a turn for others"


class HoldsOne(Receiver):
    """Holds one user's deliveries until released; the others' go through."""

    def __init__(self, user: str) -> None:
        super().__init__()
        self.user = user
        self.release = asyncio.Event()

    async def send(self, event: Event) -> None:
        if event.user_id == self.user:
            self.attempts.append(event)
            await self.release.wait()
        await super().send(event)


async def test_a_lane_cancelled_with_its_partition_leaves_the_others_delivering() -> None:
    # One lane (concurrency 1) holds ann's event when her partition is revoked: the lane is
    # cancelled with it, and bob's events, on another partition, still all go, in order.
    receiver = HoldsOne("ann")
    async with Harness(receiver=receiver, destination_spec=spec(concurrency=1)) as h:
        h.send(0, "ann", "0")
        h.consumer.assign([0])
        await wait_until(lambda: len(receiver.attempts) == 1, what="ann's event in flight")
        for n in range(5):
            h.send(1, "bob", str(n))
        h.consumer.assign([1])
        h.consumer.revoke([0])
        await wait_until(lambda: len(receiver.payloads("bob")) == 5, what="bob's events")
        await wait_until(lambda: h.committed(1) == 5, what="bob's commit")
    assert receiver.payloads("bob") == [str(n) for n in range(5)]
    assert receiver.payloads("ann") == []


class Stubborn(Receiver):
    """Ignores cancellation: an abandoned delivery still completes, late: only once the
    event's redelivery by the partition's next assignment is under way."""

    async def send(self, event: Event) -> None:
        try:
            await super().send(event)
        except asyncio.CancelledError:
            await wait_until(lambda: len(self.attempts) >= 2, what="the redelivery")


async def test_a_late_completion_of_an_abandoned_event_does_not_count_for_the_new_owner() -> None:
    receiver = Stubborn()
    receiver.hold = asyncio.Event()
    async with Harness(receiver=receiver) as h:
        h.send(0, "ann", "0")
        h.consumer.assign([0])
        await wait_until(lambda: receiver.in_flight == 1)
        h.consumer.revoke([0])
        h.consumer.assign([0])  # the same partition again: a new epoch
        await wait_until(lambda: len(receiver.attempts) == 2, what="the redelivery")
        await h.settle(10)
        # The first delivery ended (cancelled, swallowed) but the redelivery is still held:
        # nothing may be committed past offset 0.
        assert (h.committed(0) or 0) == 0
        receiver.hold.set()
        await wait_until(lambda: h.committed(0) == 1)


async def test_the_buffer_stays_bounded_across_rebalances_while_paused() -> None:
    receiver = Receiver()
    receiver.hold = asyncio.Event()
    async with Harness(
        receiver=receiver, destination_spec=spec(max_buffered=10, concurrency=2)
    ) as h:
        for partition in range(4):
            for n in range(200):
                h.send(partition, f"u{partition}-{n % 20}", str(n))
        h.consumer.assign([0])
        await wait_until(lambda: h.worker.buffered == 10)
        for step in ([1], [2], [3]):
            h.consumer.assign(step)
            await h.settle(5)
            assert h.worker.buffered <= 10
        h.consumer.revoke([0])
        h.consumer.assign([0])
        await h.settle(5)
        assert h.worker.buffered <= 10
        # Placing the re-assigned partition and filling the others' shares takes a few turns,
        # more on a loaded machine: wait for every partition to be paused again.
        await wait_until(lambda: h.consumer.paused == h.consumer.assigned == {0, 1, 2, 3})
        assert h.worker.buffered <= 10


async def test_the_buffer_is_bounded_by_bytes_too() -> None:
    receiver = Receiver()
    receiver.hold = asyncio.Event()
    async with Harness(
        receiver=receiver,
        destination_spec=spec(max_buffered=1000, max_buffered_bytes=20_000, concurrency=2),
    ) as h:
        for n in range(100):
            h.send(n % 4, f"u{n % 8}", "x" * 2000 + str(n))  # about 2.3 KB each
        h.consumer.assign([0, 1, 2, 3])
        await wait_until(lambda: h.worker.buffered_bytes >= 20_000, what="the byte bound")
        await h.settle(10)
        # Fetching stops once the bound is reached; one turn's fetch may overshoot it.
        assert h.worker.buffered <= 20_000 // 2000
        assert h.consumer.paused == h.consumer.assigned


async def test_the_dead_letter_is_stored_before_the_offset_is_committed() -> None:
    receiver = Receiver()
    receiver.refusing.add("ann")
    async with Harness(receiver=receiver) as h:
        h.producer.failures_left[DEAD_LETTERS] = 20  # the broker refuses for a while
        h.send(0, "ann", "0")
        h.send(0, "ann", "1")
        h.consumer.assign([0])
        await wait_until(lambda: h.producer.failures_left[DEAD_LETTERS] == 10)
        assert (h.committed(0) or 0) == 0
        await wait_until(lambda: len(h.records(DEAD_LETTERS)) == 2)
        await wait_until(lambda: h.committed(0) == 2)


async def test_a_dead_letter_topic_that_refuses_for_good_stops_the_destination() -> None:
    receiver = Receiver()
    receiver.refusing.add("ann")
    h = Harness(receiver=receiver)
    h.producer.refuse[DEAD_LETTERS] = ProduceError("MSG_SIZE_TOO_LARGE", retriable=False)
    async with h:
        h.send(0, "bob", "0")
        h.send(0, "ann", "1")
        h.consumer.assign([0])
        assert h.task is not None
        await asyncio.wait_for(h.task, timeout=10)  # stops by itself
    assert "refused" in (h.worker.stopped_by or "")
    assert h.committed(0) == 1  # bob's event, not ann's


async def test_undecodable_and_odd_records_end_as_dead_letters_and_the_user_goes_on() -> None:
    async with Harness() as h:
        h.cluster.append(TOPIC, 0, key=b"ann", value=b"x", headers=[("event-format", b"9")])
        odd: Headers = [("event-format", b"1"), ("event-id", b"e"), ("received-at-ms", b"9" * 400)]
        h.cluster.append(TOPIC, 0, key=b"ann", value=b"y", headers=odd)
        h.send(0, "ann", "next")
        h.consumer.assign([0])
        await wait_until(lambda: h.receiver.payloads("ann") == ["next"])
        await wait_until(lambda: h.committed(0) == 3)
        assert len(h.records(DEAD_LETTERS)) == 2


class BrokenMetrics(DeliveryMetrics):
    """A bug of ours on the delivery path, after the destination took the event."""

    def finished(self, destination: str, result: str, latency: float | None) -> None:
        if result == "delivered":
            raise RuntimeError("metrics bug")
        super().finished(destination, result, latency)


async def test_a_bug_on_the_delivery_path_dead_letters_the_event_instead_of_freezing() -> None:
    async with Harness(metrics=BrokenMetrics()) as h:
        h.send(0, "ann", "0")
        h.send(0, "ann", "1")
        h.consumer.assign([0])
        await wait_until(lambda: h.committed(0) == 2)
        letters = h.records(DEAD_LETTERS)
        assert len(letters) == 2
        assert b"internal error: RuntimeError" in dict(letters[0].headers())["dead-letter-error"]


async def test_an_outage_opens_the_breaker_pauses_fetching_and_loses_nothing() -> None:
    receiver = Receiver()
    receiver.down = True
    metrics = DeliveryMetrics()
    async with Harness(receiver=receiver, metrics=metrics) as h:
        for n in range(20):
            h.send(n % 5 % 2, f"u{n % 5}", str(n))  # a user's events on one partition
        h.consumer.assign([0, 1])
        await wait_until(lambda: h.worker.breaker_state is not State.CLOSED)
        await wait_until(lambda: h.consumer.paused == {0, 1})
        await h.settle(5)
        assert h.consumer.paused == {0, 1}
        assert not h.records(DEAD_LETTERS) and not h.records(h.park_topic)
        receiver.down = False
        await wait_until(lambda: len(receiver.received) == 20)
        await wait_until(lambda: h.committed(0) == 12 and h.committed(1) == 8)
    assert not h.records(DEAD_LETTERS) and not h.records(h.park_topic)
    for user in (f"u{k}" for k in range(5)):
        payloads = [int(p) for p in receiver.payloads(user)]
        assert payloads == sorted(payloads)
    transitions = metrics._transitions
    assert transitions["dest", "open"] >= 1 and transitions["dest", "closed"] >= 1


async def test_when_the_breaker_closes_parked_users_are_retried_at_once() -> None:
    receiver = Receiver()
    receiver.failing.add("ann")
    hourly = parking_spec(retry_after=3600)
    async with Harness(receiver=receiver, destination_spec=hourly) as h:
        h.send(0, "ann", "0")
        h.consumer.assign([0, 1])
        await wait_until(lambda: h.parked_payloads("ann") == [b"0"])  # next retry in an hour
        receiver.down = True  # then the destination goes down for everyone ...
        for n in range(4):
            h.send(1, f"u{n}", "x")
        await wait_until(lambda: h.worker.breaker_state is not State.CLOSED)
        receiver.failing.clear()
        receiver.down = False  # ... and comes back: the probe closes the breaker
        await wait_until(lambda: h.worker.breaker_state is State.CLOSED)
        await wait_until(lambda: receiver.payloads("ann") == ["0"], within=5)


async def test_shutdown_does_not_wait_for_events_held_at_an_open_breaker() -> None:
    receiver = Receiver()
    receiver.down = True
    h = Harness(receiver=receiver, drain_timeout=60)
    async with h:
        for n in range(5):
            h.send(0, f"u{n}", "0")
        h.consumer.assign([0])
        await wait_until(lambda: h.worker.breaker_state is not State.CLOSED)
        started = time.monotonic()
        h.stop.set()
        assert h.task is not None
        await asyncio.wait_for(h.task, timeout=30)
    assert time.monotonic() - started < 30  # far below the 60 s drain
    assert h.committed(0) in (None, 0)  # nothing delivered, nothing committed past it


async def test_one_failing_user_is_parked_in_order_while_others_flow_then_replayed() -> None:
    receiver = Receiver()
    receiver.failing.add("ann")
    slow = parking_spec(retry_after=3600)
    async with Harness(receiver=receiver, destination_spec=slow) as h:
        for n in range(5):
            h.send(0, "ann", str(n))
            h.send(0, "bob", str(n))
        h.consumer.assign([0])
        await wait_until(lambda: len(receiver.payloads("bob")) == 5)
        await wait_until(lambda: h.committed(0) == 10)
        assert h.parked_payloads("ann") == [str(n).encode() for n in range(5)]
        assert h.worker.breaker_state is State.CLOSED
        attempts_of_ann = len([e for e in receiver.attempts if e.user_id == "ann"])
        assert attempts_of_ann == 2  # only the first event was tried; the rest parked behind it
        receiver.failing.clear()
        h.send(0, "ann", "5")
        await h.settle(5)
        assert receiver.payloads("ann") == []  # live events wait behind the parked ones
        # An operator's replay request, as `dispatcher replay` writes it:
        h.cluster.append(h.park_topic, 0, key=b"", value=b"", headers=replay_request_headers("r1"))
        await wait_until(lambda: receiver.payloads("ann") == [str(n) for n in range(6)])

        def kinds() -> list[bytes | None]:
            return [dict(m.headers()).get("park-kind") for m in h.records(h.park_topic)]

        # The last replayed event is delivered before its user's release marker is written.
        await wait_until(lambda: b"release" in kinds() and b"replay-done" in kinds())


async def test_a_replay_is_heard_on_a_park_topic_made_after_the_partition_was_recovered() -> None:
    """The park topic is made on the first park; the partition was recovered before that,
    with nothing to read. Replay requests for it must still be read once the topic exists."""
    receiver = Receiver()
    receiver.failing.add("ann")
    slow = parking_spec(retry_after=3600)
    async with Harness(receiver=receiver, destination_spec=slow, park_topic_missing=True) as h:
        h.consumer.assign([0])
        await h.settle()  # recovered: no park topic, nothing parked
        for n in range(3):
            h.send(0, "ann", str(n))
        await wait_until(lambda: len(h.parked_payloads("ann")) == 3)
        assert h.park_topic not in h.cluster.missing
        receiver.failing.clear()
        h.cluster.append(h.park_topic, 0, key=b"", value=b"", headers=replay_request_headers("r1"))
        await wait_until(lambda: receiver.payloads("ann") == ["0", "1", "2"])


@pytest.mark.parametrize("unknown_at_first", [0, 3])
async def test_parked_users_survive_a_restart_and_keep_their_order(unknown_at_first: int) -> None:
    """``unknown_at_first``: the park topic looks unknown to the first lookups after the
    restart (a broker restarting): that is asked again, never taken for "nothing parked"."""
    cluster = FakeCluster(partitions=2)
    receiver = Receiver()
    receiver.failing.add("ann")
    slow = parking_spec(retry_after=3600)
    async with Harness(cluster=cluster, receiver=receiver, destination_spec=slow) as first:
        for n in range(3):
            first.send(0, "ann", str(n))
        first.consumer.assign([0])
        await wait_until(lambda: len(first.parked_payloads("ann")) == 3)
        await wait_until(lambda: first.committed(0) == 3)
    receiver.failing.clear()
    fast = parking_spec(retry_after=0.05)
    async with Harness(cluster=cluster, receiver=receiver, destination_spec=fast) as second:
        second.lookups.unknown = unknown_at_first
        second.send(0, "ann", "3")  # live, after the restart: must wait for the parked ones
        second.consumer.assign([0])
        await wait_until(lambda: len(receiver.payloads("ann")) >= 4, within=15)
        assert receiver.payloads("ann") == ["0", "1", "2", "3"]


async def test_a_lookup_waiting_on_kafka_does_not_eat_the_shutdown() -> None:
    async with Harness(drain_timeout=2.0) as h:
        h.send(0, "ann", "0")
        h.consumer.assign([0])
        await wait_until(lambda: h.receiver.payloads("ann") == ["0"])
        h.cluster.hold_answers()
        h.consumer.assign([1])  # its recovery now waits on Kafka
        await h.settle()
        started = time.monotonic()
        h.stop.set()
        try:
            await asyncio.wait_for(h.task, 10)  # type: ignore[arg-type]
        finally:
            h.cluster.release_answers()
        took = time.monotonic() - started
    assert h.committed(0) == 1  # the final commit went out
    assert h.lookups.closed
    assert took < 1.5, f"shutdown waited {took:.1f}s for a lookup nobody needed"


async def test_the_poison_guard_opens_the_breaker_instead_of_parking_everyone() -> None:
    receiver = Receiver()
    receiver.down = True
    guarded = spec(
        breaker=BreakerPolicy(consecutive_failures=1000, min_volume=1000, cooldown=Duration(0.05)),
        parking=ParkingPolicy(retry_schedule=(Duration(0.05),), poison_users=3),
    )
    async with Harness(receiver=receiver, destination_spec=guarded) as h:
        for n in range(20):
            h.send(0, f"u{n}", "0")
        h.consumer.assign([0])
        await wait_until(lambda: h.worker.breaker_state is not State.CLOSED)
        assert h.worker.book.user_count <= 2
        receiver.down = False
        await wait_until(lambda: len(receiver.received) == 20)


async def test_an_assignment_arriving_while_the_worker_closes_is_ignored() -> None:
    h = Harness()
    async with h:
        await h.settle()
        h.consumer.assign([0, 1])  # arrives only in close(), on the closing thread
        h.stop.set()
        assert h.task is not None
        await asyncio.wait_for(h.task, timeout=10)
    assert h.task.exception() is None


async def test_a_broker_restarting_while_a_partition_is_placed_only_delays_it() -> None:
    async with Harness() as h:
        h.lookups.failing = 3  # the committed offset cannot be read for a while
        h.send(0, "ann", "0")
        h.consumer.assign([0])
        await wait_until(lambda: h.receiver.payloads("ann") == ["0"], within=15)
        assert h.worker.stopped_by is None


async def test_a_brand_new_group_honours_start_from_latest() -> None:
    async with Harness(start_from="latest") as h:
        h.send(0, "ann", "old")
        h.consumer.assign([0])
        await wait_until(
            lambda: h.consumer.position([TopicPartition(TOPIC, 0)])[0].offset == 1,
            what="partition 0 placed at its end",
        )
        h.send(0, "ann", "new")
        await wait_until(lambda: h.receiver.payloads("ann") == ["new"])


async def test_a_committed_offset_lost_to_retention_resumes_at_the_earliest_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cluster = FakeCluster(partitions=1)
    async with Harness(cluster=cluster, start_from="latest") as h:
        for n in range(10):
            h.send(0, "ann", str(n))
        cluster.committed["test.dest", TOPIC, 0] = (2, None)
        cluster.low[TOPIC, 0] = 6  # offsets 2..5 expired before this group read them
        h.consumer.assign([0])
        await wait_until(lambda: h.receiver.payloads("ann") == ["6", "7", "8", "9"])
    assert "events lost to retention" in caplog.text and "lost=4" in caplog.text


async def test_an_event_near_retention_is_parked_while_the_destination_is_down() -> None:
    receiver = Receiver()
    receiver.down = True
    cluster = FakeCluster(partitions=1, clock_ms=lambda: int(time.time() * 1000))
    long_cooldown = spec(
        breaker=BreakerPolicy(
            consecutive_failures=1, cooldown=Duration(3600), max_cooldown=Duration(3600)
        )
    )
    async with Harness(
        cluster=cluster, receiver=receiver, destination_spec=long_cooldown, retention_ms=1000
    ) as h:
        for n in range(3):
            h.send(0, "ann", str(n))
        h.consumer.assign([0])
        # 75 % of a 1 s retention: parked within a second, never dead-lettered or lost.
        await wait_until(lambda: len(h.parked_payloads("ann")) == 3, within=5)
        await wait_until(lambda: h.committed(0) == 3)
    assert not h.records(DEAD_LETTERS)


def test_specs_used_here_are_valid() -> None:
    assert replace(spec(), max_buffered=10, concurrency=2).max_buffered == 10


def test_an_idle_destination_polls_once_a_beat_and_never_spins() -> None:
    # On uvloop, the services' loop, whose clock counts whole milliseconds: a nap woken on
    # its beat must last until the next one, not end at once on the same beat.
    import uvloop  # noqa: PLC0415 - the loop under test, not this module's

    async def polls_while_idle() -> int:
        async with Harness() as h:
            h.consumer.assign([0, 1, 2, 3])
            await wait_until(lambda: h.consumer.calls > 0, what="the first poll")
            await asyncio.sleep(0.3)  # past the naps' ramp up to IDLE_SLEEP_MAX
            before = h.consumer.calls
            await asyncio.sleep(1.0)  # the span measured
            return h.consumer.calls - before

    polls = uvloop.run(polls_while_idle())
    assert 5 <= polls <= 13, f"{polls} polls in 1 s idle, one per {IDLE_SLEEP_MAX}s beat expected"
