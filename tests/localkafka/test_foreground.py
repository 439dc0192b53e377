"""``python -m localkafka run``: the broker in the foreground, stopping after its consumers and
never outliving the process that runs it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient

from eventlog.clients import admin_config, consumer_config
from eventlog.topics import TopicSpec, ensure_topic
from localkafka import broker_answers, wait_until_ready
from tests.support.process_tree import matching, wait_until_gone
from tests.system.running import unused_ports

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def _run(env: dict[str, str], *args: str, stderr: Path | None = None) -> subprocess.Popen[bytes]:
    with (stderr or Path(os.devnull)).open("ab") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "localkafka", "run", *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
            stdin=subprocess.DEVNULL,
        )


def _wait_for_text(path: Path, text: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in path.read_text(errors="replace"):
            return True
        time.sleep(0.1)
    return False


def _ready(process: subprocess.Popen[bytes], bootstrap: str) -> None:
    assert wait_until_ready(bootstrap, timeout=300, still_starting=lambda: process.poll() is None)


def _member(bootstrap: str) -> Consumer:
    """A consumer that has joined its group (assigned a partition)."""
    ensure_topic(AdminClient(admin_config(bootstrap)), TopicSpec(name="linger", partitions=1))
    assigned: list[int] = []
    consumer = Consumer(consumer_config(bootstrap, "linger-check"))
    consumer.subscribe(
        ["linger"], on_assign=lambda _c, parts: assigned.extend(p.partition for p in parts)
    )
    deadline = time.monotonic() + 60
    while not assigned and time.monotonic() < deadline:
        consumer.poll(0.2)
    assert assigned, "the consumer never joined its group"
    return consumer


def test_sigterm_waits_for_consumers_and_sigkill_takes_the_broker_along(tmp_path: Path) -> None:
    port = unused_ports(2)
    env = {**os.environ, "KAFKA_PORT": str(port), "XDG_STATE_HOME": str(tmp_path)}
    bootstrap = f"127.0.0.1:{port}"
    state = str(tmp_path / "event-delivery" / "kafka")

    stderr = tmp_path / "runner.err"
    runner = _run(env, "--linger", "60", stderr=stderr)
    try:
        _ready(runner, bootstrap)
        consumer = _member(bootstrap)
        try:
            runner.send_signal(signal.SIGTERM)
            # The runner says it waits for the member; meanwhile the broker still serves it.
            assert _wait_for_text(stderr, "waiting up to 60s for members", timeout=30)
            assert runner.poll() is None
            assert broker_answers(bootstrap)
        finally:
            consumer.close()  # leaves the group
        assert runner.wait(30) == 128 + signal.SIGTERM
        assert "stopping with members still in groups" not in stderr.read_text()
        assert wait_until_gone(matching("kafka.Kafka", state), 5) == []
    finally:
        _kill_all(runner, state)

    # If the runner itself is killed (honcho's SIGKILL), the broker must not outlive it.
    runner = _run(env)
    try:
        _ready(runner, bootstrap)
        brokers = matching("kafka.Kafka", state)
        assert len(brokers) == 1
        runner.kill()
        runner.wait(10)
        assert wait_until_gone(brokers, 10) == []
    finally:
        _kill_all(runner, state)


def _kill_all(runner: subprocess.Popen[bytes], state: str) -> None:
    """After a failure: the runner and any broker of this test's state dir."""
    runner.kill()
    runner.wait(10)
    for broker in matching("kafka.Kafka", state):
        os.kill(broker.pid, signal.SIGKILL)
