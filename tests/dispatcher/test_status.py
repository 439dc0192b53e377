from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from dispatcher.manifest import load_manifest
from dispatcher.status import DestinationStatus, collect_status, format_table
from eventlog.clients import consumer_config, producer_config
from tests.kafka_fixtures import free_port
from tests.support.processes import write_manifest


def test_the_table_lines_up_and_shows_unknown_age_as_a_dash() -> None:
    table = format_table(
        [
            DestinationStatus("bigquery", "g.bigquery", 10, 10, 0, None),
            DestinationStatus(
                "azure-data-lake",
                "g.azure-data-lake",
                7,
                10,
                3,
                95.0,
                retention_seconds=950.0,
                breaker="open",
                breaker_since_seconds=30.0,
                next_probe_seconds=4.0,
                parked_users=2,
                parked_events=17,
            ),
        ]
    )
    lines = table.splitlines()
    rows = [
        [
            "DESTINATION", "GROUP", "COMMITTED", "END", "LAG", "OLDEST", "OF-RETENTION",
            "BREAKER", "SINCE", "PROBE-IN", "PARKED-USERS", "PARKED-EVENTS",
        ],
        ["bigquery", "g.bigquery", "10", "10", "0", "-", "-", "-", "-", "-", "-", "-"],
        [
            "azure-data-lake", "g.azure-data-lake", "7", "10", "3", "95.0s", "10%", "open",
            "30.0s", "4.0s", "2", "17",
        ],
    ]  # fmt: skip
    assert [line.split() for line in lines] == rows
    # Every cell starts where its column's heading starts, after a space.
    starts = [lines[0].index(heading) for heading in rows[0]]
    for line, cells in zip(lines, rows, strict=True):
        for start, cell in zip(starts, cells, strict=True):
            assert line[start : start + len(cell)] == cell, (line, cell)
            assert start == 0 or line[start - 1] == " ", (line, cell)


@pytest.mark.kafka
def test_lag_counts_what_each_group_has_not_committed(
    kafka_bootstrap: str,
    topic_factory: Callable[..., str],
    unique_name: Callable[[str], str],
    tmp_path: Path,
) -> None:
    topic = topic_factory(partitions=2)
    prefix = unique_name("status")
    manifest_path = write_manifest(
        tmp_path / "m.yaml", bootstrap=kafka_bootstrap, topic=topic, group_prefix=prefix,
        destinations=[
            {"name": "caught-up", "type": "mock", "behavior": "succeed"},
            {"name": "never-ran", "type": "mock", "behavior": "succeed"},
        ],
    )  # fmt: skip
    producer = Producer(producer_config(kafka_bootstrap))
    for i in range(6):
        producer.produce(topic, key=f"user-{i}".encode(), value=b"x", partition=i % 2)
    assert producer.flush(30) == 0
    # "caught-up" committed everything on partition 0 and one event of partition 1.
    committer = Consumer(consumer_config(kafka_bootstrap, f"{prefix}.caught-up"))
    committer.commit(
        offsets=[TopicPartition(topic, 0, 3), TopicPartition(topic, 1, 1)], asynchronous=False
    )
    committer.close()

    rows = {r.destination: r for r in collect_status(load_manifest(manifest_path, environ={}))}

    assert (rows["caught-up"].committed, rows["caught-up"].end, rows["caught-up"].lag) == (4, 6, 2)
    assert rows["caught-up"].oldest_lag_seconds is not None
    assert (rows["never-ran"].committed, rows["never-ran"].lag) == (0, 6)
    assert rows["never-ran"].group == f"{prefix}.never-ran"


def test_an_unreachable_cluster_is_one_error_line_and_exit_1(tmp_path: Path) -> None:
    manifest = write_manifest(
        tmp_path / "m.yaml", bootstrap=f"127.0.0.1:{free_port()}", topic="events",
        group_prefix="g", destinations=[{"name": "x", "type": "mock", "behavior": "succeed"}],
    )  # fmt: skip
    command = [sys.executable, "-m", "dispatcher", "status", "--manifest", str(manifest)]
    result = subprocess.run(
        [*command, "--timeout", "1"],
        capture_output=True, text=True, timeout=60, check=False, env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot reach Kafka at 127.0.0.1:")
    assert "Traceback" not in result.stderr
