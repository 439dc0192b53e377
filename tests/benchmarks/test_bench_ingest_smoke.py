"""The ingest benchmark end to end in its quick mode with tiny numbers, so that the harness
(HTTP ceiling, ingest with tracing off and on, span counter, Kafka ceiling, report) cannot rot
unnoticed. Nothing here looks at speed: only that every row is there and tracing was on."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.benchmarks.results import table_rows

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def test_quick_mode_writes_every_row(kafka_bootstrap: str, tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "benchmarks.bench_ingest", "--quick", "--window", "1"]
    argv += ["--rounds", "1", "--warmup", "0.3", "--single", "20", "--concurrency", "8"]
    argv += ["--results-dir", str(tmp_path)]
    result = subprocess.run(
        argv,
        cwd=REPO,
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    report = (tmp_path / "ingest.md").read_text()

    targets = [row[0] for row in table_rows(report, "")]
    assert [name.split(":")[0].split(" (")[0] for name in targets] == [
        "HTTP ceiling",
        "Kafka ceiling",
        "**ingest**",
        "ingest, tracing on",
    ]
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
