"""honcho as ``just up`` uses it: a stop requested before the processes have started still
stops them (plain honcho raised KeyError in its signal handler and hung)."""

from __future__ import annotations

import io
import signal
from collections.abc import Iterator

import pytest
from honcho.manager import Manager
from honcho.printer import Printer

from localkafka.procfile import SignalSafeManager


@pytest.fixture(autouse=True)
def _keep_signal_handlers() -> Iterator[None]:
    # Manager.loop installs its own SIGINT/SIGTERM handlers; give pytest its own back.
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def test_plain_honcho_cannot_stop_before_it_knows_the_pids() -> None:
    manager = Manager(Printer(io.StringIO()))
    manager.add_process("sleeper", "exec sleep 300")
    with pytest.raises(KeyError):
        manager.terminate()  # what its SIGINT handler does


def test_a_stop_requested_before_start_stops_the_processes_once_started() -> None:
    output = io.StringIO()
    manager = SignalSafeManager(Printer(output))
    manager.add_process("sleeper", "exec sleep 300")
    manager.add_process("other", "exec sleep 300")

    manager.terminate()  # Ctrl-C before honcho has heard back from its processes
    manager.loop()  # returns once both have stopped; a test timeout if they never do

    log = output.getvalue()
    assert "sending SIGTERM to sleeper" in log
    assert "sending SIGTERM to other" in log
    assert "sleeper stopped (rc=-15)" in log
    assert "other stopped (rc=-15)" in log
