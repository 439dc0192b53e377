"""What a process used, read from the operating system: CPU (the whole process, and its main
thread, where the event loop runs), how long that thread waited for a core, RSS and threads;
and what it says itself on its Prometheus page.

On Linux the main thread's figures come from ``/proc/<pid>/task/<pid>/schedstat``; elsewhere
the busiest thread stands for the loop and waiting is unknown (0).
"""

from __future__ import annotations

import contextlib
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from benchmarks.exceptions import BenchError

__all__ = [
    "POLL_INTERVAL",
    "Counters",
    "ProcessWatch",
    "free_port",
    "mean",
    "port_is_free",
    "read_metric",
    "wait_for",
]

POLL_INTERVAL = 0.1
"""Seconds between two looks at something the benchmarks wait for."""


@dataclass(frozen=True, slots=True)
class Counters:
    """A process's cumulative CPU counters at one moment (or their growth over a window)."""

    cpu: float = 0.0
    """CPU seconds of the whole process (all threads)."""
    loop_cpu: float = 0.0
    """CPU seconds of its main thread, where the event loop runs."""
    loop_wait: float = 0.0
    """Seconds the main thread was ready to run but waited for a core (Linux only): high when
    the machine's other users crowd it out, so a low CPU % is not mistaken for idling."""

    def __sub__(self, earlier: Counters) -> Counters:
        return Counters(
            self.cpu - earlier.cpu,
            self.loop_cpu - earlier.loop_cpu,
            self.loop_wait - earlier.loop_wait,
        )

    def __add__(self, other: Counters) -> Counters:
        return Counters(
            self.cpu + other.cpu,
            self.loop_cpu + other.loop_cpu,
            self.loop_wait + other.loop_wait,
        )

    def per_second(self, seconds: float) -> Counters:
        """These counters as shares of one core over ``seconds`` of wall time."""
        if seconds <= 0:
            return Counters()
        return Counters(self.cpu / seconds, self.loop_cpu / seconds, self.loop_wait / seconds)


class ProcessWatch:
    """Samples of one process's counters, RSS and threads; after it exited, the last stand.

    With ``tree``, of the process and every process below it taken together (a supervisor and
    its children): CPU, RSS and threads add up, and 'main thread' is each one's main thread.
    """

    def __init__(self, pid: int, *, tree: bool = False) -> None:
        self.pid = pid
        self.tree = tree
        self._view = psutil.Process(pid)
        self.counters = Counters()
        self.rss = 0
        self.peak_rss = 0
        self.threads = 0
        self.processes = 1

    def sample(self, *, per_thread: bool = True) -> Counters:
        """Read the counters now (the main thread's too unless ``per_thread`` is false)."""
        try:
            views = [self._view, *(self._view.children(recursive=True) if self.tree else [])]
            root = _read(self._view, per_thread)
        except psutil.Error:
            return self.counters
        readings = [root]
        for view in views[1:]:
            with contextlib.suppress(psutil.Error):  # a child that just exited
                readings.append(_read(view, per_thread))
        self.counters = sum((r.counters for r in readings), Counters())
        self.rss = sum(r.rss for r in readings)
        self.threads = sum(r.threads for r in readings)
        self.processes = len(readings)
        self.peak_rss = max(self.peak_rss, self.rss)
        return self.counters


@dataclass(frozen=True, slots=True)
class _Reading:
    counters: Counters
    rss: int
    threads: int


def _read(view: psutil.Process, per_thread: bool) -> _Reading:
    with view.oneshot():
        times = view.cpu_times()
        memory = view.memory_info()
        threads = view.num_threads()
        scheduled = _main_thread_schedstat(view.pid) if per_thread else (0.0, 0.0)
        if scheduled is None:  # not Linux: CPU from psutil, waiting unknown
            scheduled = (_busiest_thread_cpu(view), 0.0)
    return _Reading(Counters(times.user + times.system, *scheduled), memory.rss, threads)


def _busiest_thread_cpu(view: psutil.Process) -> float:
    threads = view.threads()
    main = next((t for t in threads if t.id == view.pid), None)  # Linux: the tid is the pid
    if main is None:  # elsewhere: the busiest thread stands for the loop
        main = max(threads, key=lambda t: t.user_time + t.system_time)
    return main.user_time + main.system_time


def _main_thread_schedstat(pid: int) -> tuple[float, float] | None:
    """Seconds the main thread of ``pid`` ran, and waited on a run queue (Linux only)."""
    try:  # "<ns on cpu> <ns waiting on a runqueue> <timeslices>"
        ran, waited, _ = Path(f"/proc/{pid}/task/{pid}/schedstat").read_text().split()
        return int(ran) / 1e9, int(waited) / 1e9
    except (OSError, ValueError):
        return None


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` until it holds; ``BenchError`` naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise BenchError(f"{what} did not happen within {timeout:g}s")
        time.sleep(POLL_INTERVAL)


def read_metric(url: str, name: str) -> float | None:
    """The sum of metric ``name`` over its label sets on the Prometheus page at ``url``;
    ``None`` if absent or unreachable."""
    try:
        text = httpx.get(url, timeout=2.0).raise_for_status().text
    except httpx.HTTPError:
        return None
    values = re.findall(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", text, re.MULTILINE)
    return sum(float(value) for value in values) if values else None


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(port: int) -> bool:
    """Whether nobody listens on loopback ``port`` right now."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def mean(values: list[float]) -> float | None:
    """The arithmetic mean, ``None`` for no values."""
    return sum(values) / len(values) if values else None
