"""How ``just up`` stops, with stand-in processes instead of Kafka and the services: Ctrl-C,
``kill`` and a closed terminal each leave no process behind, even one that ignores SIGTERM."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.support.process_tree import ProcessId, wait_until_gone
from tests.system.running import JustUp, just_up, unused_ports

SLEEPERS = """\
quick: exec sleep 300
shell: sleep 300; echo never reached
"""
STUBBORN = """\
stubborn: exec python -c "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); \
print('stubborn ready', flush=True); time.sleep(300)"
"""


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    # Nothing listens on KAFKA_PORT, so `up` finds no broker to reuse and starts the Procfile.
    return {
        **os.environ,
        "KAFKA_PORT": str(unused_ports(2)),
        "XDG_STATE_HOME": str(tmp_path / "state"),
    }


def _procfile(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "Procfile.test"
    path.write_text(text)
    return path


def _started(up: JustUp, *, sleepers: int, timeout: float = 30.0) -> list[ProcessId]:
    """The process tree once ``sleepers`` ``sleep 300`` processes run in it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tree = up.tree()
        if sum(p.cmdline.startswith("sleep 300") for p in tree) >= sleepers:
            return tree
        if up.process.poll() is not None:
            break
        time.sleep(0.05)
    raise AssertionError(f"the stand-ins did not start:\n{up.log()}")


def test_ctrl_c_stops_every_process(tmp_path: Path, env: dict[str, str]) -> None:
    procfile = _procfile(tmp_path, SLEEPERS)
    with just_up(
        "--native", "--procfile", str(procfile), env=env, log_path=tmp_path / "up.log"
    ) as up:
        tree = _started(up, sleepers=2)

        up.ctrl_c()

        assert up.wait(30) == 130
        assert wait_until_gone(tree, 5) == []
    log = up.log()
    assert "SIGINT received" in log
    assert "quick stopped" in log
    assert "shell stopped" in log


def test_ctrl_c_stops_every_process_when_up_is_piped_into_tee(
    tmp_path: Path, env: dict[str, str]
) -> None:
    # tee dies of the same SIGINT, so honcho's own output then has no reader (EPIPE).
    procfile = _procfile(tmp_path, SLEEPERS)
    with just_up(
        "--native",
        "--procfile",
        str(procfile),
        env=env,
        log_path=tmp_path / "up.log",
        piped_through="tee",
    ) as up:
        tree = _started(up, sleepers=2)

        up.ctrl_c()

        up.wait(30)
        assert wait_until_gone(tree, 5) == []


def test_kill_reaches_a_process_that_ignores_sigterm(tmp_path: Path, env: dict[str, str]) -> None:
    procfile = _procfile(tmp_path, SLEEPERS + STUBBORN)
    with just_up(
        "--native", "--procfile", str(procfile), env=env, log_path=tmp_path / "up.log"
    ) as up:
        assert up.wait_for_log("stubborn ready", 30), up.log()
        tree = _started(up, sleepers=2)

        up.terminate()  # just forwards SIGTERM to honcho

        assert up.wait(30) == 143
        assert wait_until_gone(tree, 5) == []
    assert "sending SIGKILL to stubborn" in up.log()


def test_closing_the_terminal_stops_every_process(tmp_path: Path, env: dict[str, str]) -> None:
    procfile = _procfile(tmp_path, SLEEPERS)
    with just_up(
        "--native", "--procfile", str(procfile), env=env, log_path=tmp_path / "up.log"
    ) as up:
        tree = _started(up, sleepers=2)

        up.hang_up()

        up.wait(30)
        assert wait_until_gone(tree, 5) == []
