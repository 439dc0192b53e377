"""The broker in the foreground under a process runner (``python -m localkafka run``), stopping
after its clients.

honcho sends SIGTERM to every process at once. A broker that stopped at once would leave the
dispatchers committing and leaving their consumer groups against a dead broker: they hang until
honcho's SIGKILL, and their stale group members then delay the next start's partition
assignment. So the broker runs as a child in a process group of its own (honcho's signal to
this process's group does not reach it), and on SIGTERM or SIGINT this process first waits,
bounded by ``linger``, until no consumer group has members left, then stops the broker and
exits with its code. The child carries PR_SET_PDEATHSIG=SIGKILL: should this process be killed
(honcho's SIGKILL after 5 s), the broker dies with it and no java process outlives the runner.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable

from confluent_kafka import ConsumerGroupState
from confluent_kafka.admin import AdminClient

from localkafka.broker import NativeBroker

__all__ = ["groups_with_members", "run_foreground"]

_PR_SET_PDEATHSIG = 1
_SETTLED = frozenset({ConsumerGroupState.EMPTY, ConsumerGroupState.DEAD})


def groups_with_members(bootstrap: str, *, timeout: float = 1.0) -> list[str] | None:
    """Consumer groups that still have members; None if the broker did not answer."""
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    try:
        listed = admin.list_consumer_groups(request_timeout=timeout).result(timeout=timeout + 1)
    except Exception:
        return None
    return [group.group_id for group in listed.valid if group.state not in _SETTLED]


def run_foreground(broker: NativeBroker, *, linger: float) -> int:
    """Run ``broker`` until it exits or a signal stops it; return its exit code."""
    command = broker.foreground_command()
    parent = os.getpid()
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        process_group=0,
        # prctl must run in the child; no other thread exists in this process yet.
        preexec_fn=lambda: _die_with(parent),  # noqa: PLW1509
    )
    broker.pid_file.write_text(f"{process.pid}\n")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    while process.poll() is None and not stop.is_set():
        stop.wait(0.2)
    if process.poll() is None:
        _wait_for_clients(broker.bootstrap, linger, alive=lambda: process.poll() is None)
        process.terminate()
    code = process.wait()
    broker.pid_file.unlink(missing_ok=True)
    return code


def _wait_for_clients(bootstrap: str, linger: float, *, alive: Callable[[], bool]) -> None:
    deadline = time.monotonic() + linger
    busy: list[str] | None = []
    said = False
    while alive() and time.monotonic() < deadline:
        busy = groups_with_members(bootstrap, timeout=min(1.0, linger))
        if not busy:
            return
        if not said:  # once: an operator (and a test) can see why the broker still runs
            print(
                f"kafka: waiting up to {linger:.0f}s for members to leave groups "
                f"{', '.join(sorted(busy))}",
                file=sys.stderr,
                flush=True,
            )
            said = True
        time.sleep(0.1)
    if busy:
        print(
            f"kafka: stopping with members still in groups {', '.join(sorted(busy))} "
            f"after {linger:.0f}s",
            file=sys.stderr,
            flush=True,
        )


def _die_with(parent: int) -> None:
    """In the child before exec: get SIGKILL when the parent dies (Linux)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
