"""The ingest benchmark end to end in its quick mode with tiny numbers, so that the harness
(HTTP ceiling, ingest with one worker and two, tracing off and on, span counter, Kafka
ceiling, report) cannot rot unnoticed. Nothing here looks at speed: only that every row is
there and tracing was on."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.benchmarks.results import run_quick, table_rows

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_quick_mode_writes_every_row(kafka_bootstrap: str, tmp_path: Path) -> None:
    args = "--window 1 --rounds 1 --warmup 0.3 --single 20 --concurrency 8"
    report = run_quick(
        "benchmarks.bench_ingest", args, bootstrap=kafka_bootstrap, results_dir=tmp_path
    )

    targets = [row[0] for row in table_rows(report, "")]
    assert [name.split(":")[0].split(" (")[0] for name in targets] == [
        "HTTP ceiling",
        "Kafka ceiling",
        "**ingest**",
        "ingest, 2 workers",
        "ingest, tracing on",
    ]
    assert re.search(r"2 workers / 1: \*\*[\d.]+x\*\*", report)
    assert "librdkafka" in report.split("|", 1)[0]  # the machine facts

    tracing = {row[0]: row for row in table_rows(report, "Tracing cost")}
    assert set(tracing) == {
        "req/s",
        "p50 ms",
        "p99 ms",
        "server CPU µs/request",
        "single client p50 ms",
    }
    assert all(row[3].endswith("x") for row in tracing.values()), tracing
    per_event = re.search(r"([\d.]+) per event", report)
    assert per_event is not None
    assert float(per_event.group(1)) > 0  # tracing was on: spans reached the counter
