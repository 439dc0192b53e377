"""Random interleavings of fetching, completions and rebalances against the worker: the
buffer stays bounded, commits never pass an undelivered event, users stay in order."""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventlog.record import Event
from tests.dispatcher.worker_harness import TOPIC, Harness, Receiver, spec, wait_until

MAX_BUFFERED = 6
PARTITIONS = 3
USERS = ("ann", "bob", "cyd", "dan")


class Valve(Receiver):
    """Lets deliveries through only as the test releases them."""

    def __init__(self) -> None:
        super().__init__()
        self.tokens = asyncio.Semaphore(0)

    async def send(self, event: Event) -> None:
        await self.tokens.acquire()
        await super().send(event)


operations = st.lists(
    st.tuples(
        st.sampled_from(["send", "send", "assign", "revoke", "lose", "release", "release"]),
        st.integers(0, PARTITIONS - 1),
        st.integers(0, len(USERS) - 1),
        st.integers(1, 8),
    ),
    min_size=1,
    max_size=25,
)
"""(what, partition, user, count): send ``count`` events of a user, (re)assign, revoke or lose
a partition, or let ``count`` deliveries through."""


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=operations)
def test_random_interleavings_keep_the_worker_bounded_ordered_and_committed_safely(
    ops: list[tuple[str, int, int, int]],
) -> None:
    asyncio.run(_scenario(ops))


async def _scenario(ops: list[tuple[str, int, int, int]]) -> None:
    valve = Valve()
    sequence = {user: 0 for user in USERS}
    home = {user: n % PARTITIONS for n, user in enumerate(USERS)}  # a user's one partition
    async with Harness(
        receiver=valve, destination_spec=spec(max_buffered=MAX_BUFFERED, concurrency=3)
    ) as h:
        for kind, partition, number, count in ops:
            if kind == "send":
                user = USERS[number]
                for _ in range(count):
                    h.send(home[user], user, str(sequence[user]))
                    sequence[user] += 1
            elif kind == "assign" and partition not in h.consumer.assigned:
                h.consumer.assign([partition])
            elif kind == "revoke" and partition in h.consumer.assigned:
                h.consumer.revoke([partition])
            elif kind == "lose" and partition in h.consumer.assigned:
                h.consumer.lose([partition])
            elif kind == "release":
                for _ in range(count):
                    valve.tokens.release()
            await h.settle(3)
            _check(h, valve)
        # Everything flows once the valve opens and every partition is owned.
        h.consumer.assign(sorted(set(range(PARTITIONS)) - h.consumer.assigned))
        for _ in range(1000):
            valve.tokens.release()
        total = sum(sequence.values())
        await wait_until(lambda: len({e.id for e in valve.received}) == total, what="all delivered")
        _check(h, valve)


def _check(h: Harness, valve: Valve) -> None:
    assert h.worker.buffered <= MAX_BUFFERED, "the buffer must stay bounded"
    delivered = {e.id for e in valve.received}
    for partition, log in enumerate(h.cluster.topic(TOPIC)):
        committed = h.committed(partition) or 0
        for message in log[:committed]:
            user, payload = (message.key() or b"").decode(), (message.value() or b"").decode()
            assert f"{user}/{payload}" in delivered, "committed past an undelivered event"
    seen: dict[str, int] = {}
    for event in valve.received:
        number = int(event.payload)
        first_time = number >= seen.get(event.user_id, 0)
        if first_time:
            assert number == seen.get(event.user_id, 0), f"{event.user_id} out of order"
            seen[event.user_id] = number + 1
