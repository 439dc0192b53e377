"""The processes a benchmark starts: services under test and its own helper processes, each
with a log file, sampled by a ``ProcessWatch`` and stopped the way an operator would.

Children never inherit ``OTEL_*`` variables: whether a service traces is the benchmark's
choice (``benchmarks.tracing``), not the caller's shell's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from benchmarks.exceptions import BenchError
from benchmarks.measure import POLL_INTERVAL, ProcessWatch

__all__ = ["BIN", "REPO", "Child", "child_env", "started"]

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
"""Where the project's console scripts (``ingest``, ``dispatcher``) are installed."""
STOP_TIMEOUT = 30.0
READY_TIMEOUT = 60.0


def child_env(extra: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without ``OTEL_*`` variables, plus ``extra``."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    return {**inherited, **extra}


class Child:
    """A subprocess of the benchmark, its log, and samples of its CPU, memory and threads."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        log_path: Path,
        env: Mapping[str, str],
        *,
        tree: bool = False,
    ) -> None:
        self.name = name
        self.log_path = log_path
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                argv,
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=child_env(env),
            )
        self.watch = ProcessWatch(self.process.pid, tree=tree)
        """With ``tree``, the process and its children together (a supervisor's)."""
        self.metrics_urls: list[str] = []
        """The process's Prometheus endpoints (one per child under a supervisor), if any."""

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def wait_until_answers(self, url: str, timeout: float = READY_TIMEOUT) -> None:
        """Wait for ``url`` to answer 200; ``BenchError`` with the log if the process died."""
        deadline = time.monotonic() + timeout
        while not _answers(url):
            if not self.running() or time.monotonic() > deadline:
                raise BenchError(f"{self.name} did not get ready:\n{self.log_tail(2000)}")
            time.sleep(POLL_INTERVAL)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM (services drain and flush), SIGKILL if it does not exit in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


@contextmanager
def started(
    name: str,
    argv: list[str],
    workdir: Path,
    env: Mapping[str, str] | None = None,
    *,
    tree: bool = False,
) -> Iterator[Child]:
    """A ``Child`` logging to ``workdir/<name>.log``, stopped on leaving the block; with
    ``tree`` it is watched with its children."""
    child = Child(name, argv, workdir / f"{name}.log", env or {}, tree=tree)
    try:
        yield child
    finally:
        child.stop()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
            return bool(response.status == 200)
    except OSError:
        return False
