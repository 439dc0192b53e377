"""``just up --native`` for real: Kafka, ingest and two dispatcher shards from the Procfile, on
free ports and a temporary state dir, delivering to a loopback HTTP sink."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.http_sink import HttpSink
from tests.support.process_tree import matching, wait_until_gone
from tests.support.processes import write_manifest
from tests.system.running import JustUp, just_up, unused_ports

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(600)]

# The first start may have Maven fetch the broker's jars.
READY_TIMEOUT = 300.0
DELIVERY_TIMEOUT = 60.0


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment `just up` gets: its own broker port, state dir and ingest port."""
    values = {
        **os.environ,
        "KAFKA_PORT": str(unused_ports(2)),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "INGEST_PORT": str(unused_ports()),
    }
    yield values
    # A background broker a test started with `localkafka up`; harmless when there is none.
    subprocess.run(
        [sys.executable, "-m", "localkafka", "down"], env=values, capture_output=True, check=False
    )


def _manifests(tmp_path: Path, env: dict[str, str], urls: dict[str, str], **defaults: Any) -> None:
    """One http destination per shard (``urls``: shard letter -> URL), named sink-<letter>."""
    for shard, url in urls.items():
        path = write_manifest(
            tmp_path / f"shard-{shard}.yaml",
            bootstrap=f"127.0.0.1:{env['KAFKA_PORT']}",
            topic="events",  # ingest's default topic, as in manifests/
            group_prefix="system-test",
            destinations=[{"name": f"sink-{shard}", "type": "http", "url": url}],
            defaults=defaults or None,
        )
        env[f"DISPATCHER_MANIFEST_{shard.upper()}"] = str(path)


def _state_dir(env: dict[str, str]) -> str:
    return str(Path(env["XDG_STATE_HOME"]) / "event-delivery" / "kafka")


def _wait_ready(up: JustUp, env: dict[str, str]) -> str:
    url = f"http://127.0.0.1:{env['INGEST_PORT']}"
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if up.process.poll() is not None:
            raise AssertionError(f"just up exited early:\n{up.log()[-5000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"ingest not ready within {READY_TIMEOUT}s:\n{up.log()[-5000:]}")


def _send(ingest: str, payload: str) -> str:
    response = httpx.put(f"{ingest}/events", json={"user_id": "u1", "payload": payload}, timeout=15)
    assert response.status_code == 202, response.text
    event_id: str = response.json()["id"]
    return event_id


def _assert_stopped_cleanly(log: str) -> None:
    """Every process ended on its own after honcho's SIGTERM, none by its SIGKILL."""
    assert "sending SIGKILL" not in log
    for dispatcher in ("dispatcher-a", "dispatcher-b"):
        assert f"{dispatcher} stopped (rc=0)" in log
    assert "kafka: stopping with members still in groups" not in log


def _delivered_to_both(sink: HttpSink, event_id: str) -> bool:
    routes = {r.route for r in sink.received() if r.event_id == event_id}
    return {"/ok", "/latency/1"} <= routes


def test_up_delivers_an_event_and_ctrl_c_leaves_no_process(
    tmp_path: Path, env: dict[str, str]
) -> None:
    with HttpSink() as sink:
        _manifests(tmp_path, env, {"a": sink.url("/ok"), "b": sink.url("/latency/1")})
        with just_up("--native", env=env, log_path=tmp_path / "up.log") as up:
            ingest = _wait_ready(up, env)
            event_id = _send(ingest, "hello")
            assert sink.wait_for(lambda s: _delivered_to_both(s, event_id), DELIVERY_TIMEOUT), (
                up.log()[-5000:]
            )
            tree = up.tree()
            commands = " | ".join(p.cmdline for p in tree)
            assert matching("kafka.Kafka", _state_dir(env)), "the broker is not up's own"
            assert commands.count("bin/dispatcher") == 2
            assert "bin/ingest" in commands

            up.ctrl_c()

            assert up.wait(60) == 130
            assert wait_until_gone(tree, 5) == []
            assert matching("kafka.Kafka", _state_dir(env)) == []
    log = up.log()
    for component in ("kafka", "ingest", "dispatcher-a", "dispatcher-b"):
        assert re.search(rf"^\d\d:\d\d:\d\d {re.escape(component)} +\| ", log, re.M), component
    _assert_stopped_cleanly(log)
    # Deliveries are logged at DEBUG; each shard's summary line counts them.
    assert re.search(
        r"^\S+ dispatcher-a +\| .*dispatcher stopped destinations=1 delivered=1 ", log, re.M
    )


def test_an_event_accepted_before_ctrl_c_is_delivered_by_the_next_up(
    tmp_path: Path, env: dict[str, str]
) -> None:
    sink_port = unused_ports()  # nothing listens there during the first run
    _manifests(
        tmp_path,
        env,
        {"a": f"http://127.0.0.1:{sink_port}/ok", "b": f"http://127.0.0.1:{sink_port}/latency/1"},
        timeout="1s",
        retry={"max_retries": 1000, "initial_backoff": "100ms", "max_backoff": "500ms"},
    )
    with just_up("--native", env=env, log_path=tmp_path / "first.log") as first:
        event_id = _send(_wait_ready(first, env), "kept")
        assert first.wait_for_log("attempt failed destination=sink-a", DELIVERY_TIMEOUT)
        tree = first.tree()
        first.ctrl_c()
        assert first.wait(60) == 130
        assert wait_until_gone(tree, 5) == []
    # Retrying deliveries were in flight: the dispatchers still left their groups before the
    # broker stopped (else the next start would wait for their stale members to expire).
    _assert_stopped_cleanly(first.log())

    # A broker started in the background on the same data: the next `up` must use it.
    started = subprocess.run(
        [sys.executable, "-m", "localkafka", "up", "--native"],
        env=env,
        capture_output=True,
        text=True,
        timeout=READY_TIMEOUT,
        check=False,
    )
    assert started.returncode == 0, started.stdout + started.stderr

    with just_up("--native", env=env, log_path=tmp_path / "second.log") as second:
        assert second.wait_for_log("kafka already runs on", 60), second.log()
        with HttpSink(port=sink_port) as sink:
            assert sink.wait_for(lambda s: _delivered_to_both(s, event_id), DELIVERY_TIMEOUT), (
                second.log()[-5000:]
            )
        tree = second.tree()
        assert not any("kafka.Kafka" in p.cmdline for p in tree)

        second.terminate()

        assert second.wait(60) == 143
        assert wait_until_gone(tree, 5) == []
    # Ctrl-C or kill stops what `up` started, not the broker it found running.
    assert len(matching("kafka.Kafka", _state_dir(env))) == 1
    assert not re.search(r"^\S+ kafka +\| ", second.log(), re.M)
