"""Where the tests' Kafka comes from, in order: ``KAFKA_BOOTSTRAP_SERVERS`` (an existing cluster),
testcontainers if a Docker engine answers, else a native broker started for this session."""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from localkafka import NativeBroker, wait_until_ready
from localkafka.docker import engine_answers

__all__ = ["free_port", "kafka_for_tests", "start_broker", "throwaway_broker"]

# Kafka 3.9 in KRaft mode; testcontainers' Kafka module knows Confluent's images.
CONTAINER_IMAGE = "confluentinc/cp-kafka:7.9.0"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def kafka_for_tests() -> Iterator[str]:
    """Yield a bootstrap address of a broker that answers, stopping it afterwards if ours."""
    given = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if given:
        yield given
        return
    if engine_answers():
        from testcontainers.kafka import KafkaContainer  # noqa: PLC0415 - needs Docker only

        with KafkaContainer(CONTAINER_IMAGE).with_kraft() as container:
            yield str(container.get_bootstrap_server())
        return
    with tempfile.TemporaryDirectory(prefix="kafka-test-") as state:
        broker = NativeBroker(
            port=free_port(), controller_port=free_port(), state_dir=Path(state), heap="512m"
        )
        start_broker(broker)
        try:
            yield broker.bootstrap
        finally:
            broker.stop(timeout=20)


def start_broker(broker: NativeBroker) -> None:
    """Start ``broker`` and wait until it serves clients."""
    process = broker.start()
    if not wait_until_ready(broker.bootstrap, still_starting=lambda: process.poll() is None):
        raise RuntimeError(f"test broker did not start:\n{broker.tail_log()}")


@contextmanager
def throwaway_broker(state_dir: Path) -> Iterator[NativeBroker]:
    """A native broker of one test's own, for tests that stop or kill it."""
    broker = NativeBroker(
        port=free_port(), controller_port=free_port(), state_dir=state_dir, heap="384m"
    )
    start_broker(broker)
    try:
        yield broker
    finally:
        broker.stop(timeout=20)
