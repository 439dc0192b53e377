"""``python -m localkafka cluster up|status|down`` (``just cluster-*``): three nodes on loopback,
restarted one at a time, stopped exactly, their data kept."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from eventlog.clients import admin_config, consumer_config, producer_config
from eventlog.topics import TopicSpec, ensure_topic
from tests.system.running import unused_ports

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

STATUS_LINE = re.compile(r"node=(\d) pid=(\d+|-) port=(\d+) answers=(yes|no)")


def _cluster(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "localkafka", "cluster", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _status(env: dict[str, str]) -> tuple[dict[int, tuple[int | None, int, bool]], str, int]:
    result = _cluster(env, "status")
    lines = result.stdout.splitlines()
    nodes: dict[int, tuple[int | None, int, bool]] = {}
    for line in lines[:-1]:
        match = STATUS_LINE.fullmatch(line)
        assert match is not None, line
        node, pid, port, answers = match.groups()
        nodes[int(node)] = (None if pid == "-" else int(pid), int(port), answers == "yes")
    assert lines[-1].startswith("bootstrap="), lines
    return nodes, lines[-1].removeprefix("bootstrap="), result.returncode


def _alive(pid: int) -> bool:
    try:
        return b"kafka.Kafka" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


@pytest.fixture
def cluster_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {
        **os.environ,
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "KAFKA_CLUSTER_PORT": str(unused_ports(3)),
        "KAFKA_CLUSTER_CONTROLLER_PORT": str(unused_ports(3)),
        "KAFKA_CLUSTER_HEAP": "384m",
    }
    yield env
    _cluster(env, "down")


def test_up_restarts_only_a_killed_node_and_down_stops_exactly_the_nodes(
    cluster_env: dict[str, str],
) -> None:
    env = cluster_env
    first = int(env["KAFKA_CLUSTER_PORT"])
    up = _cluster(env, "up")
    assert up.returncode == 0, up.stdout + up.stderr
    nodes, bootstrap, code = _status(env)
    assert code == 0
    assert bootstrap == ",".join(f"127.0.0.1:{first + i}" for i in range(3))
    assert {n: (port, answers) for n, (_pid, port, answers) in nodes.items()} == {
        1: (first, True),
        2: (first + 1, True),
        3: (first + 2, True),
    }
    pids = {n: pid for n, (pid, _port, _answers) in nodes.items()}

    # Replicated 3 ways with min.insync.replicas 2: an acks=all write survives one node.
    admin = AdminClient(admin_config(bootstrap))
    ensure_topic(admin, TopicSpec(name="kept", partitions=3, replication_factor=3))
    metadata = admin.list_topics("kept", timeout=10)
    assert len(metadata.brokers) == 3
    assert all(len(p.replicas) == 3 for p in metadata.topics["kept"].partitions.values())
    producer = Producer(producer_config(bootstrap))
    for i in range(30):
        producer.produce("kept", key=f"user-{i}".encode(), value=f"event-{i}".encode())
    assert producer.flush(30) == 0

    killed = pids[2]
    assert killed is not None
    os.kill(killed, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while _alive(killed) and time.monotonic() < deadline:
        time.sleep(0.05)
    nodes, _, code = _status(env)
    assert code == 1
    assert nodes[2] == (None, first + 1, False)
    assert nodes[1][0] == pids[1]

    again = _cluster(env, "up")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "started node(s) 2;" in again.stdout
    nodes, _, code = _status(env)
    assert code == 0
    assert nodes[1][0] == pids[1]
    assert nodes[3][0] == pids[3]
    assert nodes[2][0] not in (None, killed)
    running = [pid for pid, _port, _answers in nodes.values() if pid is not None]

    down = _cluster(env, "down")
    assert down.returncode == 0, down.stderr
    assert not any(_alive(pid) for pid in running)
    state = Path(env["XDG_STATE_HOME"]) / "event-delivery" / "kafka-cluster"
    assert all((state / f"node-{n}" / "data" / "meta.properties").exists() for n in (1, 2, 3))

    # The data stays: after a restart of all three, every event is still there.
    assert _cluster(env, "up").returncode == 0
    assert sorted(_read_values(bootstrap, "kept", 30)) == sorted(
        f"event-{i}".encode() for i in range(30)
    )
    nodes, _, _ = _status(env)

    # clean stops the nodes and removes their data (the single broker's state dir is empty).
    clean = subprocess.run(
        [sys.executable, "-m", "localkafka", "clean"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert f"removed {state}" in clean.stdout
    assert not state.exists()
    assert not any(_alive(pid) for pid, _port, _answers in nodes.values() if pid is not None)


def _read_values(bootstrap: str, topic: str, count: int) -> list[bytes]:
    consumer = Consumer(consumer_config(bootstrap, f"check-{time.monotonic_ns()}"))
    consumer.subscribe([topic])
    values: list[bytes] = []
    deadline = time.monotonic() + 60
    try:
        while len(values) < count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and not message.error():
                value = message.value()
                assert value is not None
                values.append(value)
    finally:
        consumer.close()
    return values
