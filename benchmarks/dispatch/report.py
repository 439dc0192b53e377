"""The dispatch benchmark's results as markdown: the runs, their ratios to the goal and to the
bare client, the CPU ceiling, then the sections of the other scenarios."""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.dispatch import many, profile, tracing_cost
from benchmarks.dispatch.many import ManyDestinations
from benchmarks.dispatch.plan import (
    BARE,
    CPU_BOUND_PERCENT,
    DISPATCHER,
    LATENCIES_MS,
    PARTITIONS,
    RATIO_GOAL,
    RATIO_LATENCY_MS,
    Plan,
)
from benchmarks.dispatch.profile import ProfileSummary
from benchmarks.dispatch.runs import Run
from benchmarks.dispatch.tracing_cost import TracingComparison
from benchmarks.report import markdown_table

__all__ = ["Report", "render"]


@dataclass(frozen=True, slots=True)
class Report:
    plan: Plan
    machine: str
    runs: list[Run]
    many: ManyDestinations
    tracing: TracingComparison | None
    profile: ProfileSummary | None


def render(report: Report) -> str:
    """The results as markdown."""
    sections = [
        _header(report),
        _runs_table(report.runs),
        _ratios(report),
        _ceiling(report.runs),
        many.section(report.many, report.runs),
    ]
    if report.tracing is not None:
        sections.append(tracing_cost.section(report.tracing))
    if report.profile is not None:
        sections.append(profile.section(report.profile))
    return "\n\n".join(sections) + "\n"


def _header(report: Report) -> str:
    plan = report.plan
    return "\n".join(
        [
            "# Dispatcher benchmark (issue 6)",
            "",
            f"Written by `python -m benchmarks.bench_dispatch` (`just bench-dispatch`), {plan.mode}"
            " mode.",
            "",
            f"Machine: {report.machine}. Other people's tests share this machine: compare the"
            " ratios, not the absolute rates.",
            "",
            f"Setup: {plan.events:,} events of {plan.users:,} users pre-loaded in a"
            f" {PARTITIONS}-partition topic. Sink: aiohttp in its own process, answering 204 after"
            " 0 or 20 ms. Dispatcher: `dispatcher --manifest <generated> --log-level WARNING` as a"
            " subprocess, a fresh consumer group per run from the earliest offset, one http"
            " destination with `max_connections` = `concurrency`. Bare aiohttp: one process POSTing"
            " the same kind of body to the same sink from `concurrency` loops. A rate is"
            " (deliveries - 1) / (last - first arrival at the sink); a run ends at all events or"
            f" after {plan.window:g} s. CPU % is of one core, over the measured window; 'loop' is"
            " the main thread alone (the event loop), the rest is mostly librdkafka's threads.",
        ]
    )


def _runs_table(runs: list[Run]) -> str:
    header = [
        *("client", "sink latency ms", "concurrency", "deliveries", "seconds", "deliveries/s"),
        *("x bare at top concurrency", "CPU %", "loop CPU %", "loop waiting %"),
        *("CPU µs/delivery", "loop CPU µs/delivery", "sink CPU %", "sink waiting %"),
        *("mean in flight", "peak RSS MiB", "threads", "ended by"),
    ]
    top = max(r.concurrency for r in runs)
    rows = []
    for run in runs:
        ratio = _ratio(run, _find(runs, BARE, run.latency_ms, top))
        rows.append(
            [
                run.client,
                str(run.latency_ms),
                str(run.concurrency),
                f"{run.deliveries:,}",
                f"{run.seconds:.2f}",
                f"{run.rate:,.0f}",
                f"{ratio or 0.0:.2f}",
                f"{run.percent(run.used.cpu):.0f}",
                f"{run.percent(run.used.loop_cpu):.0f}",
                f"{run.percent(run.used.loop_wait):.0f}",
                f"{run.per_delivery_us(run.used.cpu):,.0f}",
                f"{run.per_delivery_us(run.used.loop_cpu):,.0f}",
                f"{run.percent(run.sink_used.cpu):.0f}",
                f"{run.percent(run.sink_used.loop_wait):.0f}",
                "-" if run.in_flight is None else f"{run.in_flight:.0f}",
                f"{run.peak_rss / (1 << 20):.0f}",
                str(run.threads),
                run.ended_by,
            ]
        )
    return "## Deliveries per second\n\n" + markdown_table(header, rows, left=(0, -1))


def _find(runs: list[Run], client: str, latency_ms: int, concurrency: int) -> Run | None:
    wanted = (client, latency_ms, concurrency)
    return next((r for r in runs if (r.client, r.latency_ms, r.concurrency) == wanted), None)


def _ratio(numerator: Run | None, denominator: Run | None) -> float | None:
    if numerator is None or denominator is None or not denominator.rate:
        return None
    return numerator.rate / denominator.rate


def _ratios(report: Report) -> str:
    runs, top, at = report.runs, report.plan.top_concurrency, RATIO_LATENCY_MS
    rows: list[list[str]] = []

    def row(name: str, value: float | None, goal: str) -> None:
        rows.append([name, f"{value:,.1f}x" if value is not None else "n/a", goal])

    row(
        f"dispatcher concurrency {top} / concurrency 1, {at} ms sink",
        _ratio(_find(runs, DISPATCHER, at, top), _find(runs, DISPATCHER, at, 1)),
        f">= {RATIO_GOAL:g}x",
    )
    row(
        f"bare aiohttp concurrency {top} / concurrency 1, {at} ms sink",
        _ratio(_find(runs, BARE, at, top), _find(runs, BARE, at, 1)),
        "reference",
    )
    for latency in LATENCIES_MS:
        row(
            f"dispatcher / bare aiohttp, concurrency {top}, {latency} ms sink",
            _ratio(_find(runs, DISPATCHER, latency, top), _find(runs, BARE, latency, top)),
            "1x is the ceiling",
        )
    table = markdown_table(["ratio", "value", "goal"], rows, left=(0, -1))
    return f"## Ratios\n\n{table}\n\n{_goal_arithmetic(runs, top)}"


def _goal_arithmetic(runs: list[Run], top: int) -> str:
    """What the ratio goal asks of the loop's CPU per delivery, next to what it uses."""
    one, fast = _find(runs, DISPATCHER, RATIO_LATENCY_MS, 1), _find(runs, DISPATCHER, 0, top)
    bare = _find(runs, BARE, 0, top)
    if one is None or fast is None or bare is None or not one.rate:
        return ""
    needed = RATIO_GOAL * one.rate
    return (
        f"{RATIO_GOAL:g}x at {RATIO_LATENCY_MS} ms means {needed:,.0f} deliveries/s from one"
        f" event loop: at most {1e6 / needed:,.0f} µs of loop CPU per delivery on a core of its"
        f" own. The dispatcher used {fast.per_delivery_us(fast.used.loop_cpu):,.0f} µs"
        f" (concurrency {top}, 0 ms sink); the bare aiohttp client"
        f" {bare.per_delivery_us(bare.used.loop_cpu):,.0f} µs per request."
    )


def _ceiling(runs: list[Run]) -> str:
    """The CPU-bound case: the top concurrency with the 0 ms sink, next to the bare client."""
    top = max(r.concurrency for r in runs)
    bound, bare = _find(runs, DISPATCHER, 0, top), _find(runs, BARE, 0, top)
    zero = [r for r in runs if r.client == DISPATCHER and r.latency_ms == 0]
    if bound is None or bare is None:
        return "## CPU ceiling (0 ms sink)\n\nNot measured."
    fastest = max(zero, key=lambda r: r.rate)
    loop_us, bare_us = (r.per_delivery_us(r.used.loop_cpu) for r in (bound, bare))
    busy = bound.percent(bound.used.loop_cpu + bound.used.loop_wait)
    verdict = (
        "CPU-bound" if busy >= CPU_BOUND_PERCENT else "not CPU-bound: something else bounds it"
    )
    return "\n".join(
        [
            "## CPU ceiling (0 ms sink)",
            "",
            f"At concurrency {top} the dispatcher delivered **{bound.rate:,.0f}/s**; its event"
            f" loop ran {bound.percent(bound.used.loop_cpu):.0f}% of the time and waited for a"
            f" core another {bound.percent(bound.used.loop_wait):.0f}% ({busy:.0f}% busy:"
            f" {verdict}; the threshold is {CPU_BOUND_PERCENT}%). The fastest 0 ms run was"
            f" {fastest.rate:,.0f}/s at concurrency {fastest.concurrency}.",
            "",
            f"Loop CPU per delivery: **{loop_us:,.0f} µs**, so one core given to the loop alone"
            f" tops out near **{1e6 / loop_us if loop_us else 0:,.0f} deliveries/s**. The bare"
            f" aiohttp client spends {bare_us:,.0f} µs per request (near"
            f" {1e6 / bare_us if bare_us else 0:,.0f}/s): the dispatcher's own work per delivery"
            f" is {loop_us - bare_us:,.0f} µs on top. CPU per delivery suffers less from the"
            " machine's other users than the rate does.",
        ]
    )
