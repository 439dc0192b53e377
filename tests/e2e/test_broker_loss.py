"""A dispatcher whose broker vanishes still shuts down promptly when told to."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from confluent_kafka import Producer

from eventlog.clients import producer_config
from eventlog.record import Event, encode
from localkafka import NativeBroker
from tests.support.processes import start_dispatcher, write_manifest

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_sigterm_exits_within_its_bounds_after_the_broker_died(
    throwaway_broker: NativeBroker, tmp_path: Path
) -> None:
    manifest = write_manifest(
        tmp_path / "m.yaml", bootstrap=throwaway_broker.bootstrap, topic="events",
        group_prefix="loss", destinations=[{"name": "sink", "type": "mock", "behavior": "succeed"}],
    )  # fmt: skip
    # Commits only at shutdown, so the final commit has work to do when the broker is gone.
    args = ["--drain-timeout", "2", "--commit-interval", "600"]
    # Not the session's broker; DEBUG so each delivery has its line to wait for.
    env = {"KAFKA_BOOTSTRAP_SERVERS": throwaway_broker.bootstrap, "LOG_LEVEL": "DEBUG"}
    dispatcher = start_dispatcher([manifest], tmp_path, env=env, extra_args=args)
    try:
        assert dispatcher.wait_for_log("partitions assigned destination=sink", timeout=60)
        producer = Producer(producer_config(throwaway_broker.bootstrap))
        for i in range(5):
            key, value, headers = encode(Event(f"e{i}", "u", "p", 0))
            producer.produce("events", key=key, value=value, headers=headers)
        assert producer.flush(30) == 0
        assert dispatcher.wait_for_log("delivered destination=sink", count=5)
        pid = throwaway_broker.running_pid()
        assert pid is not None
        throwaway_broker.stop(timeout=0)  # SIGTERM then, at once, SIGKILL: the broker is gone

        started = time.monotonic()
        code = dispatcher.stop(signal.SIGTERM, timeout=30)
        took = time.monotonic() - started
    finally:
        if dispatcher.process.poll() is None:
            dispatcher.kill()
    assert code == 0, dispatcher.log()[-3000:]
    # Drain (nothing in flight) + the final commit and the close (one 2 s budget between
    # them), plus start-up slack: far below the 30 s a hung close would take.
    assert took < 15, took
    assert "closed destination=sink" in dispatcher.log()
