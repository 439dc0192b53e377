"""``just up`` as a subprocess, signalled the way a terminal or ``kill`` would signal it."""

from __future__ import annotations

import os
import random
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.process_tree import ProcessId, descendants, survivors

__all__ = ["ROOT", "JustUp", "just_up", "unused_ports"]

ROOT = Path(__file__).resolve().parents[2]
JUST = Path(sys.executable).parent / "just"


def unused_ports(count: int = 1) -> int:
    """The first of ``count`` consecutive free loopback ports, below the ephemeral range.

    Ports the kernel hands out to outgoing connections (clients of this very broker included)
    cannot be taken between this check and the server binding its port much later.
    """
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    candidates = random.sample(range(10_000, low - count), 200)
    for first in candidates:
        with ExitStack() as held:
            try:
                for port in range(first, first + count):
                    held.enter_context(socket.socket()).bind(("127.0.0.1", port))
            except OSError:
                continue
            return first
    raise RuntimeError(f"no {count} consecutive free ports on 127.0.0.1")


@dataclass
class JustUp:
    """A running ``just up``, the leader of its own process group like a terminal's job."""

    process: subprocess.Popen[bytes]
    log_path: Path
    seen: dict[int, ProcessId] = field(default_factory=dict)
    """Every process ever found below it, for the clean-up after a failed test."""

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float) -> bool:
        """Wait until ``text`` appears in the output; False at the deadline or if it exited."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return True
            if self.process.poll() is not None:
                return text in self.log()
            time.sleep(0.1)
        return False

    def tree(self) -> list[ProcessId]:
        """``just`` and every process below it, now."""
        tree = descendants(self.pid)
        self.seen.update((p.pid, p) for p in tree)
        return tree

    def ctrl_c(self) -> None:
        """What Ctrl-C does: SIGINT to every process of the terminal's foreground job."""
        os.killpg(self.pid, signal.SIGINT)

    def hang_up(self) -> None:
        """What closing the terminal does to the foreground job: SIGHUP to all of it."""
        os.killpg(self.pid, signal.SIGHUP)

    def terminate(self) -> None:
        """What ``kill PID`` does: SIGTERM to ``just`` alone."""
        self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int:
        """Its exit code once it exited; fails the test if it is still running after ``timeout``."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"just up still runs {timeout:.0f}s after the signal:\n{self.log()[-5000:]}"
            ) from None


@contextmanager
def just_up(
    *args: str, env: dict[str, str], log_path: Path, piped_through: str | None = None
) -> Iterator[JustUp]:
    """Start ``just up ARGS`` from the repository root; kill whatever it left if the test fails.

    ``piped_through``: a command its output goes through, as in ``just up | tee up.log``; the
    job is then that shell pipeline. The clean-up SIGKILLs every process found below it, so a
    failing test leaves no broker or service running; a passing test has already stopped it
    and proven nothing survived.
    """
    argv = [str(JUST), "up", *args]
    if piped_through is not None:
        argv = ["bash", "-c", f"{shlex.join(argv)} 2>&1 | {piped_through}"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    running = JustUp(process, log_path)
    try:
        yield running
    finally:
        if process.poll() is None:
            running.tree()
        for leftover in survivors(list(running.seen.values())):
            with suppress(ProcessLookupError):
                os.kill(leftover.pid, signal.SIGKILL)
        process.wait(10)
