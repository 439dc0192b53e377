"""Many destinations in one dispatcher process: each delivers the same small pre-loaded batch;
how long that takes, how much memory and how many threads it needs, and what the idle
consumers cost afterwards."""

from __future__ import annotations

import time
from dataclasses import dataclass

import click

from benchmarks.dispatch.events import count_records
from benchmarks.dispatch.harness import Bench, http_destination
from benchmarks.dispatch.plan import DISPATCHER, MEMORY_GOAL_BYTES
from benchmarks.dispatch.runs import Run
from benchmarks.measure import POLL_INTERVAL, Counters
from benchmarks.processes import Child
from benchmarks.report import markdown_table

__all__ = ["ManyDestinations", "many_destinations", "section"]


def deadline(destinations: int) -> float:
    """Seconds the many-destination dispatcher has to start and deliver every batch: 30, and
    more for many (hundreds of consumer groups join one after another on a small shared
    broker, and their first offset lookups share a few clients: 315 s for 950)."""
    return 30.0 + 0.3 * destinations


IDLE_WINDOW = 3.0
"""Seconds the many-destination dispatcher is watched idling afterwards."""
QUIET_TIMEOUT = 15.0
"""Longest wait for the sink to go quiet before idle CPU is measured anyway."""


@dataclass(frozen=True, slots=True)
class ManyDestinations:
    """One dispatcher process hosting many destinations."""

    destinations: int
    batch: int
    complete: int
    """Destinations that delivered their whole batch before the deadline."""
    arrivals: int
    """Requests the sink answered; above ``destinations * batch`` when attempts that timed
    out were retried."""
    dead_lettered: int
    """Records in the dead-letter topic once the process stopped."""
    seconds: float
    """From starting the process until every batch was delivered (or the deadline)."""
    rss: int
    """RSS when every destination had delivered its batch (or at the deadline)."""
    peak_rss: int
    threads: int
    idle: Counters
    """CPU seconds per second once every batch was delivered: the cost of idle consumers."""


def many_destinations(bench: Bench) -> ManyDestinations:
    """One process, ``plan.destinations`` http destinations (manifest defaults), each
    delivering the same small pre-loaded batch."""
    plan, sink = bench.plan, bench.sink
    topic = bench.fresh_topic("batch", events=plan.batch, users=min(plan.users, plan.batch))
    tags = [f"d{number:03d}" for number in range(plan.destinations)]
    manifest = bench.manifest(
        "many", topic, [http_destination(tag, sink.url(0, tag)) for tag in tags]
    )
    paths = [f"/latency/0/{tag}" for tag in tags]
    sink.reset()
    started, complete, stats = time.monotonic(), 0, sink.stats()
    with bench.started("dispatcher-many", bench.dispatcher_argv(manifest)) as client:
        while time.monotonic() - started < deadline(plan.destinations) and client.running():
            time.sleep(0.25)
            client.watch.sample(per_thread=False)
            stats = sink.stats()
            complete = sum(stats.distinct.get(path, 0) >= plan.batch for path in paths)
            if complete == len(paths):
                break
        seconds = time.monotonic() - started
        client.watch.sample()
        rss, idle = client.watch.rss, _idle_cpu(bench, client)
    if complete < len(paths):
        click.echo(
            f"    only {complete} complete; dispatcher log:\n{client.log_tail(1500)}", err=True
        )
    return ManyDestinations(
        destinations=plan.destinations,
        batch=plan.batch,
        complete=complete,
        arrivals=stats.count,
        dead_lettered=count_records(plan.bootstrap, f"{topic}.dead-letter"),
        seconds=seconds,
        rss=rss,
        peak_rss=client.watch.peak_rss,
        threads=client.watch.threads,
        idle=idle,
    )


def _idle_cpu(bench: Bench, client: Child) -> Counters:
    """CPU per second of ``client`` once nothing arrives at the sink any more (retries of
    timed-out attempts may still be running when every batch is complete)."""
    quiet_since, seen = time.monotonic(), bench.sink.stats().count
    deadline = quiet_since + QUIET_TIMEOUT
    while time.monotonic() - quiet_since < 1.0 and time.monotonic() < deadline:
        time.sleep(POLL_INTERVAL)
        if (count := bench.sink.stats().count) != seen:
            quiet_since, seen = time.monotonic(), count
    before, started = client.watch.sample(), time.monotonic()
    time.sleep(IDLE_WINDOW)
    used = client.watch.sample() - before
    return used.per_second(time.monotonic() - started)


def section(many: ManyDestinations, runs: list[Run]) -> str:
    """The report's section on many destinations (memory compared with ``runs``)."""
    singles = [r.peak_rss for r in runs if r.client == DISPATCHER]
    single = min(singles) if singles else 0
    extra = (many.rss - single) / max(1, many.destinations - 1) if single else 0.0
    mib = 1 << 20
    under = "yes" if many.peak_rss < MEMORY_GOAL_BYTES else "NO"
    cells = [
        str(many.destinations),
        f"{many.complete} of {many.destinations}",
        f"{many.arrivals:,} of {many.destinations * many.batch:,}",
        f"{many.dead_lettered:,}",
        f"{many.seconds:.1f}",
        f"{many.rss / mib:.0f}",
        f"{many.peak_rss / mib:.0f}",
        f"{many.rss / mib / many.destinations:.2f}",
        f"{extra / mib:.2f}" if single else "-",
        str(many.threads),
        f"{many.threads / many.destinations:.1f}",
        f"{100 * many.idle.cpu:.0f}",
        f"{100 * many.idle.loop_cpu:.0f}",
        f"{1000 * many.idle.cpu / many.destinations:.2f}",
        under,
    ]
    header = [
        *("destinations", "delivered whole batch", "sink arrivals", "dead-lettered"),
        *("seconds to all delivered", "RSS MiB", "peak RSS MiB", "RSS per destination MiB"),
        *("RSS per extra destination MiB", "threads", "threads per destination"),
        *("idle CPU %", "idle loop CPU %", "idle CPU per destination ms/s", "under 1 GiB"),
    ]
    return "\n".join(
        [
            f"## {many.destinations} destinations in one process",
            "",
            "Each an http destination with the default concurrency, max_buffered and"
            " max_connections (attempt timeout 5 s, 2 retries), each delivering the same"
            f" {many.batch}-event batch to the 0 ms sink; RSS and threads read once every batch"
            " had arrived (all consuming), or at the deadline. 'Delivered whole batch' counts"
            " distinct event ids at the sink; arrivals above the batch total are attempts that"
            " timed out in the dispatcher and were retried; dead letters are events it gave up"
            " on. 'Per extra destination' is over the smallest one-destination dispatcher above."
            f" Idle CPU is over {IDLE_WINDOW:g} s afterwards, with nothing left to deliver (% of"
            " one core; per destination in ms of CPU per second).",
            "",
            markdown_table(header, [cells], left=(-1,)),
        ]
    )
