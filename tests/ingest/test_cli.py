"""The ``ingest`` command as an operator runs it: help without Kafka, clear refusals of bad
settings, waiting for a Kafka that is not there yet, and a real request end to end followed by
SIGTERM and exit 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource, ResourceType

from eventlog.record import decode
from ingest import IngestSettings, create_app
from ingest.cli import main
from tests.ingest.conftest import read_topic, running, wait_ready
from tests.kafka_fixtures import free_port

INGEST = [sys.executable, "-m", "ingest"]


class IngestProcess:
    """A running ``ingest`` subprocess writing its log to a file."""

    def __init__(self, args: list[str], log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [*INGEST, "--port", str(self.port), *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, condition: Callable[[], bool], *, within: float, what: str) -> None:
        deadline = time.monotonic() + within
        while not condition():
            if self.process.poll() is not None:
                raise AssertionError(f"ingest exited ({self.process.returncode}):\n{self.log()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"not within {within}s: {what}\n{self.log()}")
            time.sleep(0.05)

    def status_of(self, path: str) -> int | None:
        try:
            return httpx.get(self.url + path, timeout=2).status_code
        except httpx.TransportError:
            return None

    def terminate(self, *, within: float = 30) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(within)


@pytest.fixture
def start_ingest(tmp_path: Path) -> Iterator[Callable[..., IngestProcess]]:
    started: list[IngestProcess] = []

    def start(*args: str) -> IngestProcess:
        started.append(IngestProcess(list(args), tmp_path / f"ingest-{len(started)}.log"))
        return started[-1]

    yield start
    for ingest_process in started:
        if ingest_process.process.poll() is None:
            ingest_process.process.kill()
            ingest_process.process.wait(10)


def test_help_needs_no_kafka() -> None:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}"}
    result = subprocess.run(
        [*INGEST, "--help"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    for option in ("--bootstrap-servers", "--port", "--workers", "--max-event-bytes"):
        assert option in result.stdout
    assert "Usage: ingest" in result.stdout


def test_contradictory_settings_are_one_clear_line() -> None:
    result = subprocess.run(
        [*INGEST, "--max-event-bytes", "2000000"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "max_event_bytes" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_without_kafka_it_waits_and_says_so_instead_of_crashing(
    start_ingest: Callable[..., IngestProcess],
) -> None:
    ingest = start_ingest("--bootstrap-servers", f"127.0.0.1:{free_port()}", "--topic", "t")
    ingest.wait_for(
        lambda: "kafka not reachable yet" in ingest.log(), within=60, what="a retry line"
    )
    assert ingest.status_of("/healthz") == 200
    assert ingest.status_of("/readyz") == 503
    assert ingest.terminate() == 0
    assert "Traceback" not in ingest.log()


@pytest.mark.kafka
@pytest.mark.slow
def test_the_process_serves_an_event_and_exits_0_on_sigterm(
    start_ingest: Callable[..., IngestProcess],
    kafka_bootstrap: str,
    unique_name: Callable[[str], str],
) -> None:
    topic = unique_name("events")
    ingest = start_ingest(
        "--bootstrap-servers", kafka_bootstrap, "--topic", topic, "--partitions", "2"
    )
    ingest.wait_for(lambda: ingest.status_of("/readyz") == 200, within=60, what="ready")

    response = httpx.put(
        f"{ingest.url}/events", json={"user_id": "erin", "payload": "end to end"}, timeout=30
    )
    assert response.status_code == 202, response.text
    [record] = read_topic(kafka_bootstrap, topic, 1)
    assert decode(record.key(), record.value(), record.headers()).id == response.json()["id"]

    assert ingest.terminate() == 0
    log = ingest.log()
    assert "ingest stopped events_accepted=1" in log
    assert "unflushed=0" in log
    assert "Traceback" not in log


def test_replication_settings_come_from_the_kafka_environment_variables() -> None:
    # The same names as the dispatcher's, so one environment configures both services.
    result = CliRunner().invoke(
        main, [], env={"KAFKA_REPLICATION_FACTOR": "2", "KAFKA_MIN_INSYNC_REPLICAS": "3"}
    )
    assert result.exit_code == 2, result.output
    assert "min_insync_replicas must be between 1 and replication_factor (2), got 3" in (
        result.output
    )


@pytest.mark.kafka
async def test_the_topic_ingest_creates_has_min_insync_replicas_set(
    kafka_bootstrap: str, kafka_admin: AdminClient, unique_name: Callable[[str], str]
) -> None:
    topic = unique_name("events")
    settings = IngestSettings(bootstrap_servers=kafka_bootstrap, topic=topic, partitions=1)
    async with running(create_app(settings)) as client:
        await wait_ready(client)
    resource = ConfigResource(ResourceType.TOPIC, topic)
    entry = kafka_admin.describe_configs([resource])[resource].result(10)["min.insync.replicas"]
    assert (entry.value, entry.source) == ("1", ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
