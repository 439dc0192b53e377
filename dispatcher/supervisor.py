"""Several dispatcher processes of the same manifests under one supervisor
(``dispatcher --processes N``), so that one machine's cores all deliver: the children share
every destination's partitions through its consumer group, as separate machines would.

The supervisor only manages processes: it starts ``N`` children, forwards SIGINT and SIGTERM
to them, restarts a child that crashed (exponential backoff, one log line per restart), and
returns once every child has exited after a stop. Each child runs in a process group of its
own, so a Ctrl-C in the terminal reaches the children once, through the supervisor, instead of
twice (the dispatcher takes a second signal as "exit now"); on Linux a child also gets SIGTERM
should the supervisor die without stopping it, so none is left behind.

Metrics: child ``i`` (from 0) serves ``/metrics`` on ``metrics_port + i`` when a base port is
given; there is no aggregated endpoint (Prometheus sums over the children's targets).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import FrameType

__all__ = [
    "RestartPolicy",
    "child_command",
    "failures_after_exit",
    "resolve_processes",
    "restart_delay",
    "run_supervised",
    "usable_cores",
]

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
STOP_TIMEOUT = 60.0
"""Seconds the children have, after the first forwarded signal, to drain, commit and exit
before they are killed (the dispatcher's own bound is its ``--drain-timeout`` plus closing)."""
_MAX_WAIT = 1.0
"""Longest the supervisor sleeps without looking at its children (SIGCHLD wakes it sooner)."""
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """How soon a crashed child is started again."""

    initial: float = 1.0
    """Seconds before the first restart after a crash."""
    maximum: float = 30.0
    """The backoff doubles per consecutive crash up to this many seconds."""
    stable_after: float = 60.0
    """A child that ran at least this long before crashing starts its backoff afresh."""


def restart_delay(failures: int, policy: RestartPolicy | None = None) -> float:
    """Seconds to wait before restarting a child that crashed ``failures`` times in a row
    (``1`` for the first crash): 1, 2, 4, ... seconds, at most ``policy.maximum``."""
    policy = policy or RestartPolicy()
    if failures < 1:
        raise ValueError("failures counts crashes: at least 1")
    # min() on the exponent first: 2.0 ** a huge failure count would overflow a float.
    return min(policy.maximum, policy.initial * 2.0 ** min(failures - 1, 64))


def failures_after_exit(previous: int, ran_for: float, policy: RestartPolicy | None = None) -> int:
    """Consecutive crashes counting this one, for a child that ran ``ran_for`` seconds after
    ``previous`` crashes in a row: a long run means the last crash is not part of a loop."""
    policy = policy or RestartPolicy()
    return 1 if ran_for >= policy.stable_after else previous + 1


def child_command(child_argv: Sequence[str], index: int, metrics_port: int | None) -> list[str]:
    """The command line of child ``index``: ``child_argv``, plus ``--metrics-port`` with the
    child's own port (``metrics_port + index``) when a base port is given."""
    if metrics_port is None:
        return list(child_argv)
    return [*child_argv, "--metrics-port", str(metrics_port + index)]


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, where the platform tells it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def resolve_processes(value: str) -> int:
    """The number of processes ``--processes`` asks for: a positive integer, or ``auto`` for
    the number of cores."""
    if value.strip().lower() == "auto":
        return usable_cores()
    try:
        processes = int(value)
    except ValueError:
        raise ValueError(f"{value!r} is neither a number of processes nor 'auto'") from None
    if processes < 1:
        raise ValueError(f"{processes} processes: at least 1")
    return processes


def run_supervised(
    child_argv: list[str],
    processes: int,
    *,
    env: dict[str, str] | None = None,
    metrics_port: int | None = None,
    stop_timeout: float = STOP_TIMEOUT,
    policy: RestartPolicy | None = None,
) -> int:
    """Run ``processes`` children of ``child_argv`` until SIGINT/SIGTERM, restarting crashed
    ones; return 0 after a clean stop, 1 if a child failed to stop cleanly.

    ``child_argv`` is the whole command of one child and must run a single process (e.g.
    ``[sys.executable, "-m", "dispatcher", "--manifest", F, "--processes", "1"]``), not
    another supervisor. ``env`` is the children's whole environment (``None``: this
    process's). Must be called from the main thread (it handles signals); the previous
    handlers are restored on return.
    """
    supervisor = _Supervisor(
        [child_command(child_argv, i, metrics_port) for i in range(processes)],
        env=env,
        stop_timeout=stop_timeout,
        policy=policy or RestartPolicy(),
    )
    return supervisor.run()


@dataclass(slots=True)
class _Child:
    """One child slot: its process while it runs, its crash count and restart time."""

    index: int
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    failures: int = 0
    restart_at: float | None = None
    exit_code: int | None = None
    """How the last process of this slot ended (negative: killed by that signal)."""


class _Supervisor:
    def __init__(
        self,
        argvs: list[list[str]],
        *,
        env: Mapping[str, str] | None,
        stop_timeout: float,
        policy: RestartPolicy,
    ) -> None:
        self.children = [_Child(index, argv) for index, argv in enumerate(argvs)]
        self.env = env
        self.stop_timeout = stop_timeout
        self.policy = policy
        self.stop_deadline: float | None = None
        self.killed = False

    def run(self) -> int:
        with _signals_wake(self._wake_fd_signals) as wakeups:
            try:
                for child in self.children:
                    self._start(child)
                log.info(
                    "supervisor running processes=%d pids=%s",
                    len(self.children),
                    ",".join(str(c.process.pid) for c in self.children if c.process),
                )
                while not self._done():
                    self._wait(wakeups)
                    self._reap()
                    self._restart_due()
                    self._kill_overdue()
            finally:
                self._abandon()
        return self._exit_status()

    # -- signals -----------------------------------------------------------------------

    def _wake_fd_signals(self, signums: Sequence[int]) -> None:
        for signum in signums:
            if signum in STOP_SIGNALS:
                self._stop(signal.Signals(signum))

    def _stop(self, signum: signal.Signals) -> None:
        if self.stop_deadline is None:
            log.info("%s received: stopping %d processes", signum.name, self._live())
            self.stop_deadline = time.monotonic() + self.stop_timeout
        else:  # a second signal: the children take it as "exit now"
            log.warning("%s received again: passing it on", signum.name)
        for child in self.children:
            child.restart_at = None
            if child.process is not None and child.process.poll() is None:
                _signal_group(child.process, signum)

    # -- the loop ----------------------------------------------------------------------

    def _wait(self, wakeups: Callable[[float], None]) -> None:
        now = time.monotonic()
        due = [c.restart_at for c in self.children if c.restart_at is not None]
        if self.stop_deadline is not None:
            due.append(self.stop_deadline)
        timeout = min([_MAX_WAIT, *(max(0.0, t - now) for t in due)])
        wakeups(timeout)

    def _reap(self) -> None:
        now = time.monotonic()
        for child in self.children:
            if child.process is None or (code := child.process.poll()) is None:
                continue
            pid, ran_for = child.process.pid, now - child.started_at
            child.process, child.exit_code = None, code
            if self.stop_deadline is not None:
                log.info("process stopped index=%d pid=%d exit=%d", child.index, pid, code)
            elif code == 0:
                log.warning(
                    "process exited by itself index=%d pid=%d exit=0: not restarted",
                    child.index,
                    pid,
                )
            else:
                child.failures = failures_after_exit(child.failures, ran_for, self.policy)
                delay = restart_delay(child.failures, self.policy)
                child.restart_at = now + delay
                log.warning(
                    "process crashed index=%d pid=%d exit=%d ran=%.1fs: restarting in %gs"
                    " (crash %d in a row)",
                    child.index,
                    pid,
                    code,
                    ran_for,
                    delay,
                    child.failures,
                )

    def _restart_due(self) -> None:
        now = time.monotonic()
        for child in self.children:
            if child.restart_at is not None and child.restart_at <= now:
                child.restart_at = None
                self._start(child)
                log.debug("process restarted index=%d pid=%d", child.index, self._pid(child))

    def _kill_overdue(self) -> None:
        if self.stop_deadline is None or time.monotonic() < self.stop_deadline:
            return
        for child in self.children:
            if child.process is not None and child.process.poll() is None:
                log.error(
                    "process did not stop within %gs: killing index=%d pid=%d",
                    self.stop_timeout,
                    child.index,
                    child.process.pid,
                )
                _signal_group(child.process, signal.SIGKILL)
                self.killed = True
        self.stop_deadline = time.monotonic() + self.stop_timeout  # reap what was killed

    def _done(self) -> bool:
        return all(c.process is None and c.restart_at is None for c in self.children)

    def _exit_status(self) -> int:
        clean = {0, -signal.SIGINT, -signal.SIGTERM}
        return 0 if not self.killed and all(c.exit_code in clean for c in self.children) else 1

    # -- processes ---------------------------------------------------------------------

    def _start(self, child: _Child) -> None:
        child.process = subprocess.Popen(
            child.argv,
            env=self.env,
            stdin=subprocess.DEVNULL,
            process_group=0,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,  # noqa: PLW1509
        )
        child.started_at = time.monotonic()

    def _abandon(self) -> None:
        """On the way out by an exception: stop what still runs, leaving no orphan."""
        live = [c.process for c in self.children if c.process is not None]
        for process in live:
            if process.poll() is None:
                _signal_group(process, signal.SIGTERM)
        for process in live:
            try:
                process.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait()

    def _live(self) -> int:
        return sum(c.process is not None for c in self.children)

    @staticmethod
    def _pid(child: _Child) -> int:
        return child.process.pid if child.process is not None else -1


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    """Signal the child's process group (it leads one of its own), so anything it started
    hears it too."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def _die_with_parent() -> None:
    """In the child before exec (Linux): SIGTERM when the supervisor dies, so that a
    supervisor killed with SIGKILL leaves no dispatcher running unsupervised."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@contextlib.contextmanager
def _signals_wake(
    on_signals: Callable[[Sequence[int]], None],
) -> Iterator[Callable[[float], None]]:
    """Handle SIGINT, SIGTERM and SIGCHLD in the block; yields ``wait(timeout)``, which sleeps
    until one of them arrives (or ``timeout``) and passes the signals that came to
    ``on_signals``. A signal between two waits is not lost: it waits in a pipe."""
    read_fd, write_fd = os.pipe()
    for fd in (read_fd, write_fd):
        os.set_blocking(fd, False)
    selector = selectors.DefaultSelector()
    selector.register(read_fd, selectors.EVENT_READ)
    previous_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    handled = (*STOP_SIGNALS, signal.SIGCHLD)
    # A Python handler makes the interpreter write the signal's number to the wakeup fd; the
    # loop reads it there, so the handler itself has nothing to do.
    previous = {signum: signal.signal(signum, _noted) for signum in handled}

    def wait(timeout: float) -> None:
        if selector.select(timeout):
            with contextlib.suppress(BlockingIOError):
                on_signals(list(os.read(read_fd, 4096)))

    try:
        yield wait
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        signal.set_wakeup_fd(previous_fd)
        selector.close()
        os.close(read_fd)
        os.close(write_fd)


def _noted(signum: int, frame: FrameType | None) -> None:
    """The handler of the supervisor's signals: they are read from the wakeup fd."""
