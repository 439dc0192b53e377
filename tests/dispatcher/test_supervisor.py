"""The supervisor of ``dispatcher --processes N``: the restart backoff and the other decisions
as plain functions, then real supervisors with real child processes: a stand-in child script
(it crashes once, or ignores SIGTERM, as each test needs) and, against Kafka, real
dispatchers."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dispatcher.supervisor import (
    RestartPolicy,
    child_command,
    failures_after_exit,
    resolve_processes,
    restart_delay,
)
from tests.kafka_fixtures import free_port
from tests.support.process_tree import ProcessId, descendants, wait_until_gone
from tests.support.processes import write_manifest

REPO = Path(__file__).resolve().parents[2]
DEADLINE = 20.0

# -- decisions ---------------------------------------------------------------------------------


def test_restart_backoff_doubles_from_one_second_up_to_thirty() -> None:
    assert [restart_delay(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]
    assert restart_delay(10_000) == 30  # no overflow however long a crash loop lasts


def test_restart_backoff_follows_its_policy() -> None:
    policy = RestartPolicy(initial=0.5, maximum=3.0)
    assert [restart_delay(n, policy) for n in range(1, 5)] == [0.5, 1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match="at least 1"):
        restart_delay(0)


def test_a_crash_after_a_long_run_starts_the_backoff_afresh() -> None:
    policy = RestartPolicy(stable_after=60.0)
    assert failures_after_exit(0, 0.2, policy) == 1
    assert failures_after_exit(4, 0.2, policy) == 5  # still crash-looping
    assert failures_after_exit(4, 60.0, policy) == 1  # it had been running fine


def test_each_child_serves_metrics_on_the_base_port_plus_its_index() -> None:
    argv = ["python", "-m", "dispatcher", "--manifest", "m.yaml"]
    assert child_command(argv, 0, None) == argv
    assert child_command(argv, 2, 9100) == [*argv, "--metrics-port", "9102"]


def test_processes_is_a_positive_count_or_auto() -> None:
    assert resolve_processes("3") == 3
    assert resolve_processes("auto") == (os.cpu_count() or 1)
    assert resolve_processes(" AUTO ") == (os.cpu_count() or 1)
    for wrong in ("0", "-1", "many", ""):
        with pytest.raises(ValueError, match=repr(wrong) if wrong in {"many", ""} else "least"):
            resolve_processes(wrong)


# -- real processes ----------------------------------------------------------------------------

# A child as the supervisor starts it: it learns its index from its --metrics-port (base + i),
# notes each start and stop in a journal, and behaves as the test's mode says.
CHILD = textwrap.dedent(
    """
    import os, signal, sys, time
    journal, mode, base = sys.argv[1], sys.argv[2], int(sys.argv[3])
    index = int(sys.argv[sys.argv.index("--metrics-port") + 1]) - base
    def note(what):
        with open(journal, "a") as f:
            f.write(f"{what} {index} {os.getpid()} {time.monotonic()}\\n")
    got = []
    def on_signal(signum, frame):
        note("signal")
        got.append(signum)
    signal.signal(signal.SIGTERM, on_signal if mode != "stubborn" else signal.SIG_IGN)
    signal.signal(signal.SIGINT, on_signal)
    note("started")
    crashed_before = os.path.exists(journal + ".crashed")
    if mode == "crash-once" and index == 0 and not crashed_before:
        open(journal + ".crashed", "w").close()
        sys.exit(3)
    while not got:
        time.sleep(0.02)
    time.sleep(0.5)  # like a draining dispatcher: a second delivery would be noted meanwhile
    note("stopped")
    sys.exit(0)
    """
)

SUPERVISOR = textwrap.dedent(
    """
    import logging, sys
    from dispatcher.supervisor import run_supervised
    logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(message)s")
    child, processes, base, stop_timeout = sys.argv[1:5]
    argv = [sys.executable, "-c", child, *sys.argv[5:]]
    sys.exit(run_supervised(argv, int(processes), metrics_port=int(base),
                            stop_timeout=float(stop_timeout)))
    """
)


class Supervised:
    """A supervisor process running stand-in children, and their journal."""

    def __init__(self, tmp_path: Path, mode: str, processes: int, stop_timeout: float) -> None:
        self.journal = tmp_path / "journal"
        self.log_path = tmp_path / "supervisor.log"
        base = 20_000  # only a number the children learn their index from: nothing listens
        argv = [sys.executable, "-c", SUPERVISOR, CHILD, str(processes), str(base)]
        argv += [str(stop_timeout), str(self.journal), mode, str(base)]
        with self.log_path.open("wb") as log:
            # A process group of its own, as a shell gives a foreground job: the test can signal
            # the group the way a terminal's Ctrl-C does.
            self.process = subprocess.Popen(
                argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, process_group=0
            )

    def entries(self, what: str) -> list[tuple[int, int, float]]:
        """(index, pid, monotonic time) of every ``what`` line in the journal."""
        lines = self.journal.read_text().splitlines() if self.journal.exists() else []
        return [
            (int(index), int(pid), float(at))
            for kind, index, pid, at in (line.split() for line in lines)
            if kind == what
        ]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_until(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + DEADLINE
        while not condition():
            assert time.monotonic() < deadline, f"{what} within {DEADLINE}s:\n{self.log()}"
            assert self.process.poll() is None, f"supervisor exited:\n{self.log()}"
            time.sleep(0.02)

    def tree(self) -> list[ProcessId]:
        return descendants(self.process.pid)


@pytest.fixture
def supervise(tmp_path: Path) -> Iterator[Callable[..., Supervised]]:
    started: list[Supervised] = []

    def start(mode: str, processes: int = 2, stop_timeout: float = 30.0) -> Supervised:
        supervised = Supervised(tmp_path, mode, processes, stop_timeout)
        started.append(supervised)
        return supervised

    yield start
    for supervised in started:  # a failed test must not leave its processes behind
        tree = supervised.tree()
        for process in tree:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
        supervised.process.wait(10)


@pytest.mark.slow
def test_a_crashed_child_is_restarted_after_a_second_and_sigterm_stops_them_all(
    supervise: Callable[..., Supervised],
) -> None:
    supervised = supervise("crash-once")

    supervised.wait_until(lambda: len(supervised.entries("started")) == 3, "a restart")
    starts = supervised.entries("started")
    first, again = [at for index, _, at in starts if index == 0]
    assert again - first >= 0.9  # the first restart waits 1 s
    assert "process crashed index=0" in supervised.log()
    assert "restarting in 1s (crash 1 in a row)" in supervised.log()
    assert supervised.log().count("restarting in") == 1

    tree = supervised.tree()
    assert len(tree) == 3  # the supervisor and its two children
    supervised.process.send_signal(signal.SIGTERM)
    assert supervised.process.wait(DEADLINE) == 0, supervised.log()
    stopped = {pid for _, pid, _ in supervised.entries("stopped")}
    live = {index: pid for index, pid, _ in starts}  # each index's latest start
    assert stopped == set(live.values())  # both live children were told
    assert wait_until_gone(tree, 5.0) == []


@pytest.mark.slow
def test_a_terminals_ctrl_c_reaches_each_child_once_and_stops_them_cleanly(
    supervise: Callable[..., Supervised],
) -> None:
    supervised = supervise("steady", processes=3)
    supervised.wait_until(lambda: len(supervised.entries("started")) == 3, "three children")
    tree = supervised.tree()

    os.killpg(supervised.process.pid, signal.SIGINT)  # the whole foreground job, as Ctrl-C

    assert supervised.process.wait(DEADLINE) == 0, supervised.log()
    assert len(supervised.entries("stopped")) == 3
    # Once each: a dispatcher takes a second signal as "exit now", skipping its drain.
    assert sorted(index for index, _, _ in supervised.entries("signal")) == [0, 1, 2]
    assert wait_until_gone(tree, 5.0) == []


@pytest.mark.slow
def test_a_child_that_does_not_stop_in_time_is_killed_and_the_exit_says_so(
    supervise: Callable[..., Supervised],
) -> None:
    supervised = supervise("stubborn", processes=1, stop_timeout=1.0)
    supervised.wait_until(lambda: len(supervised.entries("started")) == 1, "the child")
    tree = supervised.tree()

    supervised.process.send_signal(signal.SIGTERM)

    assert supervised.process.wait(DEADLINE) == 1
    assert "did not stop within 1s: killing index=0" in supervised.log()
    assert wait_until_gone(tree, 5.0) == []


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")
def test_children_stop_when_the_supervisor_is_killed(
    supervise: Callable[..., Supervised],
) -> None:
    supervised = supervise("steady")
    supervised.wait_until(lambda: len(supervised.entries("started")) == 2, "two children")
    children = [p for p in supervised.tree() if p.pid != supervised.process.pid]

    supervised.process.kill()
    supervised.process.wait(DEADLINE)

    assert wait_until_gone(children, 5.0) == []
    assert len(supervised.entries("stopped")) == 2  # by SIGTERM, so a dispatcher drains


# -- real dispatchers --------------------------------------------------------------------------


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - loopback
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.mark.kafka
@pytest.mark.slow
def test_dispatchers_under_a_supervisor_serve_metrics_per_child_and_stop_cleanly(
    kafka_bootstrap: str,
    topic_factory: Callable[..., str],
    unique_name: Callable[[str], str],
    tmp_path: Path,
) -> None:
    manifest = write_manifest(
        tmp_path / "manifest.yaml",
        bootstrap=kafka_bootstrap,
        topic=topic_factory(partitions=4),
        group_prefix=unique_name("supervised"),
        destinations=[{"name": "mock", "type": "mock", "behavior": "succeed"}],
    )
    base = free_port()
    while not all(_free(base + i) for i in range(2)):
        base = free_port()
    script = (
        "import sys; from dispatcher.supervisor import run_supervised;"
        "sys.exit(run_supervised(sys.argv[2:], 2, metrics_port=int(sys.argv[1])))"
    )
    child = [sys.executable, "-m", "dispatcher", "--manifest", str(manifest)]
    child += ["--drain-timeout", "2"]
    log_path = tmp_path / "supervisor.log"
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap}
    with log_path.open("wb") as log:
        supervisor = subprocess.Popen(
            [sys.executable, "-c", script, str(base), *child],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        urls = [f"http://127.0.0.1:{base + i}/metrics" for i in range(2)]
        deadline = time.monotonic() + 60
        while not all(_answers(url) for url in urls):
            assert supervisor.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        tree = descendants(supervisor.pid)
        assert len(tree) == 3

        supervisor.send_signal(signal.SIGTERM)

        assert supervisor.wait(60) == 0, log_path.read_text()
        assert wait_until_gone(tree, 5.0) == []
        assert log_path.read_text().count("dispatcher stopped destinations=1") == 2
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait(10)


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True
