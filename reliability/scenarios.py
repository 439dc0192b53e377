"""The scenarios of issue 12 and the run of one: start the system, load it, apply the fault,
let it settle, and judge what the destinations received against what ingest acknowledged."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from localkafka.cluster import Cluster
from reliability import faults
from reliability.check import Verdict, judge, longest_gap
from reliability.load import Load
from reliability.sink import Sink
from reliability.system import System

__all__ = ["QUICK", "SCENARIOS", "Outcome", "Scenario", "run_scenario", "wait_until_settled"]

log = logging.getLogger("reliability")

DESTINATIONS = ("alpha", "beta")
"""The destinations every event must reach (each its own consumer group)."""
HANGING = "stuck"
HANGING_CONCURRENCY = 32
"""Slots of the hanging destination: each holds an attempt that times out, again and again."""


@dataclass(frozen=True)
class Scenario:
    key: str
    """Short name, used on the command line and in topic names."""
    title: str
    """The row's name in the report."""
    fault: Callable[[faults.FaultRun], None]
    hanging: bool = False
    """Whether a destination that never answers runs beside the good ones."""


SCENARIOS = [
    Scenario(
        "leader-kill", "1. SIGKILL the busiest leader, restart 20 s later", faults.kill_leader
    ),
    Scenario("two-brokers", "2. SIGKILL 2 of 3 brokers for 10 s", faults.kill_two_brokers),
    Scenario("sigstop", "3. SIGSTOP the busiest leader for 30 s", faults.stop_leader),
    Scenario(
        "dispatcher-kill", "4. SIGKILL the dispatcher 5 times", faults.kill_dispatcher_repeatedly
    ),
    Scenario("scale", "5. scale a shard 1 → 3 → 1 processes under load", faults.scale_shard),
    Scenario(
        "hanging",
        "6. a destination that never answers",
        partial(faults.hanging_destination, name=HANGING, concurrency=HANGING_CONCURRENCY),
        hanging=True,
    ),
    Scenario("ingest-kill", "7. SIGKILL ingest 3 times under load", faults.kill_ingest),
]
QUICK = ("leader-kill", "dispatcher-kill", "ingest-kill")
"""The scenarios that run in CI (a few minutes in all)."""


@dataclass(frozen=True)
class Outcome:
    """One row of the report."""

    scenario: Scenario
    verdict: Verdict
    longest_unavailable: float
    """Seconds, at worst, in which no request got a 202 (from the fault's start)."""
    recovered: bool
    """Every accepted event delivered within the settle time, with ingest answering 202
    again, with no restart but the scenario's own."""
    answers: dict[str, int]
    notes: tuple[str, ...]
    failures: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return self.verdict.passed and self.recovered and not self.failures


def run_scenario(
    scenario: Scenario,
    cluster: Cluster,
    workdir: Path,
    *,
    users: int = 200,
    rate: float = 200.0,
    warmup: float = 3.0,
    after: float = 5.0,
    settle: float = 180.0,
) -> Outcome:
    """Run ``scenario`` on ``cluster`` (brought up whole first) and judge it."""
    cluster.up(timeout=180)
    destinations: list[dict[str, Any]] = []
    with Sink() as sink:
        destinations = [{"name": n, "type": "http", "url": sink.url(n)} for n in DESTINATIONS]
        if scenario.hanging:
            # Its breaker never opens, so the dispatcher keeps every slot on attempts that time
            # out: what the leak check must watch (an open breaker would leave it idle).
            never_opens = {"consecutive_failures": 10**6, "min_volume": 10**6}
            destinations.append(
                {"name": HANGING, "type": "http", "url": sink.url(HANGING, "hang"),
                 "breaker": never_opens, "concurrency": HANGING_CONCURRENCY}
            )  # fmt: skip
        system = System(cluster, workdir / scenario.key, scenario.key, destinations)
        with system:
            system.start_ingest()
            system.start_dispatcher()
            load = Load(system.ingest_url, users=users, rate=rate)
            with load:
                if not load.wait_for_accepted(int(rate * warmup), timeout=warmup * 10):
                    raise RuntimeError(f"ingest accepted too little:\n{load.answers}")
                run = faults.FaultRun(cluster, system, sink, load)
                fault_started = time.monotonic()
                log.info("%s: fault", scenario.key)
                again = False
                try:
                    scenario.fault(run)
                    # Ingest must accept again after the fault, without anyone's help.
                    again = load.wait_for_accepted(len(load.accepted()) + int(rate * after), 60)
                except Exception as exc:  # the scenario failed: that is its row, not a crash
                    run.failures.append(_first_line(exc))
                fault_over = time.monotonic()
                load_stopped = time.monotonic()
            try:
                settled = wait_until_settled(system, sink, load, settle)
            except RuntimeError as exc:
                run.failures.append(_first_line(exc))
                settled = False
            run.notes.extend(system.stopped_destinations())
            stored = system.stored_event_ids()
            if stored is None:
                run.notes.append("the topic could not be read to its end")
            else:
                absent = [a.event_id for a in load.accepted() if a.event_id not in stored]
                run.notes.append(f"202s missing from Kafka: {len(absent)}")
                if absent:
                    run.failures.append(f"{len(absent)} events answered 202 are not in Kafka")
            verdict = judge(
                load.accepted(),
                [d for d in sink.deliveries() if d.destination != HANGING],
                DESTINATIONS,
            )
        gap = longest_gap(load.acknowledged_at(), start=fault_started, end=load_stopped)
        log.info("%s: fault took %.0fs; %s", scenario.key, fault_over - fault_started, verdict)
    return Outcome(
        scenario=scenario,
        verdict=verdict,
        longest_unavailable=gap,
        recovered=again and settled,
        answers=dict(load.answers),
        notes=tuple(run.notes),
        failures=tuple(run.failures),
    )


def _first_line(exc: Exception) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def wait_until_settled(system: System, sink: Sink, load: Load, timeout: float) -> bool:
    """Wait until every accepted event reached every destination and every good destination
    committed the whole topic (so late redeliveries are in, too)."""
    accepted = {a.event_id for a in load.accepted()}
    deadline = time.monotonic() + timeout
    good = {d["name"] for d in system.destinations if d["name"] != HANGING}
    while time.monotonic() < deadline:
        system.check_alive()
        got: dict[str, set[str]] = {name: set() for name in good}
        for d in sink.deliveries():
            if d.destination in got:
                got[d.destination].add(d.event_id)
        if all(accepted <= ids for ids in got.values()) and system.lag(only=good) == 0:
            return True
        time.sleep(0.5)
    return False
