"""The buffer's tallies (events, bytes, events per partition), checked against a model with
hypothesis: they are kept as events come and go, so every way in and out must keep them."""

from __future__ import annotations

from collections import Counter

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from dispatcher.buffer import Buffer, Key
from dispatcher.jobs import Job
from dispatcher.partitions import PartitionState

PARTITIONS = (0, 1, 2)
USERS = ("ann", "bob", "cyd")


class BufferMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.buffer = Buffer(concurrency=2)
        self.states = {p: PartitionState(epoch=1) for p in PARTITIONS}
        self.offsets = Counter[int]()
        self.live: dict[int, Job] = {}
        """Every job in the buffer (queued, in flight or held), by id."""
        self.in_flight: dict[Key, Job] = {}

    def _job(self, partition: int, user: str, size: int, *, replay: bool = False) -> Job:
        self.offsets[partition] += 1
        job = Job(
            partition, self.offsets[partition], 1, user.encode(), b"x", [], 0, event=None,
            user=user, size=size, replay=replay,
        )  # fmt: skip
        self.live[id(job)] = job
        return job

    @rule(
        partition=st.sampled_from(PARTITIONS),
        user=st.sampled_from(USERS),
        size=st.integers(1, 500),
        replay=st.booleans(),
    )
    def push(self, partition: int, user: str, size: int, replay: bool) -> None:
        self.buffer.push(self._job(partition, user, size, replay=replay))

    @rule(partition=st.sampled_from(PARTITIONS), user=st.sampled_from(USERS))
    def hold(self, partition: int, user: str) -> None:
        self.buffer.hold(self.states[partition], self._job(partition, user, 100))

    @rule(partition=st.sampled_from(PARTITIONS))
    def release(self, partition: int) -> None:
        self.buffer.release(self.states[partition])

    @rule()
    def pop(self) -> None:
        ready = self.buffer.pop_ready()
        if ready is not None:
            key, job = ready
            self.in_flight[key] = job

    @precondition(lambda self: self.in_flight)
    @rule(data=st.data(), forget=st.booleans())
    def end(self, data: st.DataObject, forget: bool) -> None:
        key = data.draw(st.sampled_from(sorted(self.in_flight, key=repr)))
        job = self.in_flight.pop(key)
        if forget:
            self.buffer.forget(key, job)
            held = {id(j) for state in self.states.values() for j in state.held}
            for queued in [j for j in self.live.values() if _key(j) == key and j is not job]:
                if id(queued) not in held:
                    del self.live[id(queued)]  # forget drops the key's queued events too
        else:
            self.buffer.finish(key, job)
        del self.live[id(job)]

    @rule(partitions=st.sets(st.sampled_from(PARTITIONS), min_size=1))
    def drop(self, partitions: set[int]) -> None:
        self.buffer.drop(partitions, [self.states[p] for p in partitions])
        flying = {id(job) for job in self.in_flight.values()}
        for job in list(self.live.values()):
            if job.partition in partitions and id(job) not in flying:
                del self.live[id(job)]  # queued or held: dropped; in flight: kept

    @invariant()
    def tallies_match_what_is_held(self) -> None:
        jobs = list(self.live.values())
        assert self.buffer.count == len(jobs)
        assert self.buffer.bytes == sum(job.size for job in jobs)
        assert self.buffer.per_partition == Counter(job.partition for job in jobs)
        assert self.buffer.in_flight == len(self.in_flight)


def _key(job: Job) -> Key:
    return job.partition, job.user, job.replay


TestBuffer = BufferMachine.TestCase
TestBuffer.settings = settings(max_examples=200, stateful_step_count=40, deadline=None)
