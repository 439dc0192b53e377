"""The dispatcher benchmark end to end in its quick mode with tiny numbers, so that the harness
(sink, bare client, dispatcher runs, tracing on and off, profile, many destinations, report)
cannot rot unnoticed. Nothing here looks at speed: only that every row is there and every run
delivered."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.benchmarks.results import run_quick, table_rows

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_quick_mode_writes_every_row(kafka_bootstrap: str, tmp_path: Path) -> None:
    args = "--events 150 --users 30 --window 1.5 --destinations 3 --batch 4"
    report = run_quick(
        "benchmarks.bench_dispatch", args, bootstrap=kafka_bootstrap, results_dir=tmp_path
    )

    runs = {tuple(row[:3]): row for row in table_rows(report, "Deliveries per second")}
    expected = {("bare aiohttp", "0", "256"), ("bare aiohttp", "20", "256")}
    expected |= {("bare aiohttp", "20", "1")}
    expected |= {("dispatcher", latency, c) for latency in ("0", "20") for c in ("1", "256")}
    assert set(runs) == expected
    assert all(row[-1] in {"all events", "window"} for row in runs.values()), runs

    ratios = {row[0]: row[1] for row in table_rows(report, "Ratios")}
    assert ratios["dispatcher concurrency 256 / concurrency 1, 20 ms sink"].endswith("x")
    assert ratios["bare aiohttp concurrency 256 / concurrency 1, 20 ms sink"].endswith("x")

    (many,) = table_rows(report, "3 destinations in one process")
    assert many[1] == "3 of 3"

    tracing = {row[0]: row for row in table_rows(report, "Tracing cost")}
    assert set(tracing) == {
        "deliveries/s",
        "loop CPU µs/delivery",
        "CPU µs/delivery (all threads)",
    }
    # CPU per delivery may be n/a here: a run of 150 events can be over before it is watched.
    assert tracing["deliveries/s"][3].endswith("x"), tracing
    per_delivery = re.search(r"([\d.]+) spans per delivery", report)
    assert per_delivery is not None
    assert 0 < float(per_delivery.group(1)) <= 3  # tracing was on: spans reached the counter

    assert "## CPU ceiling (0 ms sink)" in report
    assert "librdkafka" in report.split("## Deliveries", 1)[0]  # the machine facts
    profile = (tmp_path / "dispatch-profile.txt").read_text()
    assert "== Functions by self time ==" in profile
    assert table_rows(report, "Where the dispatcher's CPU goes")
