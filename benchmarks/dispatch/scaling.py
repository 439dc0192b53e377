"""Every core (issue 14): ``dispatcher --processes 1`` versus ``--processes 2`` on the 0 ms
sink at the top concurrency, where one process is CPU-bound, so that a second process has
work to take. The processes share the destination's partitions through its consumer group;
their CPU, memory and threads are measured together, supervisor included, and their
in-flight gauges added up."""

from __future__ import annotations

import os
from dataclasses import dataclass

from benchmarks.dispatch.harness import Bench
from benchmarks.dispatch.plan import DISPATCHER, PROCESSES_COMPARED
from benchmarks.dispatch.runs import Run
from benchmarks.dispatch.supervised import cli_has_processes
from benchmarks.report import markdown_table

__all__ = ["ProcessesComparison", "compare_processes", "section"]


@dataclass(frozen=True, slots=True)
class ProcessesComparison:
    runs: dict[int, Run]
    """By number of processes."""
    via_cli: bool
    """Whether ``dispatcher --processes`` ran them (else the benchmark's stand-in, the same
    supervisor around plain dispatchers)."""


def compare_processes(bench: Bench, topic: str) -> ProcessesComparison:
    """One run per ``PROCESSES_COMPARED`` value, one right after the other."""
    concurrency = bench.plan.top_concurrency
    runs = {
        processes: bench.dispatcher(
            topic, 0, concurrency, label=_label(processes), processes=processes
        )
        for processes in PROCESSES_COMPARED
    }
    return ProcessesComparison(runs, cli_has_processes())


def _label(processes: int) -> str:
    return f"{DISPATCHER}, {processes} process" + ("es" if processes > 1 else "")


def section(comparison: ProcessesComparison) -> str:
    """The report's "Several processes" section."""
    runs = comparison.runs
    one = runs[min(runs)]
    header = [
        *("processes", "deliveries", "deliveries/s", "x 1 process", "mean in flight"),
        *("CPU % (all processes)", "CPU µs/delivery", "sink CPU %", "broker CPU %"),
        *("machine busy %", "peak RSS MiB", "threads", "ended by"),
    ]
    rows = [
        [
            str(processes),
            f"{run.deliveries:,}",
            f"{run.rate:,.0f}",
            f"{run.rate / one.rate:.2f}" if one.rate else "n/a",
            "-" if run.in_flight is None else f"{run.in_flight:.0f}",
            f"{run.percent(run.used.cpu):.0f}",
            f"{run.per_delivery_us(run.used.cpu):,.0f}",
            f"{run.percent(run.sink_used.cpu):.0f}",
            "-" if run.broker_used is None else f"{run.percent(run.broker_used.cpu):.0f}",
            f"{100 * run.machine_busy:.0f}",
            f"{run.peak_rss / (1 << 20):.0f}",
            str(run.threads),
            run.ended_by,
        ]
        for processes, run in sorted(runs.items())
    ]
    top = max(runs)
    scaling = runs[top].rate / one.rate if one.rate else 0.0
    via = (
        "`dispatcher --processes N`"
        if comparison.via_cli
        else "`python -m benchmarks.dispatch.supervised N` (this dispatcher has no `--processes`"
        " yet: the same supervisor, `dispatcher.supervisor`, around plain dispatchers)"
    )
    return "\n".join(
        [
            "## Several processes",
            "",
            f"One http destination at concurrency {one.concurrency} (per process), 0 ms sink,"
            f" run by {via}, a fresh consumer group each; the processes share its partitions."
            " CPU, RSS and threads are of all the processes together (supervisor included),"
            " mean in flight is their gauges added up. 'Machine busy' is every core's work,"
            " anyone's: the broker, the sink and this benchmark share the same cores.",
            "",
            markdown_table(header, rows, left=(-1,)),
            "",
            f"Scaling, {top} processes / 1: **{scaling:.2f}x**. With {os.cpu_count() or 1} cores"
            " shared by the dispatchers, the broker (fetches for every consumer), the sink and the"
            " benchmark's own sampling, a second process can only use the core time the first"
            " leaves idle: once 'machine busy' nears 100% the machine, not the dispatcher,"
            " bounds the rate.",
        ]
    )
