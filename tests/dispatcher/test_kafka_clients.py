"""A process holds about 1,000 Kafka clients: its workers share one park consumer and a small
budget of lookup consumers, on a real broker."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer

from dispatcher.app import run_dispatcher
from dispatcher.lookups import (
    LOOKUP_CLIENTS,
    PROCESS_CLIENTS,
    ConsumerLookups,
    LookupSlots,
    lookup_clients,
)
from dispatcher.lookups import _new_consumer as new_lookup_consumer
from dispatcher.manifest import MAX_DESTINATIONS, load_manifests
from dispatcher.park_reader import ParkReader, ParkReaders
from eventlog.clients import producer_config
from eventlog.record import Event, encode
from tests.dispatcher.worker_harness import wait_until
from tests.kafka_fixtures import free_port
from tests.support.processes import write_manifest

pytestmark = [pytest.mark.kafka]

DEADLINE = 30.0


def produce(bootstrap: str, topic: str, partition: int, values: list[bytes]) -> None:
    producer = Producer(producer_config(bootstrap))
    for value in values:
        producer.produce(topic, value=value, partition=partition)
    assert producer.flush(10) == 0


def read_until_end(reader: ParkReader, partitions: set[int]) -> list[Message]:
    """Records ``reader`` returns until each of ``partitions`` said end-of-partition."""
    records: list[Message] = []
    ended: set[int] = set()
    deadline = time.monotonic() + DEADLINE
    while ended != partitions:
        assert time.monotonic() < deadline, f"ended {ended} of {partitions}"
        for message in reader.poll():
            error = message.error()
            if error is None:
                records.append(message)
            elif error.code() == KafkaError._PARTITION_EOF:
                ended.add(message.partition() or 0)
        time.sleep(0.01)
    return records


def test_one_consumer_reads_each_worker_its_own_park_topic(
    kafka_bootstrap: str, topic_factory: Callable[..., str]
) -> None:
    first, second = topic_factory(partitions=2), topic_factory(partitions=2)
    produce(kafka_bootstrap, first, 0, [b"a0", b"a1", b"a2"])
    produce(kafka_bootstrap, first, 1, [b"not asked for"])
    produce(kafka_bootstrap, second, 1, [b"b0", b"b1"])
    readers = ParkReaders(kafka_bootstrap)
    mine, theirs = readers.reader(first), readers.reader(second)
    assert not readers.open  # nothing assigned yet: no client made
    mine.assign(0, None)
    theirs.assign(1, 1)
    assert readers.open

    got_mine = read_until_end(mine, {0})
    got_theirs = read_until_end(theirs, {1})

    assert [(m.topic(), m.partition(), m.value()) for m in got_mine] == [
        (first, 0, b"a0"), (first, 0, b"a1"), (first, 0, b"a2"),
    ]  # fmt: skip
    assert [(m.topic(), m.value()) for m in got_theirs] == [(second, b"b1")]
    mine.close()
    theirs.close()


def test_an_unassigned_partition_is_read_no_more_and_the_last_reader_closes_the_client(
    kafka_bootstrap: str, topic_factory: Callable[..., str]
) -> None:
    first, second = topic_factory(partitions=1), topic_factory(partitions=1)
    readers = ParkReaders(kafka_bootstrap)
    mine, theirs = readers.reader(first), readers.reader(second)
    mine.assign(0, None)
    theirs.assign(0, None)
    read_until_end(mine, {0})
    read_until_end(theirs, {0})

    mine.unassign(0)
    produce(kafka_bootstrap, first, 0, [b"after"])
    produce(kafka_bootstrap, second, 0, [b"theirs"])
    assert [m.value() for m in read_until_end(theirs, {0})] == [b"theirs"]
    assert mine.poll() == []  # fetched after its unassignment, or never: not handed out

    mine.close()
    assert readers.open  # the other worker still reads through it
    theirs.close()
    assert not readers.open


class CountedSlots(LookupSlots):
    """The real budget, remembering how many slots were ever out at once, and whether one
    came back while a lookup was still running in its thread."""

    def __init__(self, slots: int) -> None:
        super().__init__(slots)
        self.out = 0
        self.most_out = 0
        self.back_while_asking = False

    async def take(self) -> None:
        await super().take()
        self.out += 1
        self.most_out = max(self.most_out, self.out)

    def give_back(self) -> None:
        self.out -= 1
        asking = any(t.name == "lookup" and t.is_alive() for t in threading.enumerate())
        self.back_while_asking |= asking
        super().give_back()


async def test_many_workers_lookups_share_a_budget_of_clients_and_all_are_answered(
    kafka_bootstrap: str, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory(partitions=3)
    produce(kafka_bootstrap, topic, 2, [b"x", b"y"])
    slots = CountedSlots(2)
    # Kept open for minutes when idle unless another worker needs the slot: a worker that did
    # not give its slot back when the budget ran out would hold up the rest past the timeout.
    workers = [
        ConsumerLookups(kafka_bootstrap, f"{topic}-group-{n}", slots=slots, idle_close=600)
        for n in range(6)
    ]

    async def ask(lookups: ConsumerLookups) -> tuple[int, int, int | None]:
        low, high = await lookups.watermarks(topic, 2)
        committed = await lookups.committed(topic, 2)
        return low, high, committed.offset

    async with asyncio.timeout(DEADLINE):
        answers = await asyncio.gather(*(ask(lookups) for lookups in workers))
    assert answers == [(0, 2, None)] * len(workers)
    assert slots.most_out == 2
    for lookups in workers:
        await lookups.close()
    assert slots.out == 0


async def test_a_lookup_its_caller_gave_up_on_keeps_its_client_until_kafka_answers() -> None:
    """Closing the client under a lookup still waiting in its thread would free its slot for
    another client while this one lives on: more clients than the budget, and a close racing
    a call on the same handle."""
    slots = CountedSlots(1)
    nobody = f"127.0.0.1:{free_port()}"  # a lookup there waits out its timeout
    lookups = ConsumerLookups(nobody, "group", slots=slots, timeout=2.0, idle_close=600)
    asking = asyncio.create_task(lookups.committed("events", 0))
    await wait_until(lambda: slots.out == 1, within=DEADLINE, what="the client opened")
    asking.cancel()  # the caller gives up (as progress does after 5 s)
    with contextlib.suppress(asyncio.CancelledError):
        await asking
    await wait_until(lambda: slots.out == 0, within=DEADLINE, what="the slot given back")
    assert not slots.back_while_asking
    await lookups.close()


def live_consumers() -> int:
    gc.collect()  # a closed client still referenced from a cycle is gone for Kafka already
    return sum(isinstance(thing, Consumer) for thing in gc.get_objects())


async def test_a_process_keeps_one_kafka_consumer_per_destination_and_a_few_shared(
    kafka_bootstrap: str,
    topic_factory: Callable[..., str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every destination parks a user (so each has a park topic to read) and looks up its
    partitions' offsets; the process never holds more consumers than one per destination,
    one for every park topic together and a lookup consumer each (while the process is small)."""
    topic = topic_factory(partitions=2)
    names = [f"down{n}" for n in range(8)]
    manifest = write_manifest(
        tmp_path / "shard.yaml", bootstrap=kafka_bootstrap, topic=topic,
        group_prefix=f"{topic}-g",
        destinations=[{"name": n, "type": "mock", "behavior": "fail"} for n in names],
        defaults={"timeout": "1s",
                  "retry": {"max_retries": 1, "initial_backoff": "10ms", "max_backoff": "10ms"}},
    )  # fmt: skip
    producer = Producer(producer_config(kafka_bootstrap))
    key, value, headers = encode(Event("e0", "u0", "x", int(time.time() * 1000)))
    producer.produce(topic, key=key, value=value, headers=headers)
    assert producer.flush(10) == 0
    caplog.set_level(logging.INFO, logger="dispatcher")
    baseline = live_consumers()
    stop = asyncio.Event()
    running = asyncio.create_task(run_dispatcher(load_manifests([manifest], environ={}), stop))

    def parked() -> set[str]:
        return {
            str(r.args[0]) for r in caplog.records
            if r.msg.startswith("user parked") and isinstance(r.args, tuple)
        }  # fmt: skip

    most = 0
    try:
        deadline = time.monotonic() + 60
        while parked() != set(names):
            assert time.monotonic() < deadline, f"parked only {sorted(parked())}"
            assert not running.done(), running
            most = max(most, live_consumers() - baseline)
            await asyncio.sleep(0.2)
        most = max(most, live_consumers() - baseline)
    finally:
        stop.set()
        stats = await running
    assert all(stats[n].parked == 1 for n in names), stats
    assert most <= len(names) + 1 + lookup_clients(len(names))


def test_a_small_process_has_a_lookup_consumer_per_worker_and_a_full_one_the_minimum() -> None:
    assert lookup_clients(5) == 5
    assert lookup_clients(400) == 400
    assert lookup_clients(MAX_DESTINATIONS) == PROCESS_CLIENTS - MAX_DESTINATIONS
    for destinations in range(1, MAX_DESTINATIONS + 1):  # never past the process's clients
        assert LOOKUP_CLIENTS <= lookup_clients(destinations) <= max(destinations, LOOKUP_CLIENTS)
        assert destinations + lookup_clients(destinations) <= PROCESS_CLIENTS


class Cycle:
    """Garbage only a collection frees: it refers to itself."""

    def __init__(self, client: Consumer) -> None:
        self.client = client
        self.me = self


def fill(held: list[Consumer], config: dict[str, object]) -> None:
    """Make clients into ``held`` until the process can make no more."""
    while len(held) < 1100:
        held.append(Consumer({**config, "group.id": "fill"}))


def test_a_process_out_of_client_keys_gets_a_lookup_client_back_from_garbage() -> None:
    """A closed client caught in a reference cycle keeps its thread-local key until the
    garbage is collected, and the processes collect rarely: making a lookup client when the
    keys ran out collects first, instead of failing while garbage holds them."""
    quiet = {"log_level": 0, "bootstrap.servers": f"127.0.0.1:{free_port()}"}
    held: list[Consumer] = []
    gc.disable()
    try:
        with pytest.raises(RuntimeError, match="thread local storage"):
            fill(held, quiet)
        assert len(held) > 900, "a process holds about 1,000 clients"
        last = held.pop()
        last.close()
        Cycle(last)
        del last  # closed, unreachable, but not collected: the key is still taken
        with pytest.raises(RuntimeError, match="thread local storage"):
            Consumer({**quiet, "group.id": "plain"})
        made = new_lookup_consumer({**quiet, "group.id": "lookups"})
        made.close()
    finally:
        gc.enable()
        for client in held:
            client.close()
