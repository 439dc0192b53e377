"""``python -m localkafka`` as a user runs it: up twice, SIGKILL and restart, down, no Java."""

from __future__ import annotations

import os
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
from tests.kafka_fixtures import free_port


def _localkafka(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "localkafka", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.fixture
def isolated_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    port = free_port()
    env = {
        **os.environ,
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "KAFKA_PORT": str(port),
        "KAFKA_CONTROLLER_PORT": str(free_port()),
    }
    yield env
    _localkafka(env, "down")


def _pid(env: dict[str, str]) -> int:
    return int((Path(env["XDG_STATE_HOME"]) / "event-delivery/kafka/kafka.pid").read_text())


def _alive(pid: int) -> bool:
    return (
        Path(f"/proc/{pid}").exists()
        and b"kafka.Kafka" in Path(f"/proc/{pid}/cmdline").read_bytes()
    )


def _read_one(bootstrap: str, topic: str) -> bytes | None:
    consumer = Consumer(consumer_config(bootstrap, f"check-{time.monotonic_ns()}"))
    consumer.subscribe([topic])
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and not message.error():
                value: bytes | None = message.value()
                return value
        return None
    finally:
        consumer.close()


@pytest.mark.kafka
@pytest.mark.slow
def test_up_twice_survives_sigkill_and_down_leaves_nothing(isolated_env: dict[str, str]) -> None:
    env = isolated_env
    bootstrap = f"127.0.0.1:{env['KAFKA_PORT']}"

    first = _localkafka(env, "up", "--native")
    assert first.returncode == 0, first.stderr
    assert "ready" in first.stdout
    second = _localkafka(env, "up", "--native")
    assert second.returncode == 0
    assert "already running" in second.stdout
    pid = _pid(env)

    ensure_topic(AdminClient(admin_config(bootstrap)), TopicSpec(name="kept", partitions=1))
    producer = Producer(producer_config(bootstrap))
    producer.produce("kept", key=b"u", value=b"before the crash")
    assert producer.flush(30) == 0

    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)

    again = _localkafka(env, "up", "--native")
    assert again.returncode == 0, again.stderr
    assert _read_one(bootstrap, "kept") == b"before the crash"

    restarted = _pid(env)
    down = _localkafka(env, "down")
    assert down.returncode == 0
    assert "stopped" in down.stdout
    assert not _alive(restarted)
    assert _localkafka(env, "status").returncode == 1


def test_missing_java_and_docker_is_one_clear_message(tmp_path: Path) -> None:
    env = {
        "PATH": str(tmp_path),  # no java, no mvn, no docker
        "HOME": str(tmp_path),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "KAFKA_PORT": str(free_port()),
    }
    result = _localkafka(env, "up")
    assert result.returncode == 1
    assert "Java 17" in result.stderr
    assert "apt-get install" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
