"""What each scenario does to the running system, under load. A fault function gets the run
(cluster, system, sink, load) and returns once the fault is over and the faulty part was
brought back; its fixed durations are the scenario's definition (a broker down for 20 s), not
waits for something to happen. Where it must wait for the system, it waits on a condition with
a deadline."""

from __future__ import annotations

import logging
import signal
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from confluent_kafka.admin import AdminClient

from eventlog.clients import admin_config
from localkafka.cluster import Cluster
from reliability.load import Load
from reliability.sink import Sink
from reliability.system import System

__all__ = [
    "FaultRun",
    "hanging_destination",
    "kill_dispatcher_repeatedly",
    "kill_ingest",
    "kill_leader",
    "kill_two_brokers",
    "stop_leader",
]

log = logging.getLogger("reliability")


@dataclass
class FaultRun:
    """What a fault acts on, and what it found worth reporting."""

    cluster: Cluster
    system: System
    sink: Sink
    load: Load
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    """Checks of the scenario's own that failed (beyond lost and order)."""


def _wait(run: FaultRun, condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        run.system.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout:.0f}s")
        time.sleep(0.1)


def _at_least(count: Callable[[], int], target: int) -> bool:
    return count() >= target


def busiest_leader(cluster: Cluster, topic: str) -> int:
    """The node leading the most partitions of ``topic``."""
    admin = AdminClient(admin_config(cluster.bootstrap))
    partitions = admin.list_topics(topic, timeout=10).topics[topic].partitions.values()
    leaders = Counter(p.leader for p in partitions if p.leader >= 0)
    return leaders.most_common(1)[0][0]


def _restart_nodes(run: FaultRun) -> None:
    started = time.monotonic()
    run.cluster.up(timeout=180)
    run.notes.append(f"nodes back in {time.monotonic() - started:.0f}s")


def kill_leader(run: FaultRun, *, down_for: float = 20.0) -> None:
    """1: SIGKILL the broker leading the most partitions; restart it ``down_for`` s later."""
    node = busiest_leader(run.cluster, run.system.topic)
    log.info("SIGKILL node %d (leads the most partitions)", node)
    run.cluster.signal_node(node, signal.SIGKILL)
    time.sleep(down_for)
    _restart_nodes(run)


def kill_two_brokers(run: FaultRun, *, down_for: float = 10.0, grace: float = 1.0) -> None:
    """2: SIGKILL two of the three brokers for ``down_for`` s: no in-sync quorum, so ingest
    must answer 503, never 202, until one is back (requests already in flight at the kill
    get ``grace`` seconds to be answered)."""
    first = busiest_leader(run.cluster, run.system.topic)
    second = next(n for n in (1, 2, 3) if n != first)
    log.info("SIGKILL nodes %d and %d", first, second)
    unavailable_before = run.load.answers["503"]
    killed_at = time.monotonic()
    run.cluster.signal_node(first, signal.SIGKILL)
    run.cluster.signal_node(second, signal.SIGKILL)
    time.sleep(down_for)
    back_at = time.monotonic()
    unavailable = run.load.answers["503"] - unavailable_before
    _restart_nodes(run)
    during = [t for t in run.load.acknowledged_at() if killed_at + grace < t < back_at]
    run.notes.append(f"202s while 2 of 3 down: {len(during)}; 503s: {unavailable}")
    if during:
        run.failures.append(f"ingest answered 202 {len(during)} times without a quorum")
    if not unavailable:
        # Requests kept coming: they must have been told to come back later.
        run.failures.append("ingest answered no 503 while 2 of 3 brokers were down")
    if run.load.answers["503 without Retry-After"]:
        run.failures.append("ingest answered 503 without Retry-After")


def stop_leader(run: FaultRun, *, stopped_for: float = 30.0) -> None:
    """3: a broker that stops answering without closing its connections (SIGSTOP) for
    ``stopped_for`` s, then SIGCONT."""
    node = busiest_leader(run.cluster, run.system.topic)
    log.info("SIGSTOP node %d", node)
    run.cluster.signal_node(node, signal.SIGSTOP)
    try:
        time.sleep(stopped_for)
    finally:
        run.cluster.signal_node(node, signal.SIGCONT)
    started = time.monotonic()
    if not run.cluster.wait_until_whole(timeout=120):
        run.failures.append(f"node {node} did not answer again within 120 s of SIGCONT")
    run.notes.append(f"node answers {time.monotonic() - started:.0f}s after SIGCONT")


def kill_dispatcher_repeatedly(run: FaultRun, *, times: int = 5, deliveries: int = 100) -> None:
    """4: SIGKILL the dispatcher ``times`` times, each after it delivered ``deliveries`` more
    requests, and restart it at once."""
    (dispatcher,) = run.system.dispatchers
    for i in range(times):
        target = run.sink.count() + deliveries
        _wait(run, partial(_at_least, run.sink.count, target), 60, f"{deliveries} deliveries")
        log.info("SIGKILL dispatcher (%d of %d)", i + 1, times)
        dispatcher.kill()
        dispatcher.start()


def scale_shard(run: FaultRun, *, deliveries: int = 300, extra: int = 2) -> None:
    """5: grow the shard from one dispatcher process to ``1 + extra`` under load, then shrink
    it back to one (SIGTERM: a clean leave), waiting for ``deliveries`` more at each size."""
    for size in (1 + extra, 1):
        target = run.sink.count() + deliveries
        _wait(run, partial(_at_least, run.sink.count, target), 90, f"{deliveries} deliveries")
        if size > len(run.system.dispatchers):
            log.info("scaling the shard up to %d processes", size)
            while len(run.system.dispatchers) < size:
                run.system.start_dispatcher()

            def all_own_partitions() -> bool:
                return all(
                    "partitions assigned" in d.log_tail(1_000_000) for d in run.system.dispatchers
                )

            _wait(run, all_own_partitions, 90, "every process to own partitions")
        else:
            log.info("scaling the shard down to %d process", size)
            while len(run.system.dispatchers) > size:
                leaving = run.system.dispatchers.pop()
                leaving.stop()
    target = run.sink.count() + deliveries
    _wait(run, partial(_at_least, run.sink.count, target), 90, f"{deliveries} deliveries")


def kill_ingest(run: FaultRun, *, times: int = 3, accepted: int = 200) -> None:
    """7: SIGKILL ingest ``times`` times under load, each after ``accepted`` more 202s, and
    start it again on the same port."""
    ingest = run.system.ingest
    assert ingest is not None
    for i in range(times):
        target = len(run.load.accepted()) + accepted
        _wait(run, partial(_at_least, run.load.count_accepted, target), 60, f"{accepted} more 202s")
        log.info("SIGKILL ingest (%d of %d)", i + 1, times)
        ingest.kill()
        run.system.start_ingest()


def hanging_destination(
    run: FaultRun, *, name: str, concurrency: int, watch_for: float = 40.0
) -> None:
    """6: destination ``name`` accepts connections and never answers, its breaker set never
    to open. The dispatcher's open sockets, threads and tasks, sampled once every slot has an
    attempt hanging there and again ``watch_for`` s later, after many timeouts, must not grow
    (timeouts bound everything)."""
    (dispatcher,) = run.system.dispatchers

    def attempts() -> int:
        return sum(1 for d in run.sink.deliveries() if d.destination == name)

    full = 2 * concurrency  # every slot busy, and its first attempts timed out
    _wait(run, lambda: attempts() >= full, 60, f"{full} attempts at {name}")
    before = _resources(dispatcher.pid)
    tasks_before = _tasks(dispatcher.metrics_url)
    time.sleep(watch_for)
    after = _resources(dispatcher.pid)
    tasks_after = _tasks(dispatcher.metrics_url)
    run.notes.append(
        f"dispatcher sockets {before[0]}→{after[0]}, threads {before[1]}→{after[1]}, "
        f"asyncio tasks {tasks_before}→{tasks_after}"
    )
    # A few sockets of slack: librdkafka reconnects, the pool opens and closes connections.
    if after[0] > before[0] + 5 or after[1] > before[1] + 2:
        run.failures.append(f"the dispatcher's sockets/threads grew: {before} → {after}")
    # Deliveries waiting on the hanging destination are bounded by its concurrency, and all
    # of them were running at the first sample: a few tasks of slack for bookkeeping.
    if tasks_before is not None and tasks_after is not None and tasks_after > tasks_before + 10:
        run.failures.append(f"the dispatcher's asyncio tasks grew: {tasks_before} → {tasks_after}")


def _tasks(url: str | None) -> int | None:
    """The dispatcher's ``event_loop_tasks`` gauge, if it answers."""
    if url is None:
        return None
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
            text = response.read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("event_loop_tasks") and not line.startswith("#"):
            return int(float(line.rsplit(" ", 1)[1]))
    return None


def _resources(pid: int) -> tuple[int, int]:
    """Open sockets and threads of a process."""
    fds = Path(f"/proc/{pid}/fd")
    sockets = 0
    for fd in fds.iterdir():
        try:
            if fd.readlink().name.startswith("socket:"):
                sockets += 1
        except OSError:
            continue
    threads = len(list(Path(f"/proc/{pid}/task").iterdir()))
    return sockets, threads
