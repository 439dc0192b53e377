"""Where the tests' Kafka comes from, in order: ``KAFKA_BOOTSTRAP_SERVERS`` (an existing cluster),
testcontainers if a Docker engine answers, else a native broker started for this session."""

from __future__ import annotations

import os
import random
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from localkafka import NativeBroker, wait_until_ready
from localkafka.docker import engine_answers

__all__ = [
    "TEST_BROKER_SETTINGS",
    "free_port",
    "kafka_for_tests",
    "start_broker",
    "start_broker_on_free_ports",
    "throwaway_broker",
]

# Kafka 3.9 in KRaft mode; testcontainers' Kafka module knows Confluent's images.
CONTAINER_IMAGE = "confluentinc/cp-kafka:7.9.0"

TEST_BROKER_SETTINGS: dict[str, str] = {
    # The default (5 min) would make a topic with a short retention.ms keep its segments for
    # minutes; tests of retention need them deleted within seconds.
    "log.retention.check.interval.ms": "5000",
    "log.segment.delete.delay.ms": "1000",
}
"""Broker settings of every native broker the tests start themselves."""

_BIND_ATTEMPTS = 3


def free_port() -> int:
    """A loopback port nothing listened on a moment ago, for a server that must be told its
    port up front (a broker's listeners are in its configuration file).

    The choice is random among ports *below* the kernel's ephemeral range: a port the kernel
    picked for ``bind(0)`` is released here and could be handed to any outgoing connection
    (a client of the very broker about to bind it) before the server binds it. Below the range
    only another server explicitly choosing the same number can take it, and the brokers
    started here retry on new ports if that happens (``start_broker_on_free_ports``). Servers
    that can listen on port 0 should do that and report the port they got instead (as
    ``tests.support.loopback_server.LoopbackServer`` does).
    """
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for port in random.sample(range(10_000, low), 200):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port on 127.0.0.1 below the ephemeral range")


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
        broker = start_broker_on_free_ports(Path(state), heap="512m")
        try:
            yield broker.bootstrap
        finally:
            broker.stop(timeout=20)


def start_broker(broker: NativeBroker) -> None:
    """Start ``broker`` (again: its ports are fixed) and wait until it serves clients."""
    process = broker.start()
    if not wait_until_ready(broker.bootstrap, still_starting=lambda: process.poll() is None):
        broker.stop(timeout=5)
        raise RuntimeError(f"test broker did not start:\n{broker.tail_log()}")


def start_broker_on_free_ports(state_dir: Path, *, heap: str) -> NativeBroker:
    """A new test broker in ``state_dir``, serving clients; if another server took one of its
    ports between ``free_port()`` and the broker's bind, it is started again on new ones."""
    for _ in range(_BIND_ATTEMPTS - 1):
        broker = _test_broker(state_dir, heap)
        try:
            start_broker(broker)
        except RuntimeError:
            if "Address already in use" not in broker.tail_log(200):
                raise
            shutil.rmtree(state_dir)  # its configuration and metadata name the old ports
            continue
        return broker
    broker = _test_broker(state_dir, heap)
    start_broker(broker)
    return broker


def _test_broker(state_dir: Path, heap: str) -> NativeBroker:
    return NativeBroker(
        port=free_port(),
        controller_port=free_port(),
        state_dir=state_dir,
        heap=heap,
        extra_config=TEST_BROKER_SETTINGS,
    )


@contextmanager
def throwaway_broker(state_dir: Path) -> Iterator[NativeBroker]:
    """A native broker of one test's own, for tests that stop or kill it."""
    broker = start_broker_on_free_ports(state_dir, heap="384m")
    try:
        yield broker
    finally:
        broker.stop(timeout=20)
