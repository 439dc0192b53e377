"""The dispatcher benchmark end to end in its quick mode with tiny numbers, a scenario or two
at a time, so that the harness (sink, bare clients, dispatcher runs, several processes, many
destinations, tracing on and off, profile, aiohttp versus pyreqwest, report) cannot rot
unnoticed. Nothing here looks at speed: only that every row is there and every run delivered."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.benchmarks.results import run_quick, table_rows

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

SMALL = "--events 150 --users 30 --window 1.5"


def quick(args: str, bootstrap: str, results_dir: Path) -> str:
    return run_quick(
        "benchmarks.bench_dispatch", f"{SMALL} {args}", bootstrap=bootstrap, results_dir=results_dir
    )


def test_one_destination_runs_beside_bare_clients(kafka_bootstrap: str, tmp_path: Path) -> None:
    # A warm-up: a dispatcher may take a few seconds to position every partition of a new
    # group, and at concurrency 1 the ratio needs more than the first delivery.
    args = "--only runs --latency 20 --concurrency 1 --concurrency 4 --warmup 1 --window 2"
    args += " --cpu-pairs 1"
    report = quick(args, kafka_bootstrap, tmp_path)

    expected = {(client, "20", c) for client in ("bare aiohttp", "dispatcher") for c in "14"}
    rates = {tuple(row[:3]): row for row in table_rows(report, "Deliveries per second")}
    assert set(rates) == expected
    assert all(row[-1] in {"all events", "window"} for row in rates.values()), rates
    cpu = {tuple(row[:3]): row for row in table_rows(report, "CPU per delivery")}
    assert set(cpu) == expected

    ratios = {row[0]: row for row in table_rows(report, "Ratios")}
    speedup = ratios["dispatcher concurrency 4 / concurrency 1, 20 ms sink"]
    assert speedup[1].endswith("x") or speedup[1] == "n/a"  # n/a: a run delivered nothing
    assert speedup[2] == ">= 100x"
    assert any(name.startswith("highest median of dispatcher CPU per") for name in ratios)
    pairs = {tuple(row[:2]): row for row in table_rows(report, "CPU per delivery over the bare")}
    assert set(pairs) == {("20", c) for c in "14"}
    for _, _, _main, further, _median in pairs.values():
        # The further pair leaves the dispatcher's gauge unread: never marked *. (The main
        # runs read it every 0.5 s: marked, unless a run this small ended before a read.)
        assert further == "-" or re.fullmatch(r"[\d.]+", further), pairs

    head = report.split("## Deliveries", 1)[0]
    assert "librdkafka" in head  # the machine facts
    sink = "Go (net/http)" if shutil.which("go") else "aiohttp"
    assert f"Sink: {sink}," in head


def test_one_process_and_two(kafka_bootstrap: str, tmp_path: Path) -> None:
    report = quick("--only processes --concurrency 4", kafka_bootstrap, tmp_path)

    rows = {row[0]: row for row in table_rows(report, "Several processes")}
    assert set(rows) == {"1", "2"}
    assert all(row[-1] in {"all events", "window"} for row in rows.values()), rows
    assert rows["1"][3] == "1.00"
    assert re.search(r"Scaling, 2 processes / 1: \*\*[\d.]+x\*\*", report)


def test_many_destinations_in_one_process(kafka_bootstrap: str, tmp_path: Path) -> None:
    report = quick("--only many --destinations 3 --batch 4", kafka_bootstrap, tmp_path)

    (many,) = table_rows(report, "3 destinations in one process")
    assert many[1] == "3 of 3", (tmp_path / "stderr.txt").read_text()[-3000:]
    assert "## Deliveries per second" not in report  # only what was asked for


def test_tracing_cost_and_profile(kafka_bootstrap: str, tmp_path: Path) -> None:
    args = "--only tracing --only profile --tracing-rounds 1 --concurrency 8"
    report = quick(args, kafka_bootstrap, tmp_path)

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

    profile = (tmp_path / "dispatch-profile.txt").read_text()
    assert "== Functions by self time ==" in profile
    assert table_rows(report, "Where the dispatcher's CPU goes")


def test_aiohttp_and_pyreqwest_bare_and_in_the_dispatcher(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    args = f"{SMALL} --only transport --latency 0 --concurrency 4"
    report = run_quick(
        "benchmarks.bench_dispatch",
        args,
        bootstrap=kafka_bootstrap,
        results_dir=tmp_path,
        results_name="dispatch-transport.md",  # never in place of the full run's dispatch.md
    )

    assert not (tmp_path / "dispatch.md").exists()
    for table in ("Bare clients", "The dispatcher"):  # the "### " subsections
        # A "### " subsection's rows run on into the next one's table: cut at its header.
        cells = table_rows(report, table)
        cells = cells[: next((i for i, r in enumerate(cells) if r[0] == "sink latency ms"), None)]
        rows = {(row[0], row[1], row[2]): row for row in cells}
        # pyreqwest h2c too where the sink speaks it (the Go sink from Go 1.24 on)
        assert {("0", "4", "aiohttp"), ("0", "4", "pyreqwest")} <= set(rows), table
        assert all(row[-1] in {"all events", "window"} for row in rows.values()), rows
    assert re.search(
        r"the rule asks >= 1.3x at every setting: \*\*(not )?met\*\*|nothing to decide", report
    )
