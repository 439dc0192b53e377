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

__all__ = ["PROCFILE", "StackPlan", "plan_stack", "procfile_processes", "run_stack"]

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
    print(f"up: {plan.summary}", flush=True)
    if plan.runner == "compose":
        os.execvp(plan.command[0], plan.command)  # noqa: S606 - compose replaces this process
    from localkafka.procfile import run_procfile  # noqa: PLC0415 - honcho is a dev dependency

    sys.exit(run_procfile(procfile, plan.command))
