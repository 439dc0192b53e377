"""The whole system in the foreground, for ``just up``: ``docker compose up`` where a Docker
engine answers, else honcho running the ``Procfile`` (without its kafka process when a broker
already runs, so ``just kafka-up`` followed by ``just up`` shares one broker). How the native
stack stops is told in ``procfile`` (honcho) and ``foreground`` (the broker stops last).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from localkafka import docker
from localkafka.broker import NativeBroker
from localkafka.readiness import broker_answers

__all__ = [
    "PROCFILE",
    "ProcessCounts",
    "StackPlan",
    "plan_stack",
    "process_counts",
    "procfile_processes",
    "run_stack",
]

ROOT = Path(__file__).resolve().parent.parent
PROCFILE = ROOT / "Procfile"
KAFKA_PROCESS = "kafka"
"""The Procfile's process that runs the broker; left out when one already runs."""

# honcho's own rule for a process line: ``name: command``.
_PROCFILE_LINE = re.compile(r"^([A-Za-z0-9_-]+):\s*(.+)$")


@dataclass(frozen=True, slots=True)
class StackPlan:
    """How the system will run, decided from what the machine offers."""

    runner: Literal["compose", "honcho"]
    """``compose``: Docker runs everything; ``honcho``: native processes from the Procfile."""
    command: tuple[str, ...]
    """compose: the ``docker`` command line; honcho: the Procfile processes to start."""
    summary: str
    """One line for the operator: what runs, and why this way."""


@dataclass(frozen=True, slots=True)
class ProcessCounts:
    """How many processes ingest and each dispatcher shard run (``INGEST_WORKERS``,
    ``DISPATCHER_PROCESSES``)."""

    ingest_workers: int
    dispatcher_processes: int


SHARDS = 2
"""Dispatcher shards the Procfile and the compose file run."""
MAX_INGEST_WORKERS = 4
"""Past this, ingest's throughput is the broker's (acks=all), not its workers'."""


def process_counts(cores: int, *, shards: int = SHARDS) -> ProcessCounts:
    """Sensible process counts for a machine with ``cores`` cores that also runs the broker:
    half of them for ingest (at most ``MAX_INGEST_WORKERS``), half shared by the dispatcher
    shards, each at least one."""
    half = max(1, cores // 2)
    return ProcessCounts(min(MAX_INGEST_WORKERS, half), max(1, half // shards))


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, where the platform tells it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def procfile_processes(text: str) -> list[str]:
    """The process names of a Procfile, in order (comments and other lines ignored)."""
    return [m.group(1) for line in text.splitlines() if (m := _PROCFILE_LINE.match(line))]


def plan_stack(
    *,
    docker_answers: bool,
    broker_pid: int | None,
    broker_answers: bool,
    bootstrap: str,
    processes: Sequence[str],
    compose_file: Path,
) -> StackPlan:
    """Choose the runner and which Procfile processes to start.

    ``broker_pid`` is this project's native broker if its pid file names a live one;
    ``broker_answers`` whether some broker answers on ``bootstrap`` (asked only when neither a
    native broker nor Docker decided it).
    """
    if broker_pid is None and docker_answers:
        return StackPlan(
            runner="compose",
            command=("docker", "compose", "-f", str(compose_file), "up", "--build"),
            summary="a Docker engine answers: running the stack with docker compose",
        )
    if broker_pid is not None or broker_answers:
        running = f"pid {broker_pid}" if broker_pid is not None else "not started by us"
        others = tuple(name for name in processes if name != KAFKA_PROCESS)
        return StackPlan(
            runner="honcho",
            command=others,
            summary=f"kafka already runs on {bootstrap} ({running}): using it, starting "
            f"{', '.join(others)}; Ctrl-C leaves that broker running",
        )
    return StackPlan(
        runner="honcho",
        command=tuple(processes),
        summary=f"starting {', '.join(processes)} (kafka on {bootstrap}); Ctrl-C stops all",
    )


def run_stack(broker: NativeBroker, *, native: bool, procfile: Path = PROCFILE) -> None:
    """Run the system in the foreground until Ctrl-C or SIGTERM; does not return normally.

    ``broker`` is where the Procfile's kafka process would run (``KAFKA_PORT``); ``native``
    skips the Docker check.
    """
    pid = broker.running_pid()
    answers_docker = not native and pid is None and docker.engine_answers()
    plan = plan_stack(
        docker_answers=answers_docker,
        broker_pid=pid,
        broker_answers=pid is None and not answers_docker and broker_answers(broker.bootstrap),
        bootstrap=broker.bootstrap,
        processes=procfile_processes(procfile.read_text()),
        compose_file=docker.COMPOSE_FILE,
    )
    counts = process_counts(usable_cores())
    # The environment wins: INGEST_WORKERS=1 ./just up runs one ingest process on any machine.
    os.environ.setdefault("INGEST_WORKERS", str(counts.ingest_workers))
    os.environ.setdefault("DISPATCHER_PROCESSES", str(counts.dispatcher_processes))
    print(
        f"up: {plan.summary} (ingest workers {os.environ['INGEST_WORKERS']}, dispatcher"
        f" processes per shard {os.environ['DISPATCHER_PROCESSES']})",
        flush=True,
    )
    if plan.runner == "compose":
        os.execvp(plan.command[0], plan.command)  # noqa: S606 - compose replaces this process
    from localkafka.procfile import run_procfile  # noqa: PLC0415 - honcho is a dev dependency

    sys.exit(run_procfile(procfile, plan.command))
